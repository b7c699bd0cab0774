package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// consentSchemaJSON lets full_name and phone be read for outreach (a purpose on consent) and
// case_management (a purpose on contract, declared by seed).
const consentSchemaJSON = `{"fields":[
 {"name":"full_name","type":"name","classification":"YELLOW","purposes":["case_management","outreach"],"retention_days":365,"mask":"partial","searchable":true},
 {"name":"phone","type":"phone","classification":"YELLOW","purposes":["outreach"],"retention_days":30,"mask":"partial","searchable":false}]}`

const outreachV1 = `{"description":"Newsletters about programmes","lawful_basis":"consent","notice_id":"outreach_notice","notice_version":1,"consent_min_version":1}`

// consentEnv is a subject env whose schema has an outreach purpose on consent, declared by the
// administrator, one subject, Ada, and the subject-facing portal: a service account that may
// record consent (the only principal that records as the subject; people record as
// caseworkers, with evidence).
type consentEnv struct {
	*subjectEnv
	ada    string
	portal string
}

func newConsentEnv(t *testing.T, d sqlstore.Dialect) *consentEnv {
	t.Helper()
	se := newSubjectEnv(t, d)
	return setupConsent(t, se)
}

func setupConsent(t *testing.T, se *subjectEnv) *consentEnv {
	t.Helper()
	if res, b := se.req(t, "PUT", se.base+"/subject-schema", consentSchemaJSON, "", se.root); res.StatusCode != 200 {
		t.Fatalf("put schema: %d %s", res.StatusCode, b)
	}
	if res, b := se.req(t, "PUT", se.base+"/purposes/outreach", outreachV1, "", se.admin); res.StatusCode != 201 {
		t.Fatalf("declare outreach: %d %s", res.StatusCode, b)
	}
	res, b := se.req(t, "POST", se.base+"/subjects", `{"values":{"full_name":"Ada Lovelace","phone":"+44 20 7946 0958"}}`, "", se.root)
	if res.StatusCode != 201 {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	var s struct{ ID string }
	mustUnmarshal(t, b, &s)
	sa := se.createSA(t, se.tenant.ID, se.admin, `{"name":"subject-portal","permissions":[{"resource":"consents","action":"CREATE","max_classification":"YELLOW"}]}`)
	code, tok := se.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 {
		t.Fatalf("portal token: %d %v", code, tok)
	}
	return &consentEnv{subjectEnv: se, ada: s.ID, portal: tok["access_token"].(string)}
}

func consentBody(action string, version int, extra string) string {
	v := ""
	if version > 0 {
		v = `,"notice_id":"outreach_notice","notice_version":` + strconv.Itoa(version)
	}
	return `{"purpose":"outreach","action":"` + action + `","lawful_basis":"consent","channel":"web","recorded_by":"subject"` + v + extra + `}`
}

// caseworkerBody is a person's consent record for outreach: recorded as a caseworker, citing
// evidence.
func caseworkerBody(action string, version int, evidence string) string {
	return strings.Replace(consentBody(action, version, `,"evidence":"`+evidence+`"`), `"channel":"web","recorded_by":"subject"`,
		`"channel":"paper","recorded_by":"caseworker"`, 1)
}

func (ce *consentEnv) record(t *testing.T, body, auth string) {
	t.Helper()
	if res, b := ce.req(t, "POST", ce.base+"/subjects/"+ce.ada+"/consents", body, "", auth); res.StatusCode != 201 {
		t.Fatalf("record consent %s: %d %s", body, res.StatusCode, b)
	}
}

// status reads Ada for purpose and returns the status and error code.
func (ce *consentEnv) status(t *testing.T, e *env, auth, purpose string) (int, string) {
	t.Helper()
	res, b := e.req(t, "GET", ce.base+"/subjects/"+ce.ada+"?purpose="+purpose, "", "", auth)
	var eb errorBody
	_ = json.Unmarshal(b, &eb)
	return res.StatusCode, eb.Error.Code
}

func TestConsent_WithdrawalBlocksReadExportMinimizedSearchAndDetokenizeAtOnce(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ce := newConsentEnv(t, d)
			subj := ce.base + "/subjects/" + ce.ada
			if res, b := ce.req(t, "PUT", ce.base+"/minimization-profiles/outreach", `{"fields":{"full_name":{"action":"pass"}}}`, "", ce.admin); res.StatusCode != 200 {
				t.Fatalf("profile: %d %s", res.StatusCode, b)
			}
			res, b := ce.req(t, "POST", ce.base+"/tokens", `{"field":"full_name","person_id":"`+ce.ada+`","values":["Ada Lovelace"]}`, "", ce.admin)
			if res.StatusCode != 200 {
				t.Fatalf("tokenize: %d %s", res.StatusCode, b)
			}
			var tok struct{ Tokens []string }
			mustUnmarshal(t, b, &tok)
			detok := `{"purpose":"outreach","tokens":[{"field":"full_name","token":"` + tok.Tokens[0] + `"}]}`
			search := searchBody("full_name", "Ada Lovelace", "outreach")

			// No consent yet: a purpose on consent refuses everything; the contract purpose reads.
			if st, code := ce.status(t, ce.env, ce.admin, "outreach"); st != 403 || code != tutela.ECONSENTREQUIRED {
				t.Fatalf("read before consent: %d %s", st, code)
			}
			if st, _ := ce.status(t, ce.env, ce.admin, "case_management"); st != 200 {
				t.Fatalf("case_management read: %d", st)
			}

			ce.record(t, consentBody("granted", 1, ""), ce.portal)
			if got := ce.read(t, ce.ada, "outreach", ce.admin); got["full_name"] != "Ada Lovelace" {
				t.Fatalf("read after consent: %v", got)
			}
			x := ce.export(t, ce.ada, `{"purpose":"outreach"}`, ce.admin)
			if got := ce.download(t, ce.ada, x.ID, ce.admin); got["phone"] != "+44 20 7946 0958" {
				t.Fatalf("download: %v", got)
			}
			if res, b := ce.req(t, "GET", subj+"/minimized?purpose=outreach", "", "", ce.admin); res.StatusCode != 200 || !strings.Contains(string(b), "Ada Lovelace") {
				t.Fatalf("minimized: %d %s", res.StatusCode, b)
			}
			if res, b := ce.req(t, "POST", ce.base+"/tokens/detokenize", detok, "", ce.admin); res.StatusCode != 200 || !strings.Contains(string(b), `"value":"Ada Lovelace"`) {
				t.Fatalf("detokenize: %d %s", res.StatusCode, b)
			}
			if res, b := ce.req(t, "POST", ce.base+"/subjects/search", search, "", ce.admin); res.StatusCode != 200 || !strings.Contains(string(b), ce.ada) {
				t.Fatalf("search: %d %s", res.StatusCode, b)
			}

			// Withdrawn: the very next read, export, download, minimized call, detokenization
			// and search for outreach are refused; case_management is untouched.
			ce.record(t, consentBody("withdrawn", 0, ""), ce.portal)
			if st, code := ce.status(t, ce.env, ce.admin, "outreach"); st != 403 || code != tutela.ECONSENTREQUIRED {
				t.Fatalf("read after withdrawal: %d %s", st, code)
			}
			res, b = ce.req(t, "POST", subj+"/exports", `{"purpose":"outreach"}`, "", ce.admin)
			wantError(t, res, b, 403, tutela.ECONSENTREQUIRED)
			res, b = ce.req(t, "GET", subj+"/exports/"+x.ID, "", "", ce.admin)
			wantError(t, res, b, 403, tutela.ECONSENTREQUIRED)
			res, b = ce.req(t, "GET", subj+"/minimized?purpose=outreach", "", "", ce.admin)
			wantError(t, res, b, 403, tutela.ECONSENTREQUIRED)
			res, b = ce.req(t, "POST", ce.base+"/tokens/detokenize", detok, "", ce.admin)
			wantError(t, res, b, 403, tutela.ECONSENTREQUIRED)
			res, b = ce.req(t, "POST", ce.base+"/subjects/search", search, "", ce.admin)
			if res.StatusCode != 200 || strings.Contains(string(b), ce.ada) || strings.Contains(string(b), "consent") {
				t.Fatalf("search after withdrawal: %d %s (want no match, no reason)", res.StatusCode, b)
			}
			if got := ce.read(t, ce.ada, "case_management", ce.admin); got["full_name"] != "Ada Lovelace" {
				t.Fatalf("case_management after withdrawal: %v", got)
			}
			res, b = ce.req(t, "POST", ce.base+"/subjects/search", searchBody("full_name", "Ada Lovelace", "case_management"), "", ce.admin)
			if res.StatusCode != 200 || !strings.Contains(string(b), ce.ada) {
				t.Fatalf("case_management search: %d %s", res.StatusCode, b)
			}
			// An undeclared purpose is refused outright.
			res, b = ce.req(t, "POST", ce.base+"/subjects/search", searchBody("full_name", "Ada Lovelace", "marketing"), "", ce.admin)
			wantError(t, res, b, 400, tutela.EINVALID)

			// Each refusal is audited as authz.denied naming the subject and the purpose.
			recs, _, err := ce.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: ce.tenant.ID, Action: "authz.denied", TargetID: ce.ada})
			if err != nil {
				t.Fatal(err)
			}
			routes := map[string]bool{}
			for _, r := range recs {
				if r.Event.Details["purpose"] != "outreach" || !strings.Contains(r.Event.Reason, tutela.ECONSENTREQUIRED) {
					t.Errorf("denial %v %q", r.Event.Details, r.Event.Reason)
				}
				routes[r.Event.Details["route"].(string)] = true
			}
			for _, want := range []string{"GET /v1/tenants/{tenant}/subjects/{id}", "POST /v1/tenants/{tenant}/subjects/{id}/exports",
				"GET /v1/tenants/{tenant}/subjects/{id}/exports/{export}", "GET /v1/tenants/{tenant}/subjects/{id}/minimized",
				"POST /v1/tenants/{tenant}/tokens/detokenize"} {
				if !routes[want] {
					t.Errorf("no authz.denied for %s (have %v)", want, routes)
				}
			}
			// The search that left Ada out says so to the audit log only, as a count.
			searches, _, err := ce.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: ce.tenant.ID, Action: "subject.search"})
			if err != nil {
				t.Fatal(err)
			}
			omitted := 0
			for _, r := range searches {
				if r.Event.Details["purpose"] == "outreach" && fmt.Sprint(r.Event.Details["omitted"]) == "1" {
					omitted++
				}
			}
			if omitted != 1 {
				t.Errorf("%d outreach searches audited with one subject omitted, want 1", omitted)
			}
			ce.noValueLeaked(t)
		})
	}
}

