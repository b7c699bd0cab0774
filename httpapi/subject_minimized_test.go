package httpapi_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"tutela"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

const minimizedSchemaJSON = `{"fields":[
 {"name":"full_name","type":"name","classification":"YELLOW","purposes":["ai_triage","case_management"],"retention_days":365,"mask":"partial","searchable":true},
 {"name":"date_of_birth","type":"date","classification":"YELLOW","purposes":["ai_triage"],"retention_days":365,"mask":"redacted","searchable":false},
 {"name":"address","type":"address","classification":"YELLOW","purposes":["ai_triage"],"retention_days":365,"mask":"redacted","searchable":false},
 {"name":"national_id","type":"national_id","classification":"YELLOW","purposes":["ai_triage"],"retention_days":365,"mask":"hashed","searchable":true},
 {"name":"phone","type":"phone","classification":"YELLOW","purposes":["case_management"],"retention_days":30,"mask":"partial","searchable":false},
 {"name":"diagnosis","type":"text","classification":"RED","purposes":["ai_triage"],"retention_days":90,"mask":"hidden","searchable":false},
 {"name":"notes","type":"text","classification":"YELLOW","purposes":["ai_triage"],"retention_days":90,"mask":"hidden","searchable":false}]}`

// The ai_triage profile: full_name and notes are not listed (never leave), phone passes but its
// schema field does not allow ai_triage, diagnosis passes but is RED.
const minimizedProfileJSON = `{"fields":{"date_of_birth":{"action":"generalize"},"address":{"action":"generalize"},
 "national_id":{"action":"tokenize"},"phone":{"action":"pass"},"diagnosis":{"action":"pass"}}}`

type minimizedAnswer struct {
	SubjectID string            `json:"subject_id"`
	Purpose   string            `json:"purpose"`
	Values    map[string]string `json:"values"`
	Withheld  []string          `json:"withheld"`
}

