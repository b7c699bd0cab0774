package httpapi

import (
	"net/http"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/compliance"
	"tutela/config"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// ComplianceSource is what GET /v1/compliance/report needs beyond the store: the effective
// configuration the report reads, what the process knows of itself, and the audit signing key
// that signs the answer.
type ComplianceSource struct {
	Config  *config.Config
	Runtime compliance.Runtime
	Signer  *audit.Signer
}

func (s *Server) complianceRoutes() {
	s.handle("GET", "/v1/compliance/report", false, s.authed(false, s.complianceReport))
}

// complianceReport answers the compliance report (issue 19), signed: JSON envelope by default,
// one self-contained HTML page with ?format=html. It needs (compliance, READ). A tenant-scoped
// caller (an auditor) gets the deployment-wide controls and their own tenant's; only the
// platform super-admin gets every tenant. Audited as compliance.report.
func (s *Server) complianceReport(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	format, err := queryChoice(r, "format", "json", "html")
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	src := s.d.Compliance
	if src == nil || src.Config == nil || src.Signer == nil {
		middleware.WriteError(w, r, tutela.Errorf(tutela.ENOTCONFIGURED, "the compliance report is not configured on this server"))
		return
	}
	var rep *compliance.Report
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResCompliance}); err != nil {
			return err
		}
		var tenants []*tutela.Tenant
		platform := isPlatform(p)
		if q := r.URL.Query(); q.Has("tenant") {
			// ?tenant= (ID or slug) names a tenant like the {tenant} path parameter does: the
			// super-admin's report covers that tenant only (as `compliance report --tenant`);
			// an unknown tenant, or another than a tenant-scoped caller's own, is 404.
			t, err := tenantRef(r, tx, p, q.Get("tenant"))
			if err != nil {
				return err
			}
			tenants, platform = []*tutela.Tenant{t}, false
		} else if platform {
			all, err := tx.AllTenants(r.Context())
			if err != nil {
				return err
			}
			tenants = all
		} else {
			t, err := tx.Tenant(r.Context(), p.TenantID)
			if err != nil {
				return err
			}
			tenants = []*tutela.Tenant{t}
		}
		rep, err = tx.ComplianceReport(r.Context(), src.Config, src.Runtime, tenants, platform, format)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	body, err := compliance.Encode(rep, format, src.Signer)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if format == "html" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="compliance-report-`+rep.GeneratedAt.Format("20060102T150405Z")+`.html"`)
		// The page is a download to keep, not a page of this origin: it runs nothing anyway.
		w.Header().Set("Content-Security-Policy", compliance.CSP())
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // #nosec G705 -- the report rendered by html/template (escaped) or encoded as JSON, served as an attachment under a CSP that runs nothing
}
