package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// regionPair is one test database served by two nodes: home, bound to no region (where the
// tenants are made and signed in to), and us, a node bound to region "us". Tenant "away" is in
// region eu, tenant "home" (with the platform super-admin) in us.
type regionPair struct {
	home, us     *env
	homeT, away  *tutela.Tenant
	root, ana    grant
	awayEventsAt int
}

func newRegionPair(t *testing.T, d sqlstore.Dialect, mod func(*httpapi.Deps)) *regionPair {
	t.Helper()
	c := clocktest.New(time.Now().UTC())
	db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{Clock: c.Now})
	p := &regionPair{home: newEnvOn(t, db, c, mod)}
	p.homeT, _ = p.home.seed(t, "home", "root@example.org", pw, "super_admin")
	p.away, _ = p.home.seed(t, "away", "ana@example.org", pw, "program_admin")
	p.homeT.Region = "us"
	if err := db.Update(context.Background(), func(tx *sqlstore.Tx) error { return tx.UpdateTenant(context.Background(), p.homeT) }); err != nil {
		t.Fatal(err)
	}
	p.root = p.home.login(t, "home", "root@example.org", pw, "")
	p.ana = p.home.login(t, "away", "ana@example.org", pw, "")
	us, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{Clock: c.Now, Region: "us"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { us.Close() })
	sqltest.AttachVault(t, us)
	p.us = newEnvOn(t, us, c, mod)
	p.awayEventsAt = len(tenantEvents(t, p.home, p.away.ID))
	return p
}

// tenantEvents returns the audit events recorded for a tenant (its tenant_id), newest first.
func tenantEvents(t *testing.T, e *env, tenantID string) []sqlstore.AuditRecord {
	t.Helper()
	recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tenantID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// wantRefusedAndAudited checks a 421 wrong_region naming both regions, its residency.refused
// event (the request's, naming the tenant and both regions), and that nothing was recorded for
// the tenant.
func (p *regionPair) wantRefusedAndAudited(t *testing.T, res *http.Response, body []byte) {
	t.Helper()
	eb := wantError(t, res, body, 421, tutela.EWRONGREGION)
	if !strings.Contains(eb.Error.Message, `"eu"`) || !strings.Contains(eb.Error.Message, `"us"`) {
		t.Fatalf("message %q does not name both regions", eb.Error.Message)
	}
	recs, _, err := p.us.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "residency.refused", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		ev := r.Event
		if ev.RequestID != eb.Error.RequestID {
			continue
		}
		found = true
		d, _ := json.Marshal(ev.Details)
		if ev.TargetType != "tenant" || ev.TargetID != p.away.ID || ev.TenantID != "" || ev.Outcome != "denied" ||
			!strings.Contains(string(d), `"tenant_region":"eu"`) || !strings.Contains(string(d), `"node_region":"us"`) {
			t.Fatalf("residency.refused event = %+v, details %s", ev, d)
		}
	}
	if !found {
		t.Fatalf("no residency.refused event for request %s", eb.Error.RequestID)
	}
	if n := len(tenantEvents(t, p.home, p.away.ID)); n != p.awayEventsAt {
		t.Fatalf("the refused request recorded %d events for the tenant", n-p.awayEventsAt)
	}
}

func TestResidency_OtherRegionsTenantRefused421AndAudited(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newRegionPair(t, d, nil)
			sa := p.home.createSA(t, p.away.ID, p.ana.AccessToken, `{"name":"etl","permissions":[{"resource":"users","action":"READ"}]}`)
			code, tok := p.home.clientToken(t, sa.SA.ClientID, sa.Secret, "")
			if code != 200 {
				t.Fatalf("client token at home: %d %v", code, tok)
			}
			saToken, _ := tok["access_token"].(string)
			p.awayEventsAt = len(tenantEvents(t, p.home, p.away.ID))
			// A service account of the eu tenant: its client credentials and its token.
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", "/v1/oauth/token", strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(sa.SA.ClientID, sa.Secret)
			p.us.srv.ServeHTTP(rec, req)
			p.wantRefusedAndAudited(t, rec.Result(), rec.Body.Bytes())
			res, body := p.us.req(t, "GET", "/v1/tenants/away/users", "", "", saToken)
			p.wantRefusedAndAudited(t, res, body)
			// The eu tenant's own bearer token, session cookie and refresh token, on every kind
			// of route: its tenant's, the caller's own account, the token endpoint.
			for _, c := range []struct {
				method, path, body string
				auth               any
			}{
				{"GET", "/v1/tenants/away", "", p.ana.AccessToken},
				{"GET", "/v1/tenants/" + p.away.ID + "/users", "", p.ana.AccessToken},
				{"POST", "/v1/tenants/away/users", `{"email":"new@example.org"}`, p.ana.AccessToken},
				{"GET", "/v1/auth/me", "", p.ana.AccessToken},
				{"GET", "/v1/auth/me", "", p.ana.cookie},
				{"POST", "/v1/auth/refresh", `{"refresh_token":"` + p.ana.RefreshToken + `"}`, nil},
				{"POST", "/v1/auth/login", loginBody("away", "ana@example.org", pw), nil},
				{"POST", "/v1/auth/password/forgot", `{"tenant":"away","email":"ana@example.org"}`, nil},
				// The us platform super-admin naming the eu tenant.
				{"GET", "/v1/tenants/away", "", p.root.AccessToken},
				{"PATCH", "/v1/tenants/" + p.away.ID, `{"data_region":"us"}`, p.root.AccessToken},
				{"GET", "/v1/tenants/away/users", "", p.root.AccessToken},
			} {
				res, body := p.us.req(t, c.method, c.path, c.body, "", c.auth)
				p.wantRefusedAndAudited(t, res, body)
			}
			// Refused on the wrong node, the refresh token is untouched: its own region's
			// node still exchanges it.
			if res, body := p.home.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+p.ana.RefreshToken+`"}`, "", nil); res.StatusCode != 200 {
				t.Fatalf("refresh at home after the refusal: %d %s", res.StatusCode, body)
			}
			// The us node serves its own region as before.
			if res, body := p.us.req(t, "GET", "/v1/tenants/home", "", "", p.root.AccessToken); res.StatusCode != 200 {
				t.Fatalf("own region's tenant: %d %s", res.StatusCode, body)
			}
		})
	}
}

