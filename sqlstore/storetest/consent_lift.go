package storetest

import (
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// allowLift is a caller allowed to lift what a data-subject request placed.
func allowLift(string) error { return nil }

// testConsentRequestLift: a restriction or objection a data-subject request placed (reference
// set) is lifted only by a caller the request rule allows (APPROVE on requests, in the API) who
// confirms the subject was told (GDPR Art. 18(3)); issue 14's review found one caseworker could
// lift it with a reason alone. One without a reference keeps that rule. And a request confirming
// a restriction or objection a caseworker placed attaches its reference, so the request's rule
// cannot be side-stepped by placing it first.
func testConsentRequestLift(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	tn := k.tenant.ID
	do := func(fn func(c sqlstore.Consent) error) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return fn(tx.Consent(tn)) })
	}
	refuse := func(string) error { return tutela.Errorf(tutela.EFORBIDDEN, "no APPROVE on dsr") }
	ada, ref := k.subject(t, tn), tutela.NewID()
	if err := do(func(c sqlstore.Consent) error { return c.Restrict(ctx, ada, ref) }); err != nil {
		t.Fatal(err)
	}
	if err := do(func(c sqlstore.Consent) error { return c.Object(ctx, ada, "research", ref) }); err != nil {
		t.Fatal(err)
	}
	var asked []string
	for name, c := range map[string]struct {
		lift sqlstore.Lift
		code string
	}{
		"reason alone":                  {sqlstore.Lift{Reason: "changed my mind"}, tutela.EFORBIDDEN},
		"informed, no rule":             {sqlstore.Lift{Reason: "changed my mind", SubjectInformed: true}, tutela.EFORBIDDEN},
		"informed, refused by the rule": {sqlstore.Lift{Reason: "changed my mind", SubjectInformed: true, MayLiftRequest: refuse}, tutela.EFORBIDDEN},
		"allowed, subject not informed": {sqlstore.Lift{Reason: "accuracy verified", MayLiftRequest: func(r string) error {
			asked = append(asked, r)
			return nil
		}}, tutela.EINVALID},
	} {
		err := do(func(cs sqlstore.Consent) error { return cs.LiftRestriction(ctx, ada, c.lift) })
		if tutela.ErrorCode(err) != c.code {
			t.Fatalf("%s: %v, want %s", name, err, c.code)
		}
		if c.code == tutela.EINVALID {
			mustField(t, err, "subject_informed")
		}
		mustCode(t, do(func(cs sqlstore.Consent) error { return cs.WithdrawObjection(ctx, ada, "research", c.lift) }), c.code)
	}
	if len(asked) != 2 || asked[0] != ref || asked[1] != ref {
		t.Fatalf("the rule was asked about %v, want the request %s twice", asked, ref)
	}
	// Nothing was lifted.
	mustCode(t, k.check(tn, ada, "case_management"), tutela.ERESTRICTED)
	informed := sqlstore.Lift{Reason: "accuracy verified", SubjectInformed: true, MayLiftRequest: allowLift}
	if err := do(func(c sqlstore.Consent) error { return c.LiftRestriction(ctx, ada, informed) }); err != nil {
		t.Fatal(err)
	}
	if err := do(func(c sqlstore.Consent) error { return c.WithdrawObjection(ctx, ada, "research", informed) }); err != nil {
		t.Fatal(err)
	}
	if err := k.check(tn, ada, "research"); err != nil {
		t.Fatalf("after both were lifted: %v", err)
	}
	for _, action := range []string{"subject.restriction.lift", "subject.objection.withdraw"} {
		recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn, Action: action, TargetID: ada})
		if err != nil || len(recs) != 1 || recs[0].Event.Details["reference"] != ref || recs[0].Event.Details["subject_informed"] != true {
			t.Fatalf("%s events = %d (%v)", action, len(recs), err)
		}
	}

	// Without a reference: the reason is enough, and the rule is not asked.
	bob := k.subject(t, tn)
	plain := sqlstore.Lift{Reason: "accuracy verified", MayLiftRequest: refuse}
	if err := do(func(c sqlstore.Consent) error { return c.Restrict(ctx, bob, "") }); err != nil {
		t.Fatal(err)
	}
	if err := do(func(c sqlstore.Consent) error { return c.LiftRestriction(ctx, bob, plain) }); err != nil {
		t.Fatalf("lifting an unreferenced restriction: %v", err)
	}

	// A caseworker's restriction and objection, then a request confirming them: the request's
	// reference attaches (and a later request's does not replace it), so the request rule applies.
	ref2 := tutela.NewID()
	for _, r := range []string{"", ref2, tutela.NewID()} {
		if err := do(func(c sqlstore.Consent) error {
			if err := c.Restrict(ctx, bob, r); err != nil {
				return err
			}
			return c.Object(ctx, bob, "research", r)
		}); err != nil {
			t.Fatal(err)
		}
	}
	var res *sqlstore.Restriction
	var objs []*sqlstore.Objection
	k.consent(t, tn, func(c sqlstore.Consent) (err error) {
		if res, err = c.Restriction(ctx, bob); err != nil {
			return err
		}
		objs, err = c.Objections(ctx, bob)
		return err
	})
	if res == nil || res.Reference != ref2 || len(objs) != 1 || objs[0].Reference != ref2 {
		t.Fatalf("after a request confirmed them: restriction %+v, objections %+v", res, objs)
	}
	mustCode(t, do(func(c sqlstore.Consent) error { return c.LiftRestriction(ctx, bob, plain) }), tutela.EFORBIDDEN)
	mustCode(t, do(func(c sqlstore.Consent) error { return c.WithdrawObjection(ctx, bob, "research", plain) }), tutela.EFORBIDDEN)
	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn, Action: "subject.restriction.place", TargetID: bob})
	attached := 0
	for _, r := range recs {
		if r.Event.Details["reference"] == ref2 {
			attached++
		}
	}
	if err != nil || len(recs) != 3 || attached != 1 {
		t.Fatalf("subject.restriction.place events for bob = %d (%v), want 3, one naming %s", len(recs), err, ref2)
	}
}
