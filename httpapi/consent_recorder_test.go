package httpapi_test

import (
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// TestConsent_PersonCannotRecordAsTheSubject is issue 14's review finding: an operator sent
// recorded_by "subject" (channel web) to skip the evidence a caseworker must give, then read the
// consent-only phone. Who recorded a record now comes from the principal: a person is a
// caseworker and must cite evidence; only a service account (the subject-facing portal) records
// as the subject. A body that disagrees is refused with 400 naming recorded_by, nothing stored.
func TestConsent_PersonCannotRecordAsTheSubject(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ce := newConsentEnv(t, d)
			consents := ce.base + "/subjects/" + ce.ada + "/consents"
			type recorded struct {
				RecordedBy      string `json:"recorded_by"`
				ActorType       string `json:"actor_type"`
				EvidencePresent bool   `json:"evidence_present"`
			}
			post := func(body, auth string) (int, *errorBody, recorded) {
				t.Helper()
				res, b := ce.req(t, "POST", consents, body, "", auth)
				var eb errorBody
				var rec recorded
				if res.StatusCode == 201 {
					mustUnmarshal(t, b, &rec)
				} else {
					mustUnmarshal(t, b, &eb)
				}
				return res.StatusCode, &eb, rec
			}
			noEvidence := strings.Replace(consentBody("granted", 1, ""), `,"recorded_by":"subject"`, "", 1)

			// A person, operator or administrator, claiming to be the subject: refused, with or
			// without evidence; leaving recorded_by out makes them a caseworker, who needs evidence.
			for name, c := range map[string]struct {
				body, auth, field string
			}{
				"operator as subject":               {consentBody("granted", 1, ""), ce.operator, "recorded_by"},
				"administrator as subject":          {consentBody("granted", 1, ""), ce.admin, "recorded_by"},
				"operator as subject with evidence": {consentBody("granted", 1, `,"evidence":"Form 12"`), ce.operator, "recorded_by"},
				"operator, recorded_by left out":    {noEvidence, ce.operator, "evidence"},
				"operator withdrawing as subject":   {consentBody("withdrawn", 0, ""), ce.operator, "recorded_by"},
				"portal, unknown recorder":          {strings.Replace(consentBody("granted", 1, ""), `"subject"`, `"robot"`, 1), ce.portal, "recorded_by"},
				"portal relaying a caseworker":      {strings.Replace(consentBody("granted", 1, ""), `"subject"`, `"caseworker"`, 1), ce.portal, "evidence"},
			} {
				st, eb, _ := post(c.body, c.auth)
				if st != 400 || eb.Error.Code != tutela.EINVALID || eb.Error.Field != c.field {
					t.Errorf("%s: %d %+v, want 400 naming %s", name, st, eb.Error, c.field)
				}
			}
			res, b := ce.req(t, "GET", consents, "", "", ce.admin)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"records":[]`) {
				t.Fatalf("refused records were stored: %d %s", res.StatusCode, b)
			}
			// So the operator still cannot read the consent-only phone.
			if st, code := ce.status(t, ce.env, ce.operator, "outreach"); st != 403 || code != tutela.ECONSENTREQUIRED {
				t.Fatalf("operator read for outreach: %d %s", st, code)
			}

			// A person with evidence is recorded as a caseworker, whatever they left out.
			st, eb, rec := post(strings.Replace(caseworkerBody("granted", 1, "Form 12"), `,"recorded_by":"caseworker"`, "", 1), ce.operator)
			if st != 201 || rec.RecordedBy != "caseworker" || rec.ActorType != "user" || !rec.EvidencePresent {
				t.Fatalf("caseworker grant: %d %+v %+v", st, eb.Error, rec)
			}
			// The portal records as the subject, by default or when it says so.
			for _, body := range []string{noEvidence, consentBody("withdrawn", 0, "")} {
				st, eb, rec := post(body, ce.portal)
				if st != 201 || rec.RecordedBy != "subject" || rec.ActorType != "service_account" {
					t.Fatalf("portal: %d %+v %+v", st, eb.Error, rec)
				}
			}
			recs, _, err := ce.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: ce.tenant.ID, TargetID: ce.ada})
			if err != nil {
				t.Fatal(err)
			}
			by := map[string]string{}
			for _, r := range recs {
				if strings.HasPrefix(r.Event.Action, "consent.") && r.Event.Action != "consent.read" {
					by[r.Event.Action+"/"+r.Event.ActorType] = r.Event.Details["recorded_by"].(string)
				}
			}
			if len(by) != 3 || by["consent.granted/user"] != "caseworker" || by["consent.granted/service_account"] != "subject" ||
				by["consent.withdrawn/service_account"] != "subject" {
				t.Fatalf("audited recorders: %v", by)
			}
		})
	}
}
