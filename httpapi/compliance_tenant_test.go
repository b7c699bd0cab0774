package httpapi_test

import (
	"strings"
	"testing"

	"tutela/authz"
	"tutela/compliance"
	"tutela/config"
	"tutela/sqlstore/sqltest"
)

// Regression (issue 19): ?tenant= was silently ignored. The super-admin's report is scoped to the
// tenant named (slug or ID) like `tutela compliance report --tenant`; an unknown tenant is 404; a
// tenant auditor naming another tenant is refused (404, like every {tenant} path and
// /v1/security-events?tenant=) and naming their own gets their report.
func TestComplianceReport_TenantQuery(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			mod, vkey := withCompliance(t, config.Default())
			e := newEnv(t, d, mod)
			const pw = "violet quartz lantern 7 harbour"
			a, _ := e.seed(t, "clinic-a", "aud@a.example", pw, authz.RoleAuditor)
			b, _ := e.seed(t, "clinic-b", "op@b.example", pw, authz.RoleOperator)
			e.seed(t, "root", "root@example.org", pw, authz.RoleSuperAdmin)
			root := e.login(t, "root", "root@example.org", pw, "")

			for _, ref := range []string{"clinic-b", b.ID} {
				sr, body := e.complianceReport(t, root.AccessToken, "?tenant="+ref, vkey)
				if sr.Report.Scope.Platform || strings.Join(sr.Report.Scope.Tenants, ",") != "clinic-b" {
					t.Fatalf("?tenant=%s: scope %+v", ref, sr.Report.Scope)
				}
				if control(sr.Report, compliance.CtlMFARoles, "clinic-b") == nil || control(sr.Report, compliance.CtlBackups, "") == nil {
					t.Fatalf("?tenant=%s lacks the tenant's or the deployment's controls", ref)
				}
				if strings.Contains(string(body), "clinic-a") || strings.Contains(string(body), a.ID) {
					t.Errorf("?tenant=%s: the report names another tenant", ref)
				}
			}
			_, page := e.complianceReport(t, root.AccessToken, "?format=html&tenant=clinic-b", vkey)
			if strings.Contains(string(page), "clinic-a") {
				t.Error("the HTML report for clinic-b names clinic-a")
			}
			res, rb := e.req(t, "GET", "/v1/compliance/report?tenant=no-such-clinic", "", "", root.AccessToken)
			wantError(t, res, rb, 404, "not_found")

			aud := e.login(t, "clinic-a", "aud@a.example", pw, "")
			for _, ref := range []string{"clinic-b", b.ID, "root"} {
				res, rb := e.req(t, "GET", "/v1/compliance/report?tenant="+ref, "", "", aud.AccessToken)
				wantError(t, res, rb, 404, "not_found")
				if strings.Contains(string(rb), "clinic-b") {
					t.Errorf("the refusal names the other tenant: %s", rb)
				}
			}
			own, _ := e.complianceReport(t, aud.AccessToken, "?tenant=clinic-a", vkey)
			if strings.Join(own.Report.Scope.Tenants, ",") != "clinic-a" {
				t.Fatalf("auditor naming their own tenant: scope %+v", own.Report.Scope)
			}
		})
	}
}
