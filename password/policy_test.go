package password

import (
	"context"
	"errors"
	"strings"
	"testing"

	"tutela"
)

// fakeChecker answers Breached from a fixed set, or fails, and counts calls.
type fakeChecker struct {
	breached map[string]bool
	err      error
	calls    int
}

func (f *fakeChecker) Breached(_ context.Context, pw string) (bool, error) {
	f.calls++
	return f.breached[pw], f.err
}

func TestPolicy_CheckRules(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	const previous = "an old but strong passphrase"
	history := []string{mustHash(t, h, "something else entirely 77"), mustHash(t, h, previous)}
	breach := &fakeChecker{breached: map[string]bool{"violet otter mapleknot": true}}
	composition := DefaultPolicy()
	composition.Composition = &Composition{Upper: 1, Digit: 2}

	tests := []struct {
		name    string
		policy  Policy
		pw      string
		ctx     Context
		want    error  // nil: accepted
		message string // substring of the client message
	}{
		{"too short", DefaultPolicy(), "Shrt!9x", Context{}, ErrTooShort, "password must be at least 12 characters"},
		{"eleven characters", DefaultPolicy(), "zq8#vLm2@pW", Context{}, ErrTooShort, "at least 12"},
		{"too long", DefaultPolicy(), strings.Repeat("long enough ", 11), Context{}, ErrTooLong, "password must be at most 128 characters"},
		{"length after NFKC: decomposed accents count once", DefaultPolicy(), strings.Repeat("e\u0301", 11), Context{}, ErrTooShort, "at least 12"},
		{"length counts code points not bytes", DefaultPolicy(), "🦊🌲🌙🎻🚲🍋🧭🪁🦉🌊🔭", Context{}, ErrTooShort, "at least 12"},
		{"composition", composition, "correct horse battery staple", Context{}, ErrComposition, "password must contain at least 1 uppercase letter, 2 digits"},
		{"composition met", composition, "Correct horse battery staple 42", Context{}, nil, ""},
		{"common password", DefaultPolicy(), "password1234", Context{}, ErrWeak, "password is too easy to guess (strength 0 of 4, need 3): this is similar to a commonly used password"},
		{"keyboard walk", DefaultPolicy(), "qwertyuiopasdf", Context{}, ErrWeak, "strength 0 of 4"},
		{"built from the email", DefaultPolicy(), "zorblaxquimbeyvendrofax", Context{Email: "zorblax.quimbey@vendrofax.io"}, ErrWeak, "avoid your name, email address and organisation name"},
		{"built from the name and tenant", DefaultPolicy(), "Quimbey Zorblax Initech", Context{Name: "Zorblax Quimbey", Tenant: "Initech"}, ErrWeak, "avoid your name"},
		{"service name", DefaultPolicy(), "tutela-tutela-tutela", Context{}, ErrWeak, "avoid your name"},
		{"reused", Policy{MinLength: 12, MaxLength: 128, MinScore: 3, History: 5}, previous, Context{PreviousHashes: history, Hasher: h}, ErrReused, "password was used recently"},
		{"reused beyond history", Policy{MinLength: 12, MaxLength: 128, MinScore: 3, History: 1}, previous, Context{PreviousHashes: history, Hasher: h}, nil, ""},
		{"history disabled", Policy{MinLength: 12, MaxLength: 128, MinScore: 3}, previous, Context{PreviousHashes: history, Hasher: h}, nil, ""},
		{"history off still refuses the current password", DefaultPolicy(), "something else entirely 77", Context{PreviousHashes: history, Hasher: h}, ErrReused, "password was used recently"},
		{"breached", DefaultPolicy(), "violet otter mapleknot", Context{Breach: breach}, ErrBreached, "password appears in a known data breach"},
		{"not breached", DefaultPolicy(), "violet otter mapleknot!", Context{Breach: breach}, nil, ""},
		{"emoji", DefaultPolicy(), "🦊🌲🌙⛰️🎻🚲🍋🧭🪁🦉🌊🔭", Context{}, nil, ""},
		{"spaces", DefaultPolicy(), "correct horse battery staple purple", Context{}, nil, ""},
		{"non-Latin script", DefaultPolicy(), "日本語のとても長いパスワードです", Context{}, nil, ""},
		{"full-width", DefaultPolicy(), "ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｓｔａｐｌｅ", Context{}, nil, ""},
		{"same words without context", DefaultPolicy(), "zorblaxquimbeyvendrofax", Context{Email: "someone@example.com"}, nil, ""},
		{"score rule off", Policy{MinLength: 12, MaxLength: 128}, "password1234", Context{}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(context.Background(), tt.pw, tt.ctx)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var e *tutela.Error
			if !errors.As(err, &e) || e.Code != tutela.EINVALID || e.Field != "password" {
				t.Fatalf("err = %#v, want *tutela.Error EINVALID on field password", err)
			}
			if !strings.Contains(e.Message, tt.message) {
				t.Errorf("message %q does not contain %q", e.Message, tt.message)
			}
			if strings.Contains(e.Error(), tt.pw) {
				t.Errorf("error %q contains the password", e)
			}
		})
	}
}

