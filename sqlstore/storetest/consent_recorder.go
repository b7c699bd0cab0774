package storetest

import (
	"testing"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
)

// testConsentRecorderFollowsActor: the store refuses a record "by the subject" entered by a
// person (issue 14's review: a caseworker claimed to be the subject to skip the evidence), on
// every path, whatever the handler decided. A service account (the subject-facing portal) and
// the platform's own work (no request) may record as the subject.
func testConsentRecorderFollowsActor(t *testing.T, open Opener) {
	k := newConsentKit(t, open, "acme")
	tn := k.tenant.ID
	ada := k.subject(t, tn)
	as := func(kind string) func(rec *privacy.ConsentRecord) error {
		meta := &tutela.RequestMeta{RequestID: tutela.NewID()}
		if kind != "" {
			meta.Principal = &tutela.Principal{Kind: kind, TenantID: tn, UserID: tutela.NewID()}
		}
		c := tutela.WithRequestMeta(ctx, meta)
		return func(rec *privacy.ConsentRecord) error {
			return k.db.Update(c, func(tx *sqlstore.Tx) error { return tx.Consent(tn).Record(c, rec) })
		}
	}
	person, portal, anonymous := as(tutela.PrincipalUser), as(tutela.PrincipalServiceAccount), as("")

	mustField(t, person(grant(ada, "outreach", 2)), "recorded_by")
	mustField(t, person(withdrawal(ada, "outreach")), "recorded_by")
	mustField(t, anonymous(grant(ada, "outreach", 2)), "recorded_by")
	if h := k.history(t, tn, ada); len(h) != 0 {
		t.Fatalf("refused records stored: %d", len(h))
	}
	mustCode(t, k.check(tn, ada, "outreach"), tutela.ECONSENTREQUIRED)

	byCaseworker := grant(ada, "outreach", 2)
	byCaseworker.RecordedBy, byCaseworker.Evidence, byCaseworker.EvidenceSealed = privacy.RecordedByCaseworker, "form 7", []byte("sealed")
	if err := person(byCaseworker); err != nil {
		t.Fatalf("a person recording as a caseworker with evidence: %v", err)
	}
	if err := portal(withdrawal(ada, "outreach")); err != nil {
		t.Fatalf("the portal recording as the subject: %v", err)
	}
	if err := k.record(tn, grant(ada, "outreach", 2)); err != nil {
		t.Fatalf("the platform recording as the subject: %v", err)
	}
	h := k.history(t, tn, ada)
	if len(h) != 3 || h[0].ActorType != "user" || h[0].RecordedBy != privacy.RecordedByCaseworker ||
		h[1].ActorType != "service_account" || h[1].RecordedBy != privacy.RecordedBySubject || h[2].ActorType != "system" {
		t.Fatalf("history = %+v %+v %+v", h[0], h[1], h[2])
	}
}
