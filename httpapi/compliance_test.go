package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"

	"tutela/audit"
	"tutela/authz"
	"tutela/compliance"
	"tutela/config"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

func init() {
	// The checker validates every exchange against the OpenAPI document; the HTML report is
	// documented as text/html, which kin-openapi reads as an opaque body.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
}

type signedReport struct {
	Format    string            `json:"format"`
	Signature string            `json:"signature"`
	Report    compliance.Report `json:"report"`
}

// withCompliance serves the report over cfg, signed with a fresh audit key; it returns the
// verifier key.
func withCompliance(t *testing.T, cfg *config.Config) (func(*httpapi.Deps), string) {
	t.Helper()
	skey, vkey, err := audit.GenerateKey("tutela/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return func(d *httpapi.Deps) {
		d.Compliance = &httpapi.ComplianceSource{Config: cfg, Signer: signer, Runtime: compliance.Runtime{Version: "test", AuditVerifierKey: vkey}}
	}, vkey
}

func (e *env) complianceReport(t *testing.T, auth any, query string, vkey string) (signedReport, []byte) {
	t.Helper()
	res, body := e.req(t, "GET", "/v1/compliance/report"+query, "", "", auth)
	if res.StatusCode != 200 {
		t.Fatalf("report: %d %s", res.StatusCode, body)
	}
	if _, err := compliance.Verify(body, vkey); err != nil {
		t.Fatalf("the served report does not verify: %v", err)
	}
	var sr signedReport
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		if err := json.Unmarshal(body, &sr); err != nil {
			t.Fatal(err)
		}
	}
	return sr, body
}

func control(r compliance.Report, id, tenant string) *compliance.Control {
	for i, c := range r.Controls {
		if c.ID == id && c.Tenant == tenant {
			return &r.Controls[i]
		}
	}
	return nil
}

// An auditor sees the deployment-wide controls and their own tenant's, never another tenant's;
// the super-admin sees every tenant; a role without (compliance, READ) is refused; each report is
// audited and signed; HTML is one signed page too.
func TestComplianceReport_ScopedSignedAndAudited(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			mod, vkey := withCompliance(t, config.Default())
			e := newEnv(t, d, mod)
			const pw = "violet quartz lantern 7 harbour"
			a, _ := e.seed(t, "clinic-a", "aud@a.example", pw, authz.RoleAuditor)
			e.seed(t, "clinic-a", "op@a.example", pw, authz.RoleOperator)
			b, _ := e.seed(t, "clinic-b", "op@b.example", pw, authz.RoleOperator)
			if err := e.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
				return tx.CreateRole(context.Background(), b.ID, &sqlstore.Role{Key: "b_only_role", Name: "B", Clearance: authz.Green})
			}); err != nil {
				t.Fatal(err)
			}
			e.seed(t, "root", "root@example.org", pw, authz.RoleSuperAdmin)

			aud := e.login(t, "clinic-a", "aud@a.example", pw, "")
			sr, body := e.complianceReport(t, aud.AccessToken, "", vkey)
			if sr.Format != compliance.EnvelopeFormat || sr.Report.Scope.Platform || strings.Join(sr.Report.Scope.Tenants, ",") != "clinic-a" {
				t.Fatalf("auditor's scope = %+v", sr.Report.Scope)
			}
			for _, leak := range []string{"clinic-b", b.ID, "b_only_role", "root"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("the auditor's report names %q", leak)
				}
			}
			if control(sr.Report, compliance.CtlMFARoles, "clinic-a") == nil || control(sr.Report, compliance.CtlBackups, "") == nil {
				t.Fatal("the auditor's report lacks their tenant's or the deployment's controls")
			}
			recs, _, err := e.db.AuditEvents(context.Background(), sqlstore.AuditFilter{TenantID: a.ID, Action: "compliance.report", Limit: 10})
			if err != nil || len(recs) != 1 || recs[0].Event.Details["format"] != "json" {
				t.Fatalf("audit: %+v %v", recs, err)
			}

			_, page := e.complianceReport(t, aud.AccessToken, "?format=html", vkey)
			if !strings.HasPrefix(string(page), "<!DOCTYPE html>") || strings.Contains(string(page), "clinic-b") {
				t.Fatalf("HTML report: %.200s", page)
			}

			op := e.login(t, "clinic-a", "op@a.example", pw, "")
			res, rb := e.req(t, "GET", "/v1/compliance/report", "", "", op.AccessToken)
			wantError(t, res, rb, 403, "forbidden")
			res, rb = e.req(t, "GET", "/v1/compliance/report?format=pdf", "", "", aud.AccessToken)
			wantError(t, res, rb, 400, "invalid")

			root := e.login(t, "root", "root@example.org", pw, "")
			all, _ := e.complianceReport(t, root.AccessToken, "", vkey)
			if !all.Report.Scope.Platform || len(all.Report.Scope.Tenants) != 3 || control(all.Report, compliance.CtlMFARoles, "clinic-b") == nil {
				t.Fatalf("platform scope = %+v", all.Report.Scope)
			}
		})
	}
}

// The "done when" through the API: with MFA left to auth.mfa_roles, a role without it is
// a gap naming the setting; the tenant turning on mfa_required_all moves it off gap (its holders
// must then enrol, which the answer says).
func TestComplianceReport_MFAGapFollowsTheSetting(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Auth.MFAAllUsers = false
	mod, vkey := withCompliance(t, cfg)
	e := newEnv(t, sqltest.Dialects[0], mod)
	const pw = "violet quartz lantern 7 harbour"
	a, _ := e.seed(t, "clinic-a", "aud@a.example", pw, authz.RoleAuditor)
	e.seed(t, "clinic-a", "op@a.example", pw, authz.RoleOperator)
	aud := e.login(t, "clinic-a", "aud@a.example", pw, "")

	sr, _ := e.complianceReport(t, aud.AccessToken, "", vkey)
	c := control(sr.Report, compliance.CtlMFARoles, "clinic-a")
	if c.Status != compliance.Gap || !strings.Contains(strings.Join(c.Close, " "), "auth.mfa_roles") ||
		!strings.Contains(strings.Join(c.Close, " "), `PATCH /v1/tenants/clinic-a {"mfa_required_all": true}`) {
		t.Fatalf("MFA off for operator: %s %v", c.Status, c.Close)
	}
	if err := e.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.SetTenantRequiresMFA(context.Background(), a.ID, true)
	}); err != nil {
		t.Fatal(err)
	}
	sr, _ = e.complianceReport(t, aud.AccessToken, "", vkey)
	c = control(sr.Report, compliance.CtlMFARoles, "clinic-a")
	if c.Status != compliance.Partial || strings.Contains(strings.Join(c.Close, " "), "auth.mfa_roles") {
		t.Fatalf("after mfa_required_all: %s %v, want partial (holders yet to enrol)", c.Status, c.Close)
	}
}

func TestComplianceReport_NotConfiguredIs501(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqltest.Dialects[0], nil)
	const pw = "violet quartz lantern 7 harbour"
	e.seed(t, "clinic-a", "aud@a.example", pw, authz.RoleAuditor)
	aud := e.login(t, "clinic-a", "aud@a.example", pw, "")
	res, body := e.req(t, "GET", "/v1/compliance/report", "", "", aud.AccessToken)
	wantError(t, res, body, 501, "not_configured")
}
