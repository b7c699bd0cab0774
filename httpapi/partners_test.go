package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/httpapi"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// A schema with one field of each classification, all allowed for "aid" and two for
// "case_management": a partner reading for aid through an aid share must get city only.
const partnerSchemaJSON = `{"fields":[
 {"name":"city","type":"text","classification":"GREEN","purposes":["aid","case_management"],"retention_days":365,"mask":"hidden","searchable":true},
 {"name":"full_name","type":"name","classification":"YELLOW","purposes":["aid","case_management"],"retention_days":365,"mask":"partial","searchable":true},
 {"name":"national_id","type":"national_id","classification":"RED","purposes":["aid"],"retention_days":3650,"mask":"hashed","searchable":true}]}`

const partnerSubjectJSON = `{"values":{"city":"Leeds","full_name":"Ada Lovelace","national_id":"AB-947 381"}}`

type partnerEnv struct {
	*env
	tenant          *tutela.Tenant
	admin, root     string
	base, otherBase string
	otherAdmin      string
}

func newPartnerEnv(t *testing.T, d sqlstore.Dialect, opts ...func(*httpapi.Deps)) *partnerEnv {
	t.Helper()
	e := newEnv(t, d, func(deps *httpapi.Deps) {
		deps.Keys = newVault(t, deps.DB)
		for _, o := range opts {
			o(deps)
		}
	})
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	other, _ := e.seed(t, "other", "admin@other.example.org", pw, "program_admin")
	pe := &partnerEnv{env: e, tenant: tn,
		admin:      e.login(t, "acme", "admin@example.org", pw, "").AccessToken,
		root:       e.login(t, "root", "root@example.org", pw, "").AccessToken,
		otherAdmin: e.login(t, "other", "admin@other.example.org", pw, "").AccessToken,
		base:       "/v1/tenants/" + tn.ID, otherBase: "/v1/tenants/" + other.ID}
	if res, b := e.req(t, "PUT", pe.base+"/subject-schema", partnerSchemaJSON, "", pe.root); res.StatusCode != 200 {
		t.Fatalf("put schema: %d %s", res.StatusCode, b)
	}
	return pe
}

func (pe *partnerEnv) call(t *testing.T, method, path, body, auth string, want int) []byte {
	t.Helper()
	res, b := pe.req(t, method, path, body, "", auth)
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, b, want)
	}
	return b
}

func (pe *partnerEnv) createPartner(t *testing.T, name string) string {
	t.Helper()
	var p struct{ ID string }
	mustUnmarshal(t, pe.call(t, "POST", pe.base+"/partners", `{"name":"`+name+`","redirect_urls":["https://`+
		strings.ToLower(name)+`.example/welcome"]}`, pe.admin, 201), &p)
	return p.ID
}

// partnerUser creates a partner's user through the API, gives them a password in the store (the
// reset flow's outcome) and signs them in.
func (pe *partnerEnv) partnerUser(t *testing.T, partnerID, email string) string {
	t.Helper()
	var u struct{ ID string }
	mustUnmarshal(t, pe.call(t, "POST", pe.base+"/partners/"+partnerID+"/users",
		`{"email":"`+email+`","display_name":"Partner person"}`, pe.admin, 201), &u)
	ctx := context.Background()
	if err := pe.db.Update(ctx, func(tx *sqlstore.Tx) error {
		h, err := fastHasher(t).Hash(ctx, pw)
		if err != nil {
			return err
		}
		return tx.Users(pe.tenant.ID).SetPasswordHash(ctx, u.ID, h)
	}); err != nil {
		t.Fatal(err)
	}
	return pe.login(t, "acme", email, pw, "").AccessToken
}

func (pe *partnerEnv) subject(t *testing.T) string {
	t.Helper()
	var s struct{ ID string }
	mustUnmarshal(t, pe.call(t, "POST", pe.base+"/subjects", partnerSubjectJSON, pe.root, 201), &s)
	return s.ID
}

func (pe *partnerEnv) share(t *testing.T, subjectID, partnerID, purpose string, expires time.Time) string {
	t.Helper()
	var sh struct{ ID string }
	mustUnmarshal(t, pe.call(t, "POST", pe.base+"/subjects/"+subjectID+"/shares", `{"partner_id":"`+partnerID+`","purpose":"`+
		purpose+`","expires_at":"`+expires.Format(time.RFC3339)+`","justification":"Referred for housing aid, case 2026-17"}`, pe.admin, 201), &sh)
	return sh.ID
}

