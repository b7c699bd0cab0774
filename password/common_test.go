package password

import (
	"context"
	"errors"
	"testing"
)

func commonPasswords(t *testing.T) *Index {
	t.Helper()
	ix, err := CommonPasswords()
	if err != nil {
		t.Fatalf("CommonPasswords: %v", err)
	}
	return ix
}

// Breached passwords from the built-in list that are long enough and that zxcvbn scores at
// least 3 (the default minimum score): before the built-in list, the default configuration
// accepted every one of them.
var strongButBreached = []string{"q1w2e3r4t5y6u7", "1qa2ws3ed4rf5tg", "Boy4u2OwnNYC", "ghbdtnghbdtn"}

func TestCommonPasswords_EmbeddedListIsWhole(t *testing.T) {
	t.Parallel()
	ix := commonPasswords(t)
	if ix.Len() != 100000 {
		t.Errorf("built-in list holds %d hashes, want 100000", ix.Len())
	}
	for _, pw := range append([]string{"password", "12345678", "iloveyou", "sunshine"}, strongButBreached...) {
		if hit, err := ix.Breached(context.Background(), pw); err != nil || !hit {
			t.Errorf("Breached(%q) = %v, %v; want true: the list is the most common breached passwords", pw, hit, err)
		}
	}
	// Exact and case-sensitive, like every breach source; shorter than any policy allows is
	// not in the list at all.
	for _, pw := range []string{"sUnShInE", "password ", "123456", "bR4ve-new_wOrld:kiln"} {
		if hit, err := ix.Breached(context.Background(), pw); err != nil || hit {
			t.Errorf("Breached(%q) = %v, %v; want false", pw, hit, err)
		}
	}
}

// The default policy with the built-in list refuses a breached password that every other rule
// accepts, and still accepts a strong password nobody has leaked.
func TestPolicy_DefaultRejectsStrongButBreachedPassword(t *testing.T) {
	t.Parallel()
	ix := commonPasswords(t)
	p := DefaultPolicy()
	for _, pw := range strongButBreached {
		if err := p.Check(context.Background(), pw, Context{}); err != nil {
			t.Fatalf("%q: without the list: %v; the test needs a password only the breach check refuses", pw, err)
		}
		if err := p.Check(context.Background(), pw, Context{Breach: ix}); !errors.Is(err, ErrBreached) {
			t.Errorf("%q: err = %v, want ErrBreached", pw, err)
		}
	}
	if err := p.Check(context.Background(), "bR4ve-new_wOrld:kiln 93", Context{Breach: ix}); err != nil {
		t.Errorf("strong unbreached password refused: %v", err)
	}
}

func TestAnyOf_EitherSourceHittingRejects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := &fakeChecker{breached: map[string]bool{"only in a": true}}
	b := &fakeChecker{breached: map[string]bool{"only in b": true}}
	c := AnyOf(a, nil, b)
	for pw, want := range map[string]bool{"only in a": true, "only in b": true, "in neither": false} {
		if hit, err := c.Breached(ctx, pw); err != nil || hit != want {
			t.Errorf("Breached(%q) = %v, %v; want %v", pw, hit, err, want)
		}
	}
	// A hit in the first source never asks the second (offline before network).
	a.calls, b.calls = 0, 0
	if hit, _ := c.Breached(ctx, "only in a"); !hit || b.calls != 0 {
		t.Errorf("hit in the first source: b asked %d times", b.calls)
	}
	// A failing source fails the check closed, even when the other says "not breached".
	down := errors.New("down")
	failing := AnyOf(&fakeChecker{}, &fakeChecker{err: down})
	if _, err := failing.Breached(ctx, "in neither"); !errors.Is(err, down) {
		t.Errorf("failing source: err = %v, want it reported", err)
	}
}

func TestIndex_CloseOfEmbeddedIndex(t *testing.T) {
	t.Parallel()
	ix := commonPasswords(t)
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Breached(context.Background(), "password"); err == nil {
		t.Error("lookup after Close succeeded")
	}
}
