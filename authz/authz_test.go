package authz

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func policy(clearance Classification, grants ...Grant) *Policy {
	return &Policy{Clearance: clearance, Grants: grants}
}

func allow(res string, a Action, max Classification) Grant {
	return Grant{Permission: Permission{Resource: res, Action: a, MaxClass: max}, Effect: Allow, Source: "role:test"}
}

func deny(res string, a Action) Grant {
	return Grant{Permission: Permission{Resource: res, Action: a}, Effect: Deny, Source: "user"}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	expired := allow("records", Read, "")
	expired.Expires = now
	future := allow("records", Read, "")
	future.Expires = now.Add(time.Hour)
	cases := []struct {
		name   string
		p      *Policy
		r      Request
		allow  bool
		reason string
	}{
		{"deny by default", policy(Red), Request{Action: Read, Resource: "records"}, false, "deny by default"},
		{"grant allows", policy(Green, allow("records", Read, "")), Request{Action: Read, Resource: "records"}, true, "allowed by role:test"},
		{"other action not allowed", policy(Green, allow("records", Read, "")), Request{Action: Update, Resource: "records"}, false, "deny by default"},
		{"other resource not allowed", policy(Green, allow("records", Read, "")), Request{Action: Read, Resource: "users"}, false, "deny by default"},
		{"wildcard resource", policy(Green, allow(Any, Read, "")), Request{Action: Read, Resource: "users"}, true, "allowed"},
		{"explicit deny beats grant", policy(Red, allow(Any, Read, ""), deny("records", Read)), Request{Action: Read, Resource: "records"}, false, "explicitly denied"},
		{"deny of another action leaves grant", policy(Red, allow("records", Read, ""), deny("records", Delete)), Request{Action: Read, Resource: "records"}, true, "allowed"},
		{"expired grant", policy(Green, expired), Request{Action: Read, Resource: "records"}, false, "deny by default"},
		{"unexpired grant", policy(Green, future), Request{Action: Read, Resource: "records"}, true, "allowed"},
		{"max classification caps grant", policy(Red, allow("records", Read, Yellow)), Request{Action: Read, Resource: "records", Class: Red, Purpose: "x"}, false, "deny by default"},
		{"clearance caps access", policy(Yellow, allow("records", Read, "")), Request{Action: Read, Resource: "records", Class: Red, Purpose: "case review"}, false, "needs RED clearance"},
		{"RED read needs purpose", policy(Red, allow("records", Read, "")), Request{Action: Read, Resource: "records", Class: Red}, false, "stated purpose"},
		{"RED read with purpose", policy(Red, allow("records", Read, "")), Request{Action: Read, Resource: "records", Class: Red, Purpose: "case review"}, true, "allowed"},
		{"unknown action", policy(Red, allow(Any, Read, "")), Request{Action: "READ_ALL", Resource: "records"}, false, "unknown action"},
		{"wildcard request refused", policy(Red, allow(Any, Read, "")), Request{Action: Read, Resource: Any}, false, "resource type is required"},
		{"unknown classification", policy(Red, allow(Any, Read, "")), Request{Action: Read, Resource: "records", Class: "PURPLE"}, false, "unknown classification"},
	}
	for _, c := range cases {
		d := Decide(c.p, c.r, now)
		if d.Allow != c.allow || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: Decide = %v %q, want %v containing %q", c.name, d.Allow, d.Reason, c.allow, c.reason)
		}
	}
}

func TestDecide_StepUpObligationForSensitiveActions(t *testing.T) {
	t.Parallel()
	p := policy(Red, allow(Any, Export, ""), allow(Any, Read, ""), allow(Any, Delete, ""))
	for _, c := range []struct {
		r    Request
		want bool
	}{
		{Request{Action: Export, Resource: "records"}, true},
		{Request{Action: Delete, Resource: "records"}, true},
		{Request{Action: Read, Resource: "records"}, false},
		{Request{Action: Read, Resource: "records", Class: Red, Purpose: "p"}, true},
		{Request{Action: Export, Resource: "records", StepUpAt: now.Add(-time.Minute)}, false},
		{Request{Action: Export, Resource: "records", StepUpAt: now.Add(-StepUpWindow - time.Second)}, true},
	} {
		d := Decide(p, c.r, now)
		if !d.Allow || d.Obligations.StepUpRequired != c.want {
			t.Errorf("%+v: allow=%v step-up=%v, want step-up %v", c.r, d.Allow, d.Obligations.StepUpRequired, c.want)
		}
	}
}