// hidden asserts that auth's read of subjectID for purpose answers exactly what a subject that
// does not exist answers: 404 not_found, the same message.
func (pe *partnerEnv) hidden(t *testing.T, subjectID, purpose, auth string) {
	t.Helper()
	res, b := pe.req(t, "GET", pe.base+"/subjects/"+subjectID+"?purpose="+purpose, "", "", auth)
	got := wantError(t, res, b, 404, tutela.ENOTFOUND)
	res, b = pe.req(t, "GET", pe.base+"/subjects/"+tutela.NewID()+"?purpose="+purpose, "", "", auth)
	missing := wantError(t, res, b, 404, tutela.ENOTFOUND)
	if got.Error.Message != missing.Error.Message {
		t.Fatalf("an unshared subject answers %q, a missing one %q: they must not differ", got.Error.Message, missing.Error.Message)
	}
}

func (pe *partnerEnv) readValues(t *testing.T, subjectID, purpose, auth string) map[string]any {
	t.Helper()
	var v struct {
		Values map[string]any `json:"values"`
	}
	mustUnmarshal(t, pe.call(t, "GET", pe.base+"/subjects/"+subjectID+"?purpose="+purpose, "", auth, 200), &v)
	return v.Values
}

func (pe *partnerEnv) listIDs(t *testing.T, auth string) []string {
	t.Helper()
	var l struct {
		Subjects []struct{ ID string } `json:"subjects"`
	}
	mustUnmarshal(t, pe.call(t, "GET", pe.base+"/subjects", "", auth, 200), &l)
	var ids []string
	for _, s := range l.Subjects {
		ids = append(ids, s.ID)
	}
	return ids
}