func TestConsent_NewNoticeVersionRequiresReconsent(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ce := newConsentEnv(t, d)
			ce.record(t, consentBody("granted", 1, ""), ce.portal)
			if st, _ := ce.status(t, ce.env, ce.admin, "outreach"); st != 200 {
				t.Fatalf("read on v1 consent: %d", st)
			}
			// Version 2 without re-consent: the v1 consent still counts.
			v2 := strings.Replace(outreachV1, `"notice_version":1`, `"notice_version":2`, 1)
			if res, b := ce.req(t, "PUT", ce.base+"/purposes/outreach", v2, "", ce.admin); res.StatusCode != 200 {
				t.Fatalf("v2: %d %s", res.StatusCode, b)
			}
			if st, _ := ce.status(t, ce.env, ce.admin, "outreach"); st != 200 {
				t.Fatalf("read after a minor version: %d", st)
			}
			// Version 3 requiring re-consent: refused at once, until a grant to version 3.
			v3 := strings.Replace(outreachV1, `"notice_version":1,"consent_min_version":1`, `"notice_version":3,"consent_min_version":3`, 1)
			if res, b := ce.req(t, "PUT", ce.base+"/purposes/outreach", v3, "", ce.admin); res.StatusCode != 200 {
				t.Fatalf("v3: %d %s", res.StatusCode, b)
			}
			res, b := ce.req(t, "GET", ce.base+"/subjects/"+ce.ada+"?purpose=outreach", "", "", ce.admin)
			if eb := wantError(t, res, b, 403, tutela.ECONSENTREQUIRED); !strings.Contains(eb.Error.Message, "re-consent") {
				t.Errorf("refusal %q does not say re-consent is required", eb.Error.Message)
			}
			// A grant to an old version no longer counts, and versions never go back.
			res, b = ce.req(t, "POST", ce.base+"/subjects/"+ce.ada+"/consents", consentBody("granted", 2, ""), "", ce.portal)
			wantError(t, res, b, 400, tutela.EINVALID)
			res, b = ce.req(t, "PUT", ce.base+"/purposes/outreach", v2, "", ce.admin)
			wantError(t, res, b, 400, tutela.EINVALID)
			ce.record(t, consentBody("granted", 3, ""), ce.portal)
			if st, _ := ce.status(t, ce.env, ce.admin, "outreach"); st != 200 {
				t.Fatalf("read after re-consent: %d", st)
			}
			// The view agrees.
			var v struct {
				Purposes []struct {
					Purpose       string `json:"purpose"`
					Allowed       bool   `json:"allowed"`
					NoticeVersion int    `json:"notice_version"`
				} `json:"purposes"`
			}
			res, b = ce.req(t, "GET", ce.base+"/subjects/"+ce.ada+"/consents", "", "", ce.admin)
			mustUnmarshal(t, b, &v)
			found := false
			for _, p := range v.Purposes {
				if p.Purpose == "outreach" {
					found = p.Allowed && p.NoticeVersion == 3
				}
			}
			if res.StatusCode != 200 || !found {
				t.Fatalf("consents view: %d %s", res.StatusCode, b)
			}
		})
	}
}