func TestHolds_CannotGrantWhatYouLack(t *testing.T) {
	t.Parallel()
	admin := policy(Yellow, allow("users", Manage, ""), allow("records", Read, Yellow), deny("records", Export), allow("records", Export, ""))
	cases := []struct {
		perm Permission
		want bool
	}{
		{Permission{"users", Manage, ""}, true},
		{Permission{"records", Read, Green}, true},
		{Permission{"records", Read, Yellow}, true},
		{Permission{"records", Read, Red}, false},  // more than held
		{Permission{"records", Read, ""}, false},   // unlimited is more than ≤YELLOW
		{Permission{"records", Export, ""}, false}, // denied to the granter
		{Permission{"keys", Manage, ""}, false},
	}
	for _, c := range cases {
		if got := admin.Holds(c.perm, now); got != c.want {
			t.Errorf("Holds(%v) = %v, want %v", c.perm, got, c.want)
		}
	}
	super := policy(Red, allow(Any, Manage, ""))
	if !super.Holds(Permission{"keys", Manage, ""}, now) {
		t.Error("wildcard grant does not hold a specific permission")
	}
}

func TestBuiltinRoles_Shape(t *testing.T) {
	t.Parallel()
	for _, r := range BuiltinRoles {
		for _, p := range r.Permissions {
			if !p.Action.Valid() || p.Resource == "" {
				t.Errorf("%s: bad permission %v", r.Key, p)
			}
		}
	}
	op, _ := Builtin(RoleOperator)
	pol := &Policy{Clearance: op.Clearance}
	for _, p := range op.Permissions {
		pol.Grants = append(pol.Grants, Grant{Permission: p, Effect: Allow, Source: "role:operator"})
	}
	for _, forbidden := range []Request{{Action: Manage, Resource: ResRoles}, {Action: Update, Resource: ResConfig},
		{Action: Delete, Resource: ResUsers}, {Action: Read, Resource: ResAudit}} {
		if Decide(pol, forbidden, now).Allow {
			t.Errorf("operator may %s %s", forbidden.Action, forbidden.Resource)
		}
	}
	if _, ok := Builtin("root"); ok {
		t.Error("unknown built-in found")
	}
}

func TestMasker(t *testing.T) {
	t.Parallel()
	m := NewMasker([]byte("k"))
	obj := map[string]any{"email": "ana.lopez@example.org", "ip": "203.0.113.5", "ua": "Mozilla", "name": "Ana",
		"phone": "+44 7700 900123", "n": 42.0, "weird": "x"}
	m.ApplyScoped(obj, map[string]Mask{"email": MaskPartial, "ip": MaskHashed, "ua": MaskRedacted, "name": MaskHidden,
		"phone": MaskPartial, "n": MaskPartial, "weird": "scramble", "absent": MaskHidden}, "t1", "sessions")
	if obj["email"] != "a***@example.org" || obj["ua"] != "[redacted]" || obj["phone"] != "***********0123" ||
		obj["n"] != "[redacted]" || obj["weird"] != "[redacted]" {
		t.Fatalf("masked: %v", obj)
	}
	if _, ok := obj["name"]; ok {
		t.Fatal("hidden field present")
	}
	h := obj["ip"].(string)
	obj2 := map[string]any{"ip": "203.0.113.5"}
	m.ApplyScoped(obj2, map[string]Mask{"ip": MaskHashed}, "t1", "sessions")
	other := map[string]any{"ip": "203.0.113.5"}
	NewMasker([]byte("other key")).ApplyScoped(other, map[string]Mask{"ip": MaskHashed}, "t1", "sessions")
	if !strings.HasPrefix(h, "h:") || obj2["ip"] != h || other["ip"] == h || strings.Contains(h, "203.0.113.5") {
		t.Fatalf("hash not keyed and stable: %v %v %v", h, obj2["ip"], other["ip"])
	}
}

// The hashed mask is bound to tenant and field: the same value gives the same mask
// in one field of one tenant, and unrelated masks in another tenant or field, so masks cannot be
// joined across tenants to confirm a guessed value. The parts are length-prefixed: moving bytes
// from one part to the next changes the mask.
func TestMaskerHashed_BoundToTenantAndField(t *testing.T) {
	t.Parallel()
	m := NewMasker([]byte("k"))
	hash := func(tenant, resource, field, value string) string {
		obj := map[string]any{field: value}
		m.ApplyScoped(obj, map[string]Mask{field: MaskHashed}, tenant, resource)
		return obj[field].(string)
	}
	a := hash("tenant-a", "subjects", "national_id", "AB947381")
	if again := hash("tenant-a", "subjects", "national_id", "AB947381"); again != a {
		t.Fatalf("same tenant, field and value: %s then %s", a, again)
	}
	for name, other := range map[string]string{
		"other tenant":   hash("tenant-b", "subjects", "national_id", "AB947381"),
		"other field":    hash("tenant-a", "subjects", "passport", "AB947381"),
		"other resource": hash("tenant-a", "users", "national_id", "AB947381"),
		"other value":    hash("tenant-a", "subjects", "national_id", "AB947382"),
		"shifted bytes":  hash("tenant-as", "ubjects", "national_id", "AB947381"),
	} {
		if other == a {
			t.Errorf("%s: mask equals tenant A's (%s)", name, a)
		}
	}
	// A tenant ID ending where the field begins cannot collide with another split.
	if hash("ab", "c", "d", "v") == hash("a", "bc", "d", "v") {
		t.Error("length prefixes missing: splits of the same bytes collide")
	}
}