// The heart of issue 18's partner part: a partner's user sees a subject only through an active
// share of their own partner, only for the share's purpose, only GREEN fields; everything else
// is the 404 of a subject that does not exist — on every read path.
func TestPartners_UserSeesOnlySharedSubjectsForTheSharePurposeAtGreen(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pe := newPartnerEnv(t, d)
			a, b := pe.createPartner(t, "Shelter"), pe.createPartner(t, "Clinic")
			ua := pe.partnerUser(t, a, "caseworker@shelter.example")
			ub := pe.partnerUser(t, b, "nurse@clinic.example")
			s1, s2 := pe.subject(t), pe.subject(t)

			// Nothing shared yet: every path hides both.
			pe.hidden(t, s1, "aid", ua)
			if ids := pe.listIDs(t, ua); len(ids) != 0 {
				t.Fatalf("partner lists %v before any share", ids)
			}
			pe.share(t, s1, a, "aid", pe.clock.Now().Add(30*24*time.Hour))

			vals := pe.readValues(t, s1, "aid", ua)
			if len(vals) != 1 || vals["city"] != "Leeds" {
				t.Fatalf("partner read %v: want only the GREEN field city, in clear", vals)
			}
			pe.hidden(t, s1, "case_management", ua) // another purpose than the share's
			pe.hidden(t, s2, "aid", ua)             // not shared
			pe.hidden(t, s1, "aid", ub)             // shared with another partner
			if ids := pe.listIDs(t, ua); len(ids) != 1 || ids[0] != s1 {
				t.Fatalf("partner lists %v, want only %s", ids, s1)
			}
			if ids := pe.listIDs(t, ub); len(ids) != 0 {
				t.Fatalf("partner B lists %v", ids)
			}
			// The erasure ledger names every erased subject of the tenant: never a partner's.
			pe.call(t, "GET", pe.base+"/erasures", "", ua, 403)
			var found struct {
				IDs []string `json:"subject_ids"`
			}
			mustUnmarshal(t, pe.call(t, "POST", pe.base+"/subjects/search", `{"field":"city","value":"Leeds","purpose":"aid"}`, ua, 200), &found)
			if len(found.IDs) != 1 || found.IDs[0] != s1 {
				t.Fatalf("partner search found %v, want only %s", found.IDs, s1)
			}
			mustUnmarshal(t, pe.call(t, "POST", pe.base+"/subjects/search", `{"field":"city","value":"Leeds","purpose":"case_management"}`, ua, 200), &found)
			if len(found.IDs) != 0 {
				t.Fatalf("partner search for another purpose found %v", found.IDs)
			}
			// The minimized view: the same share, the same purpose, GREEN only.
			profile := `{"fields":{"city":{"action":"pass"},"full_name":{"action":"pass"}}}`
			for _, purpose := range []string{"aid", "case_management"} {
				pe.call(t, "PUT", pe.base+"/minimization-profiles/"+purpose, profile, pe.admin, 200)
			}
			var m struct {
				Values   map[string]string `json:"values"`
				Withheld []string          `json:"withheld"`
			}
			mustUnmarshal(t, pe.call(t, "GET", pe.base+"/subjects/"+s1+"/minimized?purpose=aid", "", ua, 200), &m)
			if len(m.Values) != 1 || m.Values["city"] != "Leeds" {
				t.Fatalf("partner's minimized view: %+v", m)
			}
			for _, c := range []struct{ subject, purpose, auth string }{{s1, "case_management", ua}, {s2, "aid", ua}, {s1, "aid", ub}} {
				res, body := pe.req(t, "GET", pe.base+"/subjects/"+c.subject+"/minimized?purpose="+c.purpose, "", "", c.auth)
				wantError(t, res, body, 404, tutela.ENOTFOUND)
			}
			// A share discloses the record, not the legal matters around it.
			res, body := pe.req(t, "GET", pe.base+"/subjects/"+s1+"/holds", "", "", ua)
			wantError(t, res, body, 404, tutela.ENOTFOUND)
			// Writes and other tenants stay out of reach.
			res, body = pe.req(t, "PATCH", pe.base+"/subjects/"+s1, `{"values":{"city":"York"}}`, "", ua)
			wantError(t, res, body, 403, tutela.EFORBIDDEN)
			res, body = pe.req(t, "GET", pe.otherBase+"/subjects/"+s1+"?purpose=aid", "", "", ua)
			wantError(t, res, body, 404, tutela.ENOTFOUND)

			// A disabled partner's users see nothing; enabled again, the share is back.
			pe.call(t, "PATCH", pe.base+"/partners/"+a, `{"status":"disabled"}`, pe.admin, 200)
			pe.hidden(t, s1, "aid", ua)
			if ids := pe.listIDs(t, ua); len(ids) != 0 {
				t.Fatalf("disabled partner lists %v", ids)
			}
			pe.call(t, "PATCH", pe.base+"/partners/"+a, `{"status":"active"}`, pe.admin, 200)
			pe.readValues(t, s1, "aid", ua)

			// Expiry, on the transaction's clock (signing in again: the access token is shorter).
			pe.clock.Add(30*24*time.Hour - time.Second)
			ua = pe.login(t, "acme", "caseworker@shelter.example", pw, "").AccessToken
			pe.readValues(t, s1, "aid", ua)
			pe.clock.Add(time.Second)
			pe.hidden(t, s1, "aid", ua)
			if ids := pe.listIDs(t, ua); len(ids) != 0 {
				t.Fatalf("expired share still lists %v", ids)
			}
		})
	}
}

// Revocation hides the subject at once, and both the share and its revocation are in the audit
// log with their justifications.
func TestPartners_RevokedShareHidesAndBothStepsAreAudited(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pe := newPartnerEnv(t, d)
			a := pe.createPartner(t, "Shelter")
			ua := pe.partnerUser(t, a, "caseworker@shelter.example")
			s := pe.subject(t)
			id := pe.share(t, s, a, "aid", pe.clock.Now().Add(24*time.Hour))
			pe.readValues(t, s, "aid", ua)

			res, b := pe.req(t, "DELETE", pe.base+"/subjects/"+s+"/shares/"+id, `{"justification":""}`, "", pe.admin)
			wantError(t, res, b, 400, tutela.EINVALID)
			res, b = pe.req(t, "DELETE", pe.otherBase+"/subjects/"+s+"/shares/"+id, `{"justification":"x"}`, "", pe.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			pe.readValues(t, s, "aid", ua)

			pe.call(t, "DELETE", pe.base+"/subjects/"+s+"/shares/"+id, `{"justification":"Housing case closed"}`, pe.admin, 200)
			pe.hidden(t, s, "aid", ua)
			res, b = pe.req(t, "DELETE", pe.base+"/subjects/"+s+"/shares/"+id, `{"justification":"again"}`, "", pe.admin)
			wantError(t, res, b, 409, tutela.ECONFLICT)

			var l struct {
				Shares []struct {
					ID        string
					Active    bool
					RevokedAt *time.Time `json:"revoked_at"`
				}
			}
			mustUnmarshal(t, pe.call(t, "GET", pe.base+"/subjects/"+s+"/shares", "", pe.admin, 200), &l)
			if len(l.Shares) != 1 || l.Shares[0].Active || l.Shares[0].RevokedAt == nil {
				t.Fatalf("subject's shares after revocation: %+v", l.Shares)
			}
			mustUnmarshal(t, pe.call(t, "GET", pe.base+"/partners/"+a+"/shares", "", pe.admin, 200), &l)
			if len(l.Shares) != 1 || l.Shares[0].ID != id {
				t.Fatalf("partner's shares: %+v", l.Shares)
			}
			var created, revoked bool
			for _, c := range auditCanonicals(t, pe.db) {
				var ev struct {
					Action  string         `json:"action"`
					Details map[string]any `json:"details"`
				}
				if err := json.Unmarshal(c, &ev); err != nil {
					continue
				}
				switch ev.Action {
				case "share.created":
					created = ev.Details["justification"] == "Referred for housing aid, case 2026-17" && ev.Details["subject_id"] == s
				case "share.revoked":
					revoked = ev.Details["justification"] == "Housing case closed" && ev.Details["partner_id"] == a
				}
			}
			if !created || !revoked {
				t.Fatalf("audit: share.created with justification %v, share.revoked with justification %v", created, revoked)
			}
		})
	}
}