// TestConsent_WithdrawalOnOneNodeRefusesOnAnother: two servers over one PostgreSQL database,
// as two nodes behind a load balancer. Nothing is cached: a withdrawal committed through one
// refuses the next read and AI call through the other.
func TestConsent_WithdrawalOnOneNodeRefusesOnAnother(t *testing.T) {
	t.Parallel()
	sqltest.RequirePostgres(t)
	c := clocktest.New(time.Now().UTC())
	dbA, dsn := sqltest.OpenDSN(t, sqlstore.Postgres, sqlstore.Options{Clock: c.Now})
	dbB, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbB.Close() })
	keys := func(db *sqlstore.DB) func(*httpapi.Deps) {
		return func(d *httpapi.Deps) { d.Keys = newVault(t, db) }
	}
	logs := &syncBuffer{}
	nodeA := newEnvOn(t, dbA, c, keys(dbA))
	nodeB := newEnvOn(t, dbB, c, keys(dbB))
	tn, _ := nodeA.seed(t, "acme", "admin@example.org", pw, "program_admin")
	nodeA.seed(t, "acme", "op@example.org", pw, "operator")
	nodeA.seed(t, "root", "root@example.org", pw, "super_admin")
	other, _ := nodeA.seed(t, "other", "admin@other.example.org", pw, "program_admin")
	se := &subjectEnv{env: nodeA, logs: logs, tenant: tn,
		admin:    nodeA.login(t, "acme", "admin@example.org", pw, "").AccessToken,
		operator: nodeA.login(t, "acme", "op@example.org", pw, "").AccessToken,
		root:     nodeA.login(t, "root", "root@example.org", pw, "").AccessToken,
		base:     "/v1/tenants/" + tn.ID, otherTenantsBase: "/v1/tenants/" + other.ID,
	}
	ce := setupConsent(t, se)
	if res, b := nodeA.req(t, "PUT", ce.base+"/minimization-profiles/outreach", `{"fields":{"full_name":{"action":"pass"}}}`, "", ce.admin); res.StatusCode != 200 {
		t.Fatalf("profile: %d %s", res.StatusCode, b)
	}
	adminB := nodeB.login(t, "acme", "admin@example.org", pw, "").AccessToken
	minimized := ce.base + "/subjects/" + ce.ada + "/minimized?purpose=outreach"

	ce.record(t, consentBody("granted", 1, ""), ce.portal) // on node A
	if st, code := ce.status(t, nodeB, adminB, "outreach"); st != 200 {
		t.Fatalf("node B read after the grant on A: %d %s", st, code)
	}
	if res, b := nodeB.req(t, "GET", minimized, "", "", adminB); res.StatusCode != 200 {
		t.Fatalf("node B minimized: %d %s", res.StatusCode, b)
	}
	ce.record(t, consentBody("withdrawn", 0, ""), ce.portal) // on node A
	if st, code := ce.status(t, nodeB, adminB, "outreach"); st != 403 || code != tutela.ECONSENTREQUIRED {
		t.Fatalf("node B read right after the withdrawal on A: %d %s", st, code)
	}
	res, b := nodeB.req(t, "GET", minimized, "", "", adminB)
	wantError(t, res, b, 403, tutela.ECONSENTREQUIRED)
	// And the other way round: a grant through B counts on A at once; a restriction through B
	// refuses on A.
	if res, b := nodeB.req(t, "POST", ce.base+"/subjects/"+ce.ada+"/consents", caseworkerBody("granted", 1, "Call 2026-77"), "", adminB); res.StatusCode != 201 {
		t.Fatalf("grant on B: %d %s", res.StatusCode, b)
	}
	if st, code := ce.status(t, nodeA, ce.admin, "outreach"); st != 200 {
		t.Fatalf("node A read after the grant on B: %d %s", st, code)
	}
	if res, b := nodeB.req(t, "POST", ce.base+"/subjects/"+ce.ada+"/restriction", `{}`, "", adminB); res.StatusCode != 201 {
		t.Fatalf("restrict on B: %d %s", res.StatusCode, b)
	}
	if st, code := ce.status(t, nodeA, ce.admin, "case_management"); st != 403 || code != tutela.ERESTRICTED {
		t.Fatalf("node A read after the restriction on B: %d %s", st, code)
	}
}