func TestMasksFor_ByClearance(t *testing.T) {
	t.Parallel()
	if m := MasksFor(Red, nil); len(m) != 0 {
		t.Fatalf("RED clearance sees masks: %v", m)
	}
	g := MasksFor(Green, map[string]Mask{"users.email": MaskHidden})
	if g["users.email"] != MaskHidden || g["sessions.ip"] != MaskHashed {
		t.Fatalf("GREEN masks: %v", g)
	}
}

func BenchmarkDecide(b *testing.B) {
	pa, _ := Builtin(RoleProgramAdmin)
	p := &Policy{Clearance: pa.Clearance}
	for _, perm := range pa.Permissions {
		p.Grants = append(p.Grants, Grant{Permission: perm, Effect: Allow, Source: "role:program_admin"})
	}
	p.Grants = append(p.Grants, deny("records", Export))
	r := Request{Action: Update, Resource: ResRecords, Class: Yellow}
	b.ReportAllocs()
	for b.Loop() {
		if !Decide(p, r, now).Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkDecideP99 reports the 99th-percentile latency of single in-process decisions (goal
// < 50 µs), measured per call.
func BenchmarkDecideP99(b *testing.B) {
	pa, _ := Builtin(RoleProgramAdmin)
	p := &Policy{Clearance: pa.Clearance}
	for _, perm := range pa.Permissions {
		p.Grants = append(p.Grants, Grant{Permission: perm, Effect: Allow, Source: "role:program_admin"})
	}
	reqs := []Request{{Action: Update, Resource: ResRecords, Class: Yellow}, {Action: Manage, Resource: ResKeys},
		{Action: Read, Resource: ResAudit}, {Action: Export, Resource: ResRecords, Class: Red, Purpose: "x"}}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		Decide(p, reqs[i%len(reqs)], now)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
}

// BenchmarkDecideBatch reports decisions per second per core for batches of 1000 checks
// against one loaded policy (goal ≥ 1,000,000/s).
func BenchmarkDecideBatch(b *testing.B) {
	pa, _ := Builtin(RoleProgramAdmin)
	p := &Policy{Clearance: pa.Clearance}
	for _, perm := range pa.Permissions {
		p.Grants = append(p.Grants, Grant{Permission: perm, Effect: Allow, Source: "role:program_admin"})
	}
	batch := make([]Request, 1000)
	for i := range batch {
		batch[i] = Request{Action: Actions[i%len(Actions)], Resource: []string{ResRecords, ResUsers, ResRoles}[i%3], Class: Yellow}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, r := range batch {
			Decide(p, r, now)
		}
		n += len(batch)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "checks/s")
}

// The challenge's max_age is the step-up window, and its acr the MFA acr.
func TestStepUpChallenge_MatchesWindow(t *testing.T) {
	want := fmt.Sprintf(`acr_values="%s", max_age=%d`, ACRMFA, int(StepUpWindow/time.Second))
	if !strings.HasSuffix(StepUpChallenge, want) {
		t.Fatalf("StepUpChallenge %q does not end with %q", StepUpChallenge, want)
	}
	for m, want := range map[string]bool{"otp": true, "hwk": true, "rcv": true, "mfa": true, "pwd": false, "swk": false, "sms": false, "": false} {
		if SecondFactorAMR(m) != want {
			t.Errorf("SecondFactorAMR(%q) = %v", m, !want)
		}
	}
}

// A role change widens its holders' view when any classified field's effective mask (the
// clearance's default, then the role's overrides) becomes more revealing.
func TestViewWidened(t *testing.T) {
	t.Parallel()
	none := map[string]Mask(nil)
	for _, c := range []struct {
		name    string
		bc      Classification
		bm      map[string]Mask
		ac      Classification
		am      map[string]Mask
		widened bool
	}{
		{"no change", Green, none, Green, none, false},
		{"override reveals more than the default", Green, none, Green, map[string]Mask{"users.email": MaskFull}, true},
		{"override hides more than the default", Green, none, Green, map[string]Mask{"users.email": MaskHidden}, false},
		{"override removed: back to a clearer default", Green, map[string]Mask{"users.email": MaskHidden}, Green, none, true},
		{"override made stricter", Green, map[string]Mask{"users.email": MaskPartial}, Green, map[string]Mask{"users.email": MaskRedacted}, false},
		{"clearance raised", Green, none, Yellow, none, true},
		{"clearance lowered", Yellow, none, Green, none, false},
		{"clearance raised but every field kept hidden", Green, map[string]Mask{"users.email": MaskHidden}, Yellow,
			map[string]Mask{"users.email": MaskHidden, "sessions.ip": MaskHidden, "sessions.user_agent": MaskHidden,
				"security_events.ip": MaskHidden, "login_history.ip": MaskHidden, "audit_events.source_ip": MaskHidden,
				"audit_events.user_agent": MaskHidden}, false},
	} {
		if got := ViewWidened(c.bc, c.bm, c.ac, c.am); got != c.widened {
			t.Errorf("%s: ViewWidened = %v, want %v", c.name, got, c.widened)
		}
	}
}