// Creating a share checks everything before it discloses anything: a refusal stores nothing.
func TestShares_RefusedUnlessPurposeConsentExpiryPartnerAndModeAllow(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pe := newPartnerEnv(t, d)
			a, off := pe.createPartner(t, "Shelter"), pe.createPartner(t, "Closed")
			pe.call(t, "PATCH", pe.base+"/partners/"+off, `{"status":"disabled"}`, pe.admin, 200)
			s := pe.subject(t)
			ctx := context.Background()
			// A purpose on consent the subject never gave.
			if err := pe.db.Update(ctx, func(tx *sqlstore.Tx) error {
				_, err := tx.Consent(pe.tenant.ID).PutPurpose(ctx, &privacy.Purpose{Name: "outreach", Description: "Newsletters",
					LawfulBasis: privacy.BasisConsent, NoticeID: "outreach_notice", NoticeVersion: 1, ConsentMinVersion: 1})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			now := pe.clock.Now()
			body := func(partner, purpose string, exp time.Time, just string) string {
				return `{"partner_id":"` + partner + `","purpose":"` + purpose + `","expires_at":"` + exp.Format(time.RFC3339) +
					`","justification":"` + just + `"}`
			}
			day := 24 * time.Hour
			for _, c := range []struct {
				name, body string
				status     int
				code       string
			}{
				{"expired", body(a, "aid", now.Add(-time.Second), "why"), 400, tutela.EINVALID},
				{"now", body(a, "aid", now, "why"), 400, tutela.EINVALID},
				{"beyond a year", body(a, "aid", now.AddDate(1, 0, 1), "why"), 400, tutela.EINVALID},
				{"no justification", body(a, "aid", now.Add(day), ""), 400, tutela.EINVALID},
				{"undeclared purpose", body(a, "marketing", now.Add(day), "why"), 400, tutela.EINVALID},
				{"no consent", body(a, "outreach", now.Add(day), "why"), 403, tutela.ECONSENTREQUIRED},
				{"disabled partner", body(off, "aid", now.Add(day), "why"), 409, tutela.ECONFLICT},
				{"unknown partner", body(tutela.NewID(), "aid", now.Add(day), "why"), 404, tutela.ENOTFOUND},
				{"no partner", body("", "aid", now.Add(day), "why"), 404, tutela.ENOTFOUND},
			} {
				res, b := pe.req(t, "POST", pe.base+"/subjects/"+s+"/shares", c.body, "", pe.admin)
				if res.StatusCode != c.status {
					t.Fatalf("%s: %d %s, want %d", c.name, res.StatusCode, b, c.status)
				}
				wantError(t, res, b, c.status, c.code)
			}
			// Another tenant's administrator, and another tenant's subject, are not found.
			res, b := pe.req(t, "POST", pe.otherBase+"/subjects/"+s+"/shares", body(a, "aid", now.Add(day), "why"), "", pe.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = pe.req(t, "POST", pe.base+"/subjects/"+tutela.NewID()+"/shares", body(a, "aid", now.Add(day), "why"), "", pe.admin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			// A year exactly is allowed.
			pe.call(t, "POST", pe.base+"/subjects/"+s+"/shares", body(a, "aid", now.AddDate(1, 0, 0), "why"), pe.admin, 201)

			// A tenant in simulation shares nothing.
			rawExec(t, pe.db, `UPDATE tenants SET mode = 'simulation' WHERE id = $1`, pe.tenant.ID)
			res, b = pe.req(t, "POST", pe.base+"/subjects/"+s+"/shares", body(a, "aid", now.Add(day), "why"), "", pe.admin)
			if e := wantError(t, res, b, 409, tutela.ECONFLICT); e.Error.Message != "a tenant in simulation shares nothing with partners" {
				t.Fatalf("simulation refusal says %q", e.Error.Message)
			}
			var l struct{ Shares []any }
			mustUnmarshal(t, pe.call(t, "GET", pe.base+"/subjects/"+s+"/shares", "", pe.admin, 200), &l)
			if len(l.Shares) != 1 {
				t.Fatalf("refusals stored shares: %d, want only the one allowed", len(l.Shares))
			}
		})
	}
}

// A partner's user holds the partner role and nothing else, whoever tries to give them more;
// and the partner role is not for the tenant's own people.
func TestPartners_UserCannotBeGivenAnotherRoleOrPermission(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pe := newPartnerEnv(t, d)
			a := pe.createPartner(t, "Shelter")
			ua := pe.partnerUser(t, a, "caseworker@shelter.example")
			var users struct {
				Users []struct{ ID, Email string }
			}
			mustUnmarshal(t, pe.call(t, "GET", pe.base+"/partners/"+a+"/users", "", pe.admin, 200), &users)
			if len(users.Users) != 1 {
				t.Fatalf("partner's users: %+v", users.Users)
			}
			id := users.Users[0].ID
			for _, who := range []string{pe.admin, pe.root} {
				for _, role := range []string{"program_admin", "operator", "auditor"} {
					res, b := pe.req(t, "PUT", pe.base+"/users/"+id+"/roles/"+role, "", "", who)
					wantError(t, res, b, 403, tutela.EFORBIDDEN)
				}
				res, b := pe.req(t, "POST", pe.base+"/users/"+id+"/permissions", `{"resource":"subjects","action":"READ","max_classification":"GREEN","effect":"allow"}`, "", who)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			// A deny only takes away: allowed.
			pe.call(t, "POST", pe.base+"/users/"+id+"/permissions", `{"resource":"referrals","action":"UPDATE","effect":"deny"}`, pe.admin, 201)
			// The partner role for one of the tenant's own people.
			_, own := pe.seed(t, "acme", "staff@example.org", pw)
			res, b := pe.req(t, "PUT", pe.base+"/users/"+own.ID+"/roles/partner", "", "", pe.admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// What the partner's user may do: no users, no partners, no shares.
			for _, path := range []string{"/users", "/partners", "/partners/" + a + "/shares", "/service-accounts"} {
				res, b := pe.req(t, "GET", pe.base+path, "", "", ua)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			// Even a row written behind the API's back gives nothing: the policy keeps the
			// partner role's grants only.
			rawExec(t, pe.db, `INSERT INTO user_roles (tenant_id, user_id, role_id, granted_at)
				SELECT $1, $2, id, $3 FROM roles WHERE key = 'program_admin' AND tenant_id IS NULL`, pe.tenant.ID, id, pe.clock.Now())
			res, b = pe.req(t, "GET", pe.base+"/users", "", "", ua)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
		})
	}
}

// A partner's service account can read and confirm referrals and nothing else: no subject, even
// a shared one, no users, no partners.
func TestPartners_ServiceAccountHoldsOnlyReferrals(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pe := newPartnerEnv(t, d)
			a := pe.createPartner(t, "Shelter")
			var c struct {
				SA struct {
					ClientID    string `json:"client_id"`
					PartnerID   string `json:"partner_id"`
					Clearance   string
					Permissions []struct{ Resource, Action, MaxClass string }
				} `json:"service_account"`
				Secret string `json:"client_secret"`
			}
			mustUnmarshal(t, pe.call(t, "POST", pe.base+"/partners/"+a+"/service-accounts", `{"name":"shelter-confirm"}`, pe.admin, 201), &c)
			if c.SA.PartnerID != a || c.SA.Clearance != "GREEN" || len(c.SA.Permissions) != 2 || c.Secret == "" {
				t.Fatalf("partner service account: %+v", c.SA)
			}
			for _, p := range c.SA.Permissions {
				if p.Resource != "referrals" || (p.Action != "READ" && p.Action != "UPDATE") {
					t.Fatalf("partner service account holds %+v", p)
				}
			}
			// Another tenant's partner, an unknown one, and extra fields are refused.
			res, b := pe.req(t, "POST", pe.otherBase+"/partners/"+a+"/service-accounts", `{"name":"x"}`, "", pe.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = pe.req(t, "POST", pe.base+"/partners/"+tutela.NewID()+"/service-accounts", `{"name":"y"}`, "", pe.admin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = pe.req(t, "POST", pe.base+"/partners/"+a+"/service-accounts",
				`{"name":"z","permissions":[{"resource":"subjects","action":"READ"}]}`, "", pe.admin)
			wantError(t, res, b, 400, tutela.EINVALID)

			code, tok := pe.clientToken(t, c.SA.ClientID, c.Secret, "")
			if code != 200 {
				t.Fatalf("token: %d %v", code, tok)
			}
			if scope, _ := tok["scope"].(string); !strings.Contains(scope, "referrals") || strings.Contains(scope, "subjects") {
				t.Fatalf("token scope %q", scope)
			}
			at := tok["access_token"].(string)
			s := pe.subject(t)
			pe.share(t, s, a, "aid", pe.clock.Now().Add(24*time.Hour))
			for _, c := range []struct{ method, path, body string }{
				{"GET", "/subjects/" + s + "?purpose=aid", ""},
				{"GET", "/subjects", ""},
				{"POST", "/subjects/search", `{"field":"city","value":"Leeds","purpose":"aid"}`},
				{"GET", "/users", ""},
				{"GET", "/partners", ""},
				{"GET", "/subjects/" + s + "/shares", ""},
				{"POST", "/subjects/" + s + "/shares", `{"partner_id":"` + a + `","purpose":"aid","expires_at":"` +
					pe.clock.Now().Add(time.Hour).Format(time.RFC3339) + `","justification":"x"}`},
			} {
				res, b := pe.req(t, c.method, pe.base+c.path, c.body, "", at)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
		})
	}
}

// Registering or changing where people are sent, and sharing a subject, need a person's fresh
// second factor; renaming a partner does not.
func TestPartners_RedirectURLsAndSharesNeedFreshStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, func(d *httpapi.Deps) { withMFA(d); d.Keys = newVault(t, d.DB) })
	tn, a, totp := adminWithFactor(t, e)
	base := "/v1/tenants/" + tn.ID
	e.stepUp(t, a.cookie, totp)
	var p struct{ ID string }
	res, b := e.req(t, "POST", base+"/partners", `{"name":"Shelter","redirect_urls":["https://shelter.example/in"]}`, "", a.cookie)
	if res.StatusCode != 201 {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	mustUnmarshal(t, b, &p)
	greenOnly := `{"fields":[{"name":"city","type":"text","classification":"GREEN","purposes":["aid"],"retention_days":365,"mask":"hidden","searchable":false}]}`
	if res, b := e.req(t, "PUT", base+"/subject-schema", greenOnly, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("schema: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "POST", base+"/subjects", `{"values":{"city":"Leeds"}}`, "", a.cookie)
	if res.StatusCode != 201 {
		t.Fatalf("subject: %d %s", res.StatusCode, b)
	}
	var s struct{ ID string }
	mustUnmarshal(t, b, &s)
	e.clock.Add(6 * time.Minute)
	share := `{"partner_id":"` + p.ID + `","purpose":"aid","expires_at":"` + e.clock.Now().Add(time.Hour).Format(time.RFC3339) + `","justification":"why"}`
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/partners", `{"name":"Other","redirect_urls":["https://other.example/in"]}`},
		{"PATCH", "/partners/" + p.ID, `{"redirect_urls":["https://attacker.example/in"]}`},
		{"POST", "/subjects/" + s.ID + "/shares", share},
		{"POST", "/partners/" + p.ID + "/service-accounts", `{"name":"confirm"}`},
	} {
		res, b := e.req(t, c.method, base+c.path, c.body, "", a.cookie)
		wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	}
	res, b = e.req(t, "PATCH", base+"/partners/"+p.ID, `{"name":"Shelter North"}`, "", a.cookie)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"https://shelter.example/in"`)) {
		t.Fatalf("rename without step-up: %d %s", res.StatusCode, b)
	}
	e.stepUp(t, a.cookie, totp)
	if res, b := e.req(t, "PATCH", base+"/partners/"+p.ID, `{"redirect_urls":["https://shelter.example/in2"]}`, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("change with step-up: %d %s", res.StatusCode, b)
	}
	if res, b := e.req(t, "POST", base+"/subjects/"+s.ID+"/shares", share, "", a.cookie); res.StatusCode != 201 {
		t.Fatalf("share with step-up: %d %s", res.StatusCode, b)
	}
}

// Partners are the tenant's own: another tenant's administrator finds none of them.
func TestPartners_CRUDScopedToTenant(t *testing.T) {
	t.Parallel()
	pe := newPartnerEnv(t, sqlstore.SQLite)
	a := pe.createPartner(t, "Shelter")
	res, b := pe.req(t, "POST", pe.base+"/partners", `{"name":"Shelter"}`, "", pe.admin)
	wantError(t, res, b, 409, tutela.ECONFLICT)
	res, b = pe.req(t, "POST", pe.base+"/partners", `{"name":"Bad","redirect_urls":["http://bad.example/"]}`, "", pe.admin)
	wantError(t, res, b, 400, tutela.EINVALID)
	res, b = pe.req(t, "GET", pe.otherBase+"/partners/"+a, "", "", pe.otherAdmin)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
	res, b = pe.req(t, "PATCH", pe.otherBase+"/partners/"+a, `{"status":"disabled"}`, "", pe.otherAdmin)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
	res, b = pe.req(t, "GET", pe.base+"/partners/not-an-id", "", "", pe.admin)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
	var l struct{ Partners []struct{ ID string } }
	mustUnmarshal(t, pe.call(t, "GET", pe.otherBase+"/partners", "", pe.otherAdmin, 200), &l)
	if len(l.Partners) != 0 {
		t.Fatalf("other tenant lists %v", l.Partners)
	}
	mustUnmarshal(t, pe.call(t, "GET", pe.base+"/partners", "", pe.admin, 200), &l)
	if len(l.Partners) != 1 || l.Partners[0].ID != a {
		t.Fatalf("tenant lists %v", l.Partners)
	}
	pe.call(t, "GET", pe.base+"/partners/"+a, "", pe.admin, 200)
	res, b = pe.req(t, "POST", pe.otherBase+"/partners/"+a+"/users", `{"email":"x@y.example","display_name":"X"}`, "", pe.otherAdmin)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
}

// rawExec runs q behind the store's back, as the platform (PostgreSQL's row-level security
// otherwise shows the connection no tenant's rows).
func rawExec(t *testing.T, db *sqlstore.DB, q string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if db.Dialect() == sqlstore.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', '*', true)`); err != nil {
			t.Fatal(err)
		}
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows, want 1", q, n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A resource server learns whom a partner's user acts for: an allowed decision carries the
// partner's ID as an obligation (serve only what is shared with it), and the policy snapshot
// names it for local decisions; the tenant's own people carry none.
func TestPartners_DecisionsNameThePartnerForResourceServers(t *testing.T) {
	t.Parallel()
	pe := newPartnerEnv(t, sqltest.Dialects[0])
	a := pe.createPartner(t, "Shelter")
	ua := pe.partnerUser(t, a, "caseworker@shelter.example")
	var dec struct {
		Allow       bool `json:"allow"`
		Obligations struct {
			Partner string `json:"partner_id"`
		} `json:"obligations"`
	}
	mustUnmarshal(t, pe.call(t, "POST", "/v1/authz/check", `{"action":"READ","resource":"records","classification":"GREEN"}`, ua, 200), &dec)
	if !dec.Allow || dec.Obligations.Partner != a {
		t.Fatalf("partner user's decision: %+v, want allow with partner %s", dec, a)
	}
	dec.Obligations.Partner = ""
	mustUnmarshal(t, pe.call(t, "POST", "/v1/authz/check", `{"action":"READ","resource":"records","classification":"GREEN"}`, pe.admin, 200), &dec)
	if dec.Obligations.Partner != "" {
		t.Fatalf("the tenant's administrator carries a partner: %+v", dec)
	}
}
