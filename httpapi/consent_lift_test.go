package httpapi_test

import (
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// TestConsent_RequestRestrictionLiftNeedsApproveAndSubjectInformed is issue 14's review
// finding: a restriction placed by a four-eyes-approved data-subject request was lifted by its
// assignee alone with a reason. Lifting a restriction or objection that carries a request's
// reference now needs APPROVE on dsr besides UPDATE on consents, and subject_informed: true
// (GDPR Art. 18(3)), both audited with the reference; one without a reference keeps the reason
// alone.
func TestConsent_RequestRestrictionLiftNeedsApproveAndSubjectInformed(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqlstore.SQLite)
	se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
	admin := se.login(t, "acme", "admin@example.org", pw, "")
	admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
	subj := se.create(t)
	base := se.base + "/dsr"
	req := se.dsrCall(t, "POST", base, `{"subject_id":"`+subj+`","kind":"restriction"}`, se.operator, 201)
	one := base + "/" + req.ID
	se.dsrCall(t, "POST", one+"/verify", `{"result":"verified","method":"in_person_document"}`, se.operator, 200)
	se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 200)
	se.dsrCall(t, "POST", one+"/submit", `{}`, admin.AccessToken, 200)
	se.dsrCall(t, "POST", one+"/approve", "", admin2.AccessToken, 200)

	subject := se.base + "/subjects/" + subj
	res, b := se.req(t, "GET", subject+"/consents", "", "", se.admin)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"restriction":{"reference":"`+req.ID+`"`) {
		t.Fatalf("the request's restriction: %d %s", res.StatusCode, b)
	}
	restricted := func(step string) {
		t.Helper()
		res, b := se.req(t, "GET", subject+"?purpose=case_management", "", "", se.admin)
		wantError(t, res, b, 403, tutela.ERESTRICTED)
	}
	// A desk that may UPDATE consents but not APPROVE requests (a service account).
	sa := se.createSA(t, se.tenant.ID, se.admin, `{"name":"consent-desk","permissions":[{"resource":"consents","action":"UPDATE","max_classification":"YELLOW"}]}`)
	code, tok := se.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 {
		t.Fatalf("desk token: %d %v", code, tok)
	}
	desk := tok["access_token"].(string)
	informed := `{"reason":"accuracy verified","subject_informed":true}`

	// The review's step: the assignee alone, with a reason only.
	res, b = se.req(t, "DELETE", subject+"/restriction", `{"reason":"changed my mind"}`, "", admin.AccessToken)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "subject_informed" || !strings.Contains(eb.Error.Message, req.ID) {
		t.Fatalf("refusal names %q: %s", eb.Error.Field, eb.Error.Message)
	}
	restricted("reason only")
	res, b = se.req(t, "DELETE", subject+"/restriction", informed, "", desk)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	restricted("without APPROVE on dsr")

	// APPROVE on dsr and the subject told: lifted, and the audit event links it to the request.
	if res, b := se.req(t, "DELETE", subject+"/restriction", informed, "", admin2.AccessToken); res.StatusCode != 200 || !strings.Contains(string(b), `"restriction":null`) {
		t.Fatalf("lift: %d %s", res.StatusCode, b)
	}
	recs, _, err := se.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: se.tenant.ID, Action: "subject.restriction.lift", TargetID: subj})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["reference"] != req.ID || recs[0].Event.Details["subject_informed"] != true ||
		recs[0].Event.ActorID != admin2.UserID {
		t.Fatalf("subject.restriction.lift events: %d %v", len(recs), err)
	}

	// Without a reference, today's rule: UPDATE on consents and a reason.
	if res, b := se.req(t, "POST", subject+"/restriction", `{}`, "", se.admin); res.StatusCode != 201 {
		t.Fatalf("restrict: %d %s", res.StatusCode, b)
	}
	if res, b := se.req(t, "DELETE", subject+"/restriction", `{"reason":"accuracy verified"}`, "", desk); res.StatusCode != 200 {
		t.Fatalf("lift an unreferenced restriction: %d %s", res.StatusCode, b)
	}

	// An objection carrying the request's reference: the same rule.
	if res, b := se.req(t, "PUT", se.base+"/purposes/research", `{"description":"Programme evaluation","lawful_basis":"legitimate_interests"}`, "", se.admin); res.StatusCode != 201 {
		t.Fatalf("declare research: %d %s", res.StatusCode, b)
	}
	if res, b := se.req(t, "POST", subject+"/objections/research", `{"reference":"`+req.ID+`"}`, "", se.admin); res.StatusCode != 201 {
		t.Fatalf("object: %d %s", res.StatusCode, b)
	}
	res, b = se.req(t, "DELETE", subject+"/objections/research", informed, "", desk)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = se.req(t, "DELETE", subject+"/objections/research", `{"reason":"compelling legitimate grounds"}`, "", se.admin)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "subject_informed" {
		t.Fatalf("refusal names %q", eb.Error.Field)
	}
	if res, b := se.req(t, "DELETE", subject+"/objections/research", informed, "", se.admin); res.StatusCode != 200 || !strings.Contains(string(b), `"objections":[]`) {
		t.Fatalf("withdraw objection: %d %s", res.StatusCode, b)
	}
}