func TestConsent_EvidenceSealedHiddenFromAuditorsAndShreddedByErasure(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ce := newConsentEnv(t, d)
			const evidence = "Signed form REF-88231"
			consents := ce.base + "/subjects/" + ce.ada + "/consents"
			// A caseworker must cite evidence.
			res, b := ce.req(t, "POST", consents, `{"purpose":"outreach","action":"granted","lawful_basis":"consent","notice_id":"outreach_notice","notice_version":1,"channel":"paper","recorded_by":"caseworker"}`, "", ce.operator)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "evidence" {
				t.Fatalf("error names %q", eb.Error.Field)
			}
			res, b = ce.req(t, "POST", consents, `{"purpose":"outreach","action":"granted","lawful_basis":"consent","notice_id":"outreach_notice","notice_version":1,"channel":"paper","recorded_by":"caseworker","evidence":"`+evidence+`"}`, "", ce.operator)
			if res.StatusCode != 201 || strings.Contains(string(b), evidence) || !strings.Contains(string(b), `"evidence_present":true`) {
				t.Fatalf("record with evidence: %d %s", res.StatusCode, b)
			}
			ce.record(t, consentBody("withdrawn", 0, ""), ce.portal)

			// The database holds ciphertext only.
			rows := rawColumn(t, ce.subjectEnv, `SELECT evidence FROM consent_records WHERE evidence IS NOT NULL`)
			if len(rows) != 1 || len(rows[0]) == 0 || bytes.Contains(rows[0], []byte("REF-88231")) {
				t.Fatalf("stored evidence: %q", rows)
			}
			type view struct {
				Erased  bool `json:"erased"`
				Records []struct {
					Evidence        *string `json:"evidence"`
					EvidencePresent bool    `json:"evidence_present"`
					Action          string  `json:"action"`
				} `json:"records"`
				Purposes []struct {
					Purpose     string `json:"purpose"`
					Allowed     bool   `json:"allowed"`
					RefusedCode string `json:"refused_code"`
				} `json:"purposes"`
			}
			get := func(auth string) view {
				t.Helper()
				res, b := ce.req(t, "GET", consents, "", "", auth)
				if res.StatusCode != 200 {
					t.Fatalf("consents: %d %s", res.StatusCode, b)
				}
				var v view
				mustUnmarshal(t, b, &v)
				if len(v.Records) != 2 || v.Records[0].Action != "granted" || v.Records[1].Action != "withdrawn" ||
					!v.Records[0].EvidencePresent || v.Records[1].EvidencePresent {
					t.Fatalf("history: %s", b)
				}
				return v
			}
			// Cleared at YELLOW: the evidence; the auditor (GREEN): only that there is some.
			for _, auth := range []string{ce.admin, ce.operator} {
				if v := get(auth); v.Records[0].Evidence == nil || *v.Records[0].Evidence != evidence {
					t.Fatalf("evidence for a YELLOW-cleared reader: %v", v.Records[0].Evidence)
				}
			}
			v := get(ce.auditor)
			if v.Records[0].Evidence != nil {
				t.Fatal("the auditor sees the evidence")
			}
			for _, p := range v.Purposes {
				if p.Purpose == "outreach" && (p.Allowed || p.RefusedCode != tutela.ECONSENTREQUIRED) {
					t.Fatalf("outreach state %+v", p)
				}
			}

			// Erasure: the history stays, the evidence no longer opens, nothing is allowed.
			res, b = ce.req(t, "DELETE", ce.base+"/subjects/"+ce.ada, `{"reason":"asked by the person","legal_basis":"GDPR Art. 17(1)(a)"}`, "", ce.admin)
			if res.StatusCode != 200 {
				t.Fatalf("erase: %d %s", res.StatusCode, b)
			}
			v = get(ce.admin)
			if !v.Erased || v.Records[0].Evidence != nil {
				t.Fatalf("after erasure: erased=%v evidence=%v", v.Erased, v.Records[0].Evidence)
			}
			for _, p := range v.Purposes {
				if p.Allowed || p.RefusedCode != tutela.ENOTFOUND {
					t.Fatalf("after erasure %s allowed=%v code=%s", p.Purpose, p.Allowed, p.RefusedCode)
				}
			}
			res, b = ce.req(t, "POST", consents, consentBody("granted", 1, ""), "", ce.portal)
			wantError(t, res, b, 404, tutela.ENOTFOUND)

			// The evidence reached neither the audit log nor the logs.
			all := rawColumn(t, ce.subjectEnv, `SELECT canonical FROM audit_events`)
			if bytes.Contains(bytes.Join(all, nil), []byte("REF-88231")) || strings.Contains(ce.logs.String(), "REF-88231") {
				t.Fatal("the evidence was audited or logged")
			}
			recs, _, err := ce.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: ce.tenant.ID, Action: "consent.granted", TargetID: ce.ada})
			if err != nil || len(recs) != 1 || recs[0].Event.Details["evidence"] != true || recs[0].Event.Details["recorded_by"] != "caseworker" {
				t.Fatalf("consent.granted events: %d %v", len(recs), err)
			}
		})
	}
}