func TestSubjectMinimized_AppliesProfileAndClearance(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, func(deps *httpapi.Deps) { deps.Keys = newVault(t, deps.DB) })
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			e.seed(t, "acme", "op@example.org", pw, "operator")
			e.seed(t, "acme", "aud@example.org", pw, "auditor")
			e.seed(t, "root", "root@example.org", pw, "super_admin")
			e.seed(t, "other", "admin@other.example.org", pw, "program_admin")
			admin := e.login(t, "acme", "admin@example.org", pw, "").AccessToken
			op := e.login(t, "acme", "op@example.org", pw, "").AccessToken
			aud := e.login(t, "acme", "aud@example.org", pw, "").AccessToken
			root := e.login(t, "root", "root@example.org", pw, "").AccessToken
			otherAdmin := e.login(t, "other", "admin@other.example.org", pw, "").AccessToken
			base := "/v1/tenants/" + tn.ID
			putSchemaAsPlatform(t, e, tn.ID, minimizedSchemaJSON)
			if res, b := e.req(t, "PUT", base+"/minimization-profiles/ai_triage", minimizedProfileJSON, "", admin); res.StatusCode != 200 {
				t.Fatalf("PUT profile: %d %s", res.StatusCode, b)
			}
			res, b := e.req(t, "POST", base+"/subjects", `{"values":{"full_name":"Layla Mansour","date_of_birth":"1990-04-02",
				"address":"12 Rainbow St, Jabal Amman, Amman, Jordan","national_id":"JO-99812","phone":"+962 79 123 4567",
				"diagnosis":"Type 2 diabetes","notes":"Prefers Arabic"}}`, "", root)
			if res.StatusCode != 201 {
				t.Fatalf("create: %d %s", res.StatusCode, b)
			}
			var subj struct{ ID string }
			mustUnmarshal(t, b, &subj)
			path := base + "/subjects/" + subj.ID + "/minimized?purpose=ai_triage"

			res, b = e.req(t, "GET", path, "", "", op)
			if res.StatusCode != 200 {
				t.Fatalf("minimized: %d %s", res.StatusCode, b)
			}
			var got minimizedAnswer
			mustUnmarshal(t, b, &got)
			now := e.clock.Now()
			age := now.Year() - 1990
			if now.Month() < 4 || (now.Month() == 4 && now.Day() < 2) {
				age--
			}
			band := fmt.Sprintf("%d-%d", 25+(age-25)/10*10, 25+(age-25)/10*10+9)
			if got.SubjectID != subj.ID || got.Purpose != "ai_triage" || len(got.Values) != 3 ||
				got.Values["date_of_birth"] != band || got.Values["address"] != "Jordan" ||
				!strings.HasPrefix(got.Values["national_id"], "tok_") {
				t.Fatalf("minimized view %s (want age band %s)", b, band)
			}
			// Not in the profile: absent. Profile says pass but the schema does not allow the
			// purpose (phone), or the field is above the caller's clearance (diagnosis): withheld.
			if !slices.Equal(got.Withheld, []string{"diagnosis", "phone"}) {
				t.Fatalf("withheld %v, want diagnosis and phone", got.Withheld)
			}
			for _, secret := range []string{"Layla", "1990", "Rainbow", "JO-99812", "JO99812", "diabetes", "Arabic", "4567"} {
				if strings.Contains(string(b), secret) {
					t.Fatalf("minimized answer holds %q: %s", secret, b)
				}
			}
			// The token is the tokens API's for the same field and value (and stays one token).
			res, b = e.req(t, "POST", base+"/tokens", `{"field":"national_id","values":["JO-99812"],"person_id":"`+subj.ID+`"}`, "", admin)
			var tok struct{ Tokens []string }
			mustUnmarshal(t, b, &tok)
			if res.StatusCode != 200 || len(tok.Tokens) != 1 || tok.Tokens[0] != got.Values["national_id"] {
				t.Fatalf("tokens API gave %s, minimized view %s", b, got.Values["national_id"])
			}
			var held int
			if err := e.db.SQL().QueryRowContext(ctxBG, `SELECT count(*) FROM token_values WHERE person_id = $1`, subj.ID).Scan(&held); err != nil || held != 1 {
				t.Fatalf("%d token values held for the subject (%v), want 1: erasure must shred it", held, err)
			}

			// Audited with the purpose and field names, never values.
			recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "subject.read_minimized"})
			if err != nil || len(recs) != 1 {
				t.Fatalf("%d subject.read_minimized events (%v)", len(recs), err)
			}
			if det, _ := json.Marshal(recs[0].Event.Details); !strings.Contains(string(det), `"purpose":"ai_triage"`) ||
				!strings.Contains(string(det), `"fields":["address","date_of_birth","national_id"]`) ||
				strings.Contains(string(recs[0].Canonical), "Jordan") || strings.Contains(string(recs[0].Canonical), "tok_") {
				t.Fatalf("audit details %s", det)
			}

			// Refusals: no READ on subjects, another tenant, no profile, no purpose.
			res, b = e.req(t, "GET", path, "", "", aud)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = e.req(t, "GET", path, "", "", otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = e.req(t, "GET", base+"/subjects/"+subj.ID+"/minimized?purpose=marketing", "", "", op)
			if eb := wantError(t, res, b, 404, tutela.ENOTFOUND); !strings.Contains(eb.Error.Message, "minimization profile") {
				t.Fatalf("no profile: %s", b)
			}
			res, b = e.req(t, "GET", base+"/subjects/"+subj.ID+"/minimized", "", "", op)
			wantError(t, res, b, 400, tutela.EINVALID)

			// Erased: the erased error, and the subject's token copy is gone with it.
			if err := e.db.Update(ctxBG, func(tx *sqlstore.Tx) error {
				_, err := tx.Subjects(tn.ID).Erase(ctxBG, subj.ID, "request", "GDPR Art. 17", sqlstore.ErasureRequest)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			res, b = e.req(t, "GET", path, "", "", op)
			if eb := wantError(t, res, b, 404, tutela.ENOTFOUND); eb.Error.Message != "subject was erased" {
				t.Fatalf("erased subject: %s", b)
			}
			if err := e.db.SQL().QueryRowContext(ctxBG, `SELECT count(*) FROM token_values WHERE person_id = $1`, subj.ID).Scan(&held); err != nil || held != 0 {
				t.Fatalf("%d token values of the erased subject left (%v)", held, err)
			}
		})
	}
}