func TestPolicy_ChecksInOrderAndStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	breach := &fakeChecker{breached: map[string]bool{"pw": true, "password1234": true}}
	p := DefaultPolicy()
	if err := p.Check(context.Background(), "pw", Context{Breach: breach}); !errors.Is(err, ErrTooShort) {
		t.Errorf("short and breached: err = %v, want ErrTooShort", err)
	}
	if err := p.Check(context.Background(), "password1234", Context{Breach: breach}); !errors.Is(err, ErrWeak) {
		t.Errorf("weak and breached: err = %v, want ErrWeak", err)
	}
	if breach.calls != 0 {
		t.Errorf("breach checker called %d times for passwords already rejected", breach.calls)
	}
}

func TestPolicy_DependencyFailures(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	p := DefaultPolicy()
	p.History = 5
	const pw = "correct horse battery staple purple"

	unavailable := &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "breached-password check unavailable"}
	err := p.Check(context.Background(), pw, Context{Breach: &fakeChecker{err: unavailable}})
	if tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		t.Errorf("breach checker down: err = %v, want EUNAVAILABLE", err)
	}

	err = p.Check(context.Background(), pw, Context{PreviousHashes: []string{mustHash(t, h, "x")}})
	if err == nil || tutela.ErrorCode(err) == tutela.EINVALID {
		t.Errorf("history without a Hasher: err = %v, want an internal error", err)
	}

	err = p.Check(context.Background(), pw, Context{PreviousHashes: []string{"garbage"}, Hasher: h})
	if !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("corrupt history hash: err = %v, want it reported", err)
	}
}

func TestPolicy_Validate(t *testing.T) {
	t.Parallel()
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatalf("DefaultPolicy invalid: %v", err)
	}
	if p := DefaultPolicy(); p.MinLength != 12 || p.MaxLength != 128 || p.MinScore != 3 || p.History != 0 || p.Composition != nil {
		t.Errorf("DefaultPolicy = %+v", p)
	}
	withComp := func(c Composition) Policy { p := DefaultPolicy(); p.Composition = &c; return p }
	bad := map[string]Policy{
		"min below 8":          {MinLength: 7, MaxLength: 128, MinScore: 3},
		"max below min":        {MinLength: 12, MaxLength: 11, MinScore: 3},
		"max above 1024":       {MinLength: 12, MaxLength: 1025, MinScore: 3},
		"score negative":       {MinLength: 12, MaxLength: 128, MinScore: -1},
		"score above 4":        {MinLength: 12, MaxLength: 128, MinScore: 5},
		"history negative":     {MinLength: 12, MaxLength: 128, History: -1},
		"history huge":         {MinLength: 12, MaxLength: 128, History: maxHistory + 1},
		"composition negative": withComp(Composition{Upper: -1}),
		"composition too big":  withComp(Composition{Symbol: 129}),
	}
	for name, p := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := p.Validate(); tutela.ErrorCode(err) != tutela.EINVALID {
				t.Errorf("Validate = %v, want EINVALID", err)
			}
		})
	}
	if err := (Policy{MinLength: 8, MaxLength: 8}).Validate(); err != nil {
		t.Errorf("8..8 rejected: %v", err)
	}
	all := Policy{MinLength: 1, MaxLength: 2000, MinScore: 9, History: -1}.Validate()
	if n := strings.Count(tutela.ErrorMessage(all), ";"); n != 3 {
		t.Errorf("Validate reported %d problems, want 4: %v", n+1, all)
	}
}

func TestContextWords(t *testing.T) {
	t.Parallel()
	got := contextWords(Context{Email: "Jean-Luc.Picard+work@mail.starfleet.org", Name: "Jean-Luc Picard", Tenant: "USS Enterprise"})
	want := []string{"tutela", "jean-luc.picard+work", "jean", "luc", "picard", "work", "mail", "starfleet", "jean-luc picard", "uss enterprise", "uss", "enterprise"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("contextWords =\n %q\nwant\n %q", got, want)
	}
}
