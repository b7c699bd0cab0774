package approvals_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"tutela"
	"tutela/approvals"
)

func TestDefaultPolicy_OnlyMergeIsOnAndEveryDefaultIsValid(t *testing.T) {
	for _, a := range approvals.Actions {
		p := approvals.DefaultPolicy(a)
		if err := p.Validate(); err != nil {
			t.Errorf("DefaultPolicy(%s) invalid: %v", a, err)
		}
		if p.Enabled != (a == approvals.ActionSubjectMerge) {
			t.Errorf("DefaultPolicy(%s).Enabled = %v", a, p.Enabled)
		}
	}
}

func TestPolicyValidate_RefusesEachBadField(t *testing.T) {
	good := approvals.DefaultPolicy(approvals.ActionRoleGrant)
	cases := map[string]func(*approvals.Policy){
		"action":         func(p *approvals.Policy) { p.Action = "role.grant " },
		"approver_roles": func(p *approvals.Policy) { p.ApproverRoles = nil },
		"required":       func(p *approvals.Policy) { p.Required = 0 },
		"ttl_seconds":    func(p *approvals.Policy) { p.TTL = time.Minute },
	}
	for field, mutate := range cases {
		p := good
		p.ApproverRoles = append([]string(nil), good.ApproverRoles...)
		mutate(&p)
		err := p.Validate()
		var e *tutela.Error
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: Validate = %v, want invalid", field, err)
			continue
		}
		if !errors.As(err, &e) || e.Field != field {
			t.Errorf("%s: error names field %q", field, e.Field)
		}
	}
	p := good
	p.ApproverRoles = []string{"Program Admin"}
	if tutela.ErrorCode(p.Validate()) != tutela.EINVALID {
		t.Error("a role key with spaces and capitals was accepted")
	}
	p = good
	p.Required = approvals.MaxRequired + 1
	if p.Validate() == nil {
		t.Error("required above the maximum was accepted")
	}
}

func TestPolicyWeakens(t *testing.T) {
	on := approvals.Policy{Action: approvals.ActionSubjectExport, Enabled: true, ApproverRoles: []string{"program_admin"},
		Required: 2, TTL: 24 * time.Hour}
	cases := []struct {
		name   string
		change func(*approvals.Policy)
		want   bool
	}{
		{"unchanged", func(*approvals.Policy) {}, false},
		{"turned off", func(p *approvals.Policy) { p.Enabled = false }, true},
		{"fewer approvals", func(p *approvals.Policy) { p.Required = 1 }, true},
		{"more approvals", func(p *approvals.Policy) { p.Required = 3 }, false},
		{"longer life", func(p *approvals.Policy) { p.TTL = 48 * time.Hour }, true},
		{"shorter life", func(p *approvals.Policy) { p.TTL = time.Hour }, false},
		{"another approver role", func(p *approvals.Policy) { p.ApproverRoles = []string{"program_admin", "operator"} }, true},
		{"a role replaced", func(p *approvals.Policy) { p.ApproverRoles = []string{"operator"} }, true},
		{"fewer roles", func(p *approvals.Policy) { p.ApproverRoles = []string{} }, false},
	}
	for _, c := range cases {
		p := on
		p.ApproverRoles = append([]string(nil), on.ApproverRoles...)
		c.change(&p)
		if got := p.Weakens(on); got != c.want {
			t.Errorf("%s: Weakens = %v, want %v", c.name, got, c.want)
		}
	}
	off := on
	off.Enabled = false
	if (approvals.Policy{Action: on.Action}).Weakens(off) {
		t.Error("changing a policy that is off counted as weakening")
	}
}

func TestCanonical_EqualParamsEqualBytes(t *testing.T) {
	type grant struct {
		User string `json:"user"`
		Role string `json:"role"`
	}
	a, err := approvals.Canonical(grant{User: "u1", Role: "program_admin"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := approvals.Canonical(map[string]any{"role": "program_admin", "user": "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) || string(a) != `{"role":"program_admin","user":"u1"}` {
		t.Fatalf("Canonical: %s vs %s", a, b)
	}
	c, _ := approvals.Canonical(map[string]any{"role": "program_admin", "user": "u2"})
	if string(c) == string(a) {
		t.Fatal("different parameters gave equal bytes")
	}
	n, _ := approvals.Canonical(json.RawMessage(`{"b":1.50,"a":[2, 1]}`))
	if string(n) != `{"a":[2,1],"b":1.50}` {
		t.Fatalf("numbers or order changed: %s", n)
	}
	if _, err := approvals.Canonical(func() {}); err == nil {
		t.Fatal("an unencodable value was accepted")
	}
}

func TestPolicyJSON_TTLInSeconds(t *testing.T) {
	b, err := json.Marshal(approvals.DefaultPolicy(approvals.ActionSubjectMerge))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["ttl_seconds"] != float64(72*3600) || m["enabled"] != true || m["required"] != float64(1) {
		t.Fatalf("policy JSON = %s", b)
	}
}