func TestResidency_PlatformCannotPlaceTenantsInAnotherRegion(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newRegionPair(t, d, nil)
			res, body := p.us.req(t, "POST", "/v1/tenants", `{"slug":"new","name":"New","data_region":"eu"}`, "", p.root.AccessToken)
			eb := wantError(t, res, body, 421, tutela.EWRONGREGION)
			if eb.Error.Field != "data_region" {
				t.Fatalf("field = %q, want data_region", eb.Error.Field)
			}
			create := eb.Error.RequestID
			res, body = p.us.req(t, "PATCH", "/v1/tenants/home", `{"data_region":"eu"}`, "", p.root.AccessToken)
			move := wantError(t, res, body, 421, tutela.EWRONGREGION).Error.RequestID
			// Both refusals are audited as residency.refused, naming the region asked for.
			recs, _, err := p.us.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "residency.refused", Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, r := range recs {
				d, _ := json.Marshal(r.Event.Details)
				if strings.Contains(string(d), `"tenant_region":"eu"`) && strings.Contains(string(d), `"node_region":"us"`) {
					seen[r.Event.RequestID] = true
				}
			}
			if !seen[create] || !seen[move] {
				t.Fatalf("residency.refused for create %v, move %v; want both", seen[create], seen[move])
			}
			// Listing shows this region's tenants only; "new" was not created anywhere.
			res, body = p.us.req(t, "GET", "/v1/tenants", "", "", p.root.AccessToken)
			var list struct{ Tenants []tutela.Tenant }
			if err := json.Unmarshal(body, &list); err != nil || res.StatusCode != 200 {
				t.Fatalf("list: %d %s", res.StatusCode, body)
			}
			if len(list.Tenants) != 1 || list.Tenants[0].Slug != "home" {
				t.Fatalf("list = %+v, want only home", list.Tenants)
			}
			res, body = p.home.req(t, "GET", "/v1/tenants/new", "", "", p.root.AccessToken)
			wantError(t, res, body, 404, tutela.ENOTFOUND)
			// Within its region the platform still creates tenants.
			res, body = p.us.req(t, "POST", "/v1/tenants", `{"slug":"new","name":"New","data_region":"us"}`, "", p.root.AccessToken)
			if res.StatusCode != 201 {
				t.Fatalf("create in own region: %d %s", res.StatusCode, body)
			}
		})
	}
}

// A tenant-scoped caller naming another tenant gets 404 whether that tenant is elsewhere or
// nowhere: the region of a tenant that is not theirs is not theirs to learn.
func TestResidency_OtherTenantsRegionStaysHidden(t *testing.T) {
	t.Parallel()
	p := newRegionPair(t, sqlstore.SQLite, nil)
	local, _ := p.home.seed(t, "local", "lou@example.org", pw, "program_admin")
	local.Region = "us"
	if err := p.home.db.Update(ctxBG, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctxBG, local) }); err != nil {
		t.Fatal(err)
	}
	lou := p.us.login(t, "local", "lou@example.org", pw, "")
	for _, ref := range []string{"away", p.away.ID, "nowhere"} {
		res, body := p.us.req(t, "GET", "/v1/tenants/"+ref+"/users", "", "", lou.AccessToken)
		wantError(t, res, body, 404, tutela.ENOTFOUND)
	}
}
