package approvals

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The MAC's input is length-prefixed: moving bytes from one field to the next, or changing any
// field, gives another input, so no MAC fits two different requests.
func TestMACInput_EveryFieldBoundAndUnambiguous(t *testing.T) {
	t.Parallel()
	base := MACInput("t", "id", "role.grant", "user", "u1", []byte(`{"a":1}`))
	for name, other := range map[string][]byte{
		"tenant":         MACInput("t2", "id", "role.grant", "user", "u1", []byte(`{"a":1}`)),
		"id":             MACInput("t", "id2", "role.grant", "user", "u1", []byte(`{"a":1}`)),
		"action":         MACInput("t", "id", "dsr.erasure", "user", "u1", []byte(`{"a":1}`)),
		"target type":    MACInput("t", "id", "role.grant", "subject", "u1", []byte(`{"a":1}`)),
		"target id":      MACInput("t", "id", "role.grant", "user", "u2", []byte(`{"a":1}`)),
		"params":         MACInput("t", "id", "role.grant", "user", "u1", []byte(`{"a":2}`)),
		"shifted bytes":  MACInput("t", "id", "role.grant", "use", "ru1", []byte(`{"a":1}`)),
		"shifted params": MACInput("t", "id", "role.grant", "user", "u1{", []byte(`"a":1}`)),
	} {
		if bytes.Equal(base, other) {
			t.Errorf("%s: same MAC input", name)
		}
	}
	if !bytes.Equal(base, MACInput("t", "id", "role.grant", "user", "u1", []byte(`{"a":1}`))) {
		t.Fatal("MAC input is not deterministic")
	}
}

func TestCanonical_KeyOrderAndSpacingDoNotMatter(t *testing.T) {
	t.Parallel()
	a, err := Canonical(map[string]any{"b": []any{1, "x"}, "a": map[string]any{"z": 1.5, "y": nil}})
	if err != nil {
		t.Fatal(err)
	}
	type s struct {
		B []any          `json:"b"`
		A map[string]any `json:"a"`
	}
	b, err := Canonical(s{B: []any{1, "x"}, A: map[string]any{"y": nil, "z": 1.5}})
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != `{"a":{"y":null,"z":1.5},"b":[1,"x"]}` || string(a) != string(b) {
		t.Fatalf("canonical forms %s and %s", a, b)
	}
	if _, err := Canonical(func() {}); err == nil {
		t.Fatal("a function canonicalized")
	}
}

func TestValidText_LengthAndFreeText(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"because":                               true,
		"Zeile eins\nZeile zwei":                true,
		"":                                      false,
		"   ":                                   false,
		"nul\x00":                               false,
		"\xff":                                  false,
		strings.Repeat("é", MaxJustification):   true,
		strings.Repeat("é", MaxJustification+1): false,
	} {
		if ValidText(s) != want {
			t.Errorf("ValidText(%.20q) = %v", s, !want)
		}
	}
}

func TestWeakens_OnlyLooserRulesOfAnEnabledPolicy(t *testing.T) {
	t.Parallel()
	old := Policy{Action: ActionRoleGrant, Enabled: true, ApproverRoles: []string{"program_admin"}, Required: 2, TTL: time.Hour}
	for name, c := range map[string]struct {
		change func(*Policy)
		want   bool
	}{
		"same":              {func(*Policy) {}, false},
		"off":               {func(p *Policy) { p.Enabled = false }, true},
		"fewer approvals":   {func(p *Policy) { p.Required = 1 }, true},
		"more approvals":    {func(p *Policy) { p.Required = 3 }, false},
		"longer life":       {func(p *Policy) { p.TTL = 2 * time.Hour }, true},
		"shorter life":      {func(p *Policy) { p.TTL = 30 * time.Minute }, false},
		"another approver":  {func(p *Policy) { p.ApproverRoles = []string{"program_admin", "operator"} }, true},
		"replaced approver": {func(p *Policy) { p.ApproverRoles = []string{"operator"} }, true},
	} {
		p := old
		p.ApproverRoles = append([]string(nil), old.ApproverRoles...)
		c.change(&p)
		if got := p.Weakens(old); got != c.want {
			t.Errorf("%s: Weakens = %v", name, got)
		}
	}
	disabled := old
	disabled.Enabled = false
	if (Policy{Action: ActionRoleGrant}).Weakens(disabled) {
		t.Error("changing a disabled policy weakens it")
	}
}

func TestStateReason_EveryStateHasItsReason(t *testing.T) {
	t.Parallel()
	for st, want := range map[State]string{StatePending: ReasonPending, StateRejected: ReasonRejected,
		StateExpired: ReasonExpired, StateCancelled: ReasonCancelled, StateExecuted: ReasonExecuted, "bogus": ReasonUnknown} {
		if got := StateReason(st); got != want {
			t.Errorf("%s: %s", st, got)
		}
	}
}