func TestConsent_PermissionsObjectionsAndRestrictions(t *testing.T) {
	t.Parallel()
	ce := newConsentEnv(t, sqlstore.SQLite)
	subj := ce.base + "/subjects/" + ce.ada
	research := `{"description":"Programme evaluation","lawful_basis":"legitimate_interests"}`

	// The operator may record consent but not manage the register or place restrictions; the
	// auditor may read the register and histories but record nothing; another tenant sees
	// nothing.
	for _, c := range []struct {
		method, path, body, auth string
		status                   int
	}{
		{"PUT", ce.base + "/purposes/research", research, ce.operator, 403},
		{"PUT", ce.base + "/purposes/research", research, ce.auditor, 403},
		{"POST", subj + "/consents", consentBody("granted", 1, ""), ce.auditor, 403},
		{"POST", subj + "/restriction", `{}`, ce.operator, 403},
		{"POST", subj + "/objections/case_management", `{}`, ce.auditor, 403},
		{"GET", ce.base + "/purposes", "", ce.otherAdmin, 404},
		{"GET", subj + "/consents", "", ce.otherAdmin, 404},
		{"GET", ce.otherTenantsBase + "/subjects/" + ce.ada + "/consents", "", ce.otherAdmin, 404},
		{"POST", ce.otherTenantsBase + "/subjects/" + ce.ada + "/consents", caseworkerBody("granted", 1, "Form 9"), ce.otherAdmin, 404},
		{"GET", ce.base + "/purposes", "", ce.auditor, 200},
		{"GET", subj + "/consents", "", ce.auditor, 200},
	} {
		if res, b := ce.req(t, c.method, c.path, c.body, "", c.auth); res.StatusCode != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, res.StatusCode, b, c.status)
		}
	}
	// Declared by the administrator; the name must match the path; the basis is fixed.
	if res, b := ce.req(t, "PUT", ce.base+"/purposes/research", research, "", ce.admin); res.StatusCode != 201 {
		t.Fatalf("declare research: %d %s", res.StatusCode, b)
	}
	res, b := ce.req(t, "PUT", ce.base+"/purposes/research", `{"name":"other","description":"x","lawful_basis":"legitimate_interests"}`, "", ce.admin)
	wantError(t, res, b, 400, tutela.EINVALID)
	res, b = ce.req(t, "PUT", ce.base+"/purposes/research", `{"description":"x","lawful_basis":"public_task"}`, "", ce.admin)
	wantError(t, res, b, 409, tutela.ECONFLICT)

	// An objection to research refuses it, not case_management; objecting to a purpose on
	// consent is refused (withdraw instead).
	res, b = ce.req(t, "POST", subj+"/objections/outreach", `{}`, "", ce.admin)
	wantError(t, res, b, 400, tutela.EINVALID)
	if res, b := ce.req(t, "POST", subj+"/objections/research", `{}`, "", ce.admin); res.StatusCode != 201 || !strings.Contains(string(b), `"purpose":"research"`) {
		t.Fatalf("object: %d %s", res.StatusCode, b)
	}
	if st, code := ce.status(t, ce.env, ce.admin, "research"); st != 403 || code != tutela.ECONSENTREQUIRED {
		t.Fatalf("read for research after objection: %d %s", st, code)
	}
	if st, _ := ce.status(t, ce.env, ce.admin, "case_management"); st != 200 {
		t.Fatalf("case_management after objection: %d", st)
	}
	res, b = ce.req(t, "DELETE", subj+"/objections/research", `{}`, "", ce.admin)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "reason" {
		t.Fatalf("lift without reason names %q", eb.Error.Field)
	}
	if res, b := ce.req(t, "DELETE", subj+"/objections/research", `{"reason":"compelling legitimate grounds"}`, "", ce.admin); res.StatusCode != 200 {
		t.Fatalf("withdraw objection: %d %s", res.StatusCode, b)
	}
	if st, _ := ce.status(t, ce.env, ce.admin, "research"); st != 200 {
		t.Fatalf("research after the objection was withdrawn: %d", st)
	}

	// A restriction refuses every purpose until lifted with a reason, and the view shows it.
	if res, b := ce.req(t, "POST", subj+"/restriction", `{}`, "", ce.admin); res.StatusCode != 201 || !strings.Contains(string(b), `"restriction":{`) {
		t.Fatalf("restrict: %d %s", res.StatusCode, b)
	}
	for _, purpose := range []string{"case_management", "research"} {
		if st, code := ce.status(t, ce.env, ce.admin, purpose); st != 403 || code != tutela.ERESTRICTED {
			t.Fatalf("%s read while restricted: %d %s", purpose, st, code)
		}
	}
	res, b = ce.req(t, "GET", subj+"/consents", "", "", ce.auditor)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"refused_code":"processing_restricted"`) {
		t.Fatalf("view while restricted: %d %s", res.StatusCode, b)
	}
	res, b = ce.req(t, "DELETE", subj+"/restriction", `{}`, "", ce.admin)
	wantError(t, res, b, 400, tutela.EINVALID)
	if res, b := ce.req(t, "DELETE", subj+"/restriction", `{"reason":"accuracy verified"}`, "", ce.admin); res.StatusCode != 200 || !strings.Contains(string(b), `"restriction":null`) {
		t.Fatalf("lift: %d %s", res.StatusCode, b)
	}
	if st, _ := ce.status(t, ce.env, ce.admin, "case_management"); st != 200 {
		t.Fatalf("read after the restriction was lifted: %d", st)
	}
	res, b = ce.req(t, "DELETE", subj+"/restriction", `{"reason":"again"}`, "", ce.admin)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
}
