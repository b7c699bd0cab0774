package authz

import (
	"testing"
	"time"
)

func TestConfersTakeover(t *testing.T) {
	for _, c := range []struct {
		p    Permission
		want bool
	}{
		{Permission{Resource: ResUsers, Action: Manage}, true},
		{Permission{Resource: ResUsers, Action: Manage, MaxClass: Green}, true},
		{Permission{Resource: ResRoles, Action: Manage}, true},
		{Permission{Resource: Any, Action: Manage}, true},
		{Permission{Resource: ResUsers, Action: Delete}, false},
		{Permission{Resource: ResUsers, Action: Update}, false},
		{Permission{Resource: ResSessions, Action: Manage}, false},
		{Permission{Resource: ResServiceAccounts, Action: Manage}, false},
		{Permission{Resource: ResRecords, Action: Manage}, false},
	} {
		if got := ConfersTakeover(c.p); got != c.want {
			t.Errorf("ConfersTakeover(%s) = %v", c.p, got)
		}
	}
	// The built-in administrator roles confer it; the others do not.
	for _, r := range BuiltinRoles {
		_, got := TakeoverPermission(r.Permissions)
		want := r.Key == RoleSuperAdmin || r.Key == RoleProgramAdmin
		if got != want {
			t.Errorf("role %s confers takeover: %v", r.Key, got)
		}
	}
}

// Creating a service account needs a fresh second factor like MANAGE on one: a new account
// is a credential that acts without one.
func TestDecide_CreatingServiceAccountNeedsStepUp(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := &Policy{Clearance: Yellow, Grants: []Grant{
		{Permission: Permission{Resource: ResServiceAccounts, Action: Create}, Effect: Allow, Source: "role:program_admin"},
		{Permission: Permission{Resource: ResUsers, Action: Create}, Effect: Allow, Source: "role:program_admin"},
	}}
	stale := now.Add(-StepUpWindow - time.Second)
	if d := Decide(p, Request{Action: Create, Resource: ResServiceAccounts, StepUpAt: stale}, now); !d.Allow || !d.Obligations.StepUpRequired {
		t.Fatalf("stale step-up: %+v", d)
	}
	if d := Decide(p, Request{Action: Create, Resource: ResServiceAccounts, StepUpAt: now.Add(-time.Minute)}, now); !d.Allow || d.Obligations.StepUpRequired {
		t.Fatalf("fresh step-up: %+v", d)
	}
	if d := Decide(p, Request{Action: Create, Resource: ResUsers, StepUpAt: stale}, now); !d.Allow || d.Obligations.StepUpRequired {
		t.Fatalf("creating a user: %+v", d)
	}
}

// Replacing a role's permissions widens it to takeover when the new set gives a takeover
// permission the old one did not: new, at a higher limit, or on the wildcard resource. Keeping
// or narrowing one, or adding anything else, is no takeover.
func TestTakeoverWidening(t *testing.T) {
	usersManage := Permission{Resource: ResUsers, Action: Manage}
	usersManageGreen := Permission{Resource: ResUsers, Action: Manage, MaxClass: Green}
	rolesManage := Permission{Resource: ResRoles, Action: Manage}
	anyManage := Permission{Resource: Any, Action: Manage}
	usersRead := Permission{Resource: ResUsers, Action: Read}
	recordsManage := Permission{Resource: ResRecords, Action: Manage}
	for _, c := range []struct {
		name          string
		before, after []Permission
		want          bool
	}{
		{"adds users MANAGE", []Permission{usersRead}, []Permission{usersRead, usersManage}, true},
		{"adds roles MANAGE", nil, []Permission{rolesManage}, true},
		{"adds * MANAGE", []Permission{usersManage}, []Permission{anyManage}, true},
		{"lifts the classification limit", []Permission{usersManageGreen}, []Permission{usersManage}, true},
		{"keeps users MANAGE", []Permission{usersManage, usersRead}, []Permission{usersManage}, false},
		{"narrows users MANAGE", []Permission{usersManage}, []Permission{usersManageGreen}, false},
		{"narrows * to users", []Permission{anyManage}, []Permission{usersManage, rolesManage}, false},
		{"removes it", []Permission{usersManage}, []Permission{usersRead}, false},
		{"adds no takeover", []Permission{usersRead}, []Permission{usersRead, recordsManage}, false},
	} {
		got, ok := TakeoverWidening(c.before, c.after)
		if ok != c.want {
			t.Errorf("%s: TakeoverWidening = %s, %v", c.name, got, ok)
		}
		if ok && !ConfersTakeover(got) {
			t.Errorf("%s: returned %s, which confers no takeover", c.name, got)
		}
	}
}
