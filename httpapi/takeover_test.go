package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// createSAWith makes a service account holding perms straight in the store: one made before
// the takeover rules, or while the tenant allowed it.
func (e *env) createSAWith(t testing.TB, tenantID string, perms ...authz.Permission) saCreated {
	t.Helper()
	sa := &sqlstore.ServiceAccount{TenantID: tenantID, Name: "bot-" + tutela.RandomToken(4), Permissions: perms}
	var secret tutela.Secret
	if err := e.db.Update(ctxBG, func(tx *sqlstore.Tx) (err error) {
		secret, err = e.ids.CreateServiceAccountTx(ctxBG, tx, sa)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var c saCreated
	c.SA.ID, c.SA.ClientID, c.Secret = sa.ID, sa.ClientID, secret.Reveal()
	return c
}

// adminWithFactor signs in a programme administrator of acme and enrols a TOTP factor; the
// session has not proved it (no step-up yet).
func adminWithFactor(t *testing.T, e *env) (*tutela.Tenant, grant, string) {
	t.Helper()
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	return tn, a, e.enrolTOTP(t, a.cookie)
}

func (e *env) stepUp(t *testing.T, auth any, secret string) {
	t.Helper()
	e.clock.Add(30 * time.Second) // a fresh TOTP step
	if res, b := e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", auth); res.StatusCode != 204 {
		t.Fatalf("step-up: %d %s", res.StatusCode, b)
	}
}

// The path of issue 12: an administrator whose step-up has lapsed is refused DELETE on a user,
// so they mint a service account holding users DELETE and MANAGE, take a token with its secret
// and act through it. It must fail at the first step; and even with a fresh step-up, an
// account holding users MANAGE needs the tenant's consent.
func TestTakeover_StaleStepUpAdminCannotMintServiceAccount(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			tn, a, secret := adminWithFactor(t, e)
			_, u := e.seed(t, "acme", "ana@example.org", pw)
			e.clock.Add(6 * time.Minute)
			res, b := e.req(t, "DELETE", "/v1/tenants/"+tn.ID+"/users/"+u.ID, "", "", a.cookie)
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			takeover := `{"name":"cleanup","permissions":[{"resource":"users","action":"DELETE"},{"resource":"users","action":"MANAGE"}]}`
			deleter := `{"name":"cleanup","permissions":[{"resource":"users","action":"DELETE"},{"resource":"users","action":"READ"}]}`
			for _, body := range []string{takeover, deleter} {
				res, b = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/service-accounts", body, "", a.cookie)
				wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
				if h := res.Header.Get("WWW-Authenticate"); !strings.Contains(h, "insufficient_user_authentication") {
					t.Fatalf("WWW-Authenticate %q", h)
				}
			}
			if res, b := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/service-accounts", "", "", a.cookie); res.StatusCode != 200 ||
				strings.Contains(string(b), "cleanup") {
				t.Fatalf("an account was made: %d %s", res.StatusCode, b)
			}
			// With a fresh step-up: users MANAGE would let the account reset passwords and
			// second factors, which the tenant has not allowed; refused when the account is made.
			e.stepUp(t, a.cookie, secret)
			res, b = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/service-accounts", takeover, "", a.cookie)
			eb := wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if !strings.Contains(eb.Error.Message, "service_accounts_may_take_over_accounts") {
				t.Fatalf("refusal does not name the policy: %s", eb.Error.Message)
			}
			if len(deniedFor(t, e, res)) != 1 {
				t.Fatal("refused creation not audited as authz.denied")
			}
			for _, wild := range []string{`{"resource":"*","action":"MANAGE"}`, `{"resource":"roles","action":"MANAGE"}`} {
				res, b = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/service-accounts", `{"name":"x","permissions":[`+wild+`]}`, "", a.cookie)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			// A delegation that takes over no one is fine, with the step-up.
			sa := e.createSA(t, tn.ID, a.cookie, deleter)
			// Adding a secret or key: a person with a fresh step-up only.
			e.clock.Add(6 * time.Minute)
			res, b = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/service-accounts/"+sa.SA.ID+"/secrets", "", "", a.cookie)
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
		})
	}
}

// A service account can neither mint service accounts nor add secrets or keys to one, whatever
// permissions it holds: each of these needs a person's fresh second factor.
func TestTakeover_ServiceAccountCannotMintCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _, _ := adminWithFactor(t, e)
	minter := e.createSAWith(t, tn.ID,
		authz.Permission{Resource: authz.ResServiceAccounts, Action: authz.Create},
		authz.Permission{Resource: authz.ResServiceAccounts, Action: authz.Manage},
		authz.Permission{Resource: authz.ResServiceAccounts, Action: authz.Read},
		authz.Permission{Resource: authz.ResRecords, Action: authz.Read})
	other := e.createSAWith(t, tn.ID, authz.Permission{Resource: authz.ResRecords, Action: authz.Read})
	code, tok := e.clientToken(t, minter.SA.ClientID, minter.Secret, "")
	if code != 200 {
		t.Fatalf("token: %d %v", code, tok)
	}
	at := tok["access_token"].(string)
	jwk := `{"jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`
	for _, c := range []struct{ path, body string }{
		{"/v1/tenants/" + tn.ID + "/service-accounts", `{"name":"minted","permissions":[{"resource":"records","action":"READ"}]}`},
		{"/v1/tenants/" + tn.ID + "/service-accounts/" + other.SA.ID + "/secrets", ""},
		{"/v1/tenants/" + tn.ID + "/service-accounts/" + other.SA.ID + "/keys", jwk},
	} {
		res, b := e.req(t, "POST", c.path, c.body, "192.0.2.10", at)
		wantError(t, res, b, 403, tutela.EFORBIDDEN)
		if len(deniedFor(t, e, res)) != 1 {
			t.Fatalf("%s: refusal not audited", c.path)
		}
	}
}

// A service account holding the permissions still may not take over accounts unless the tenant
// allows it; when it does, each takeover is audited as a service account acting under the policy.
func TestTakeover_ServiceAccountNeedsTenantPolicyAndIsAudited(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			tn, a, secret := adminWithFactor(t, e)
			_, u := e.seed(t, "acme", "ana@example.org", pw)
			e.stepUp(t, a.cookie, secret)
			if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles",
				`{"key":"helpdesk","name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"users","action":"MANAGE"}]}`, "", a.cookie); res.StatusCode != 201 {
				t.Fatalf("custom role: %d %s", res.StatusCode, b)
			}
			sa := e.createSAWith(t, tn.ID,
				authz.Permission{Resource: authz.ResUsers, Action: authz.Manage},
				authz.Permission{Resource: authz.ResRoles, Action: authz.Manage},
				authz.Permission{Resource: authz.ResTenants, Action: authz.Update})
			code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
			if code != 200 {
				t.Fatalf("token: %d %v", code, tok)
			}
			at := tok["access_token"].(string)
			base := "/v1/tenants/" + tn.ID + "/users/" + u.ID
			takeovers := []struct{ method, path, body string }{
				{"POST", base + "/password-reset", ""},
				{"POST", base + "/mfa/reset", ""},
				{"PUT", base + "/roles/helpdesk", ""},
				{"POST", base + "/permissions", `{"resource":"users","action":"MANAGE","effect":"allow"}`},
			}
			for _, c := range takeovers {
				res, b := e.req(t, c.method, c.path, c.body, "192.0.2.10", at)
				eb := wantError(t, res, b, 403, tutela.EFORBIDDEN)
				if !strings.Contains(eb.Error.Message, "service_accounts_may_take_over_accounts") {
					t.Fatalf("%s %s: %s", c.method, c.path, eb.Error.Message)
				}
				den := deniedFor(t, e, res)
				if len(den) != 1 || den[0].Event.TargetID != u.ID || den[0].Event.ActorType != audit.ActorServiceAccount {
					t.Fatalf("%s %s: denial audit %+v", c.method, c.path, den)
				}
			}
			// What is no takeover still works for it: a deny only narrows access.
			if res, b := e.req(t, "POST", base+"/permissions", `{"resource":"records","action":"EXPORT","effect":"deny"}`, "192.0.2.10", at); res.StatusCode != 201 {
				t.Fatalf("deny grant: %d %s", res.StatusCode, b)
			}
			// The policy is a person's decision, with a fresh second factor.
			res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"service_accounts_may_take_over_accounts":true}`, "192.0.2.10", at)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			e.clock.Add(6 * time.Minute)
			res, b = e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"service_accounts_may_take_over_accounts":true}`, "", a.cookie)
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			e.stepUp(t, a.cookie, secret)
			if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"service_accounts_may_take_over_accounts":true}`, "", a.cookie); res.StatusCode != 200 {
				t.Fatalf("allow takeover: %d %s", res.StatusCode, b)
			}
			_, tok = e.clientToken(t, sa.SA.ClientID, sa.Secret, "") // the first one has expired by now
			at = tok["access_token"].(string)
			for _, c := range takeovers {
				if res, b := e.req(t, c.method, c.path, c.body, "192.0.2.10", at); res.StatusCode >= 300 {
					t.Fatalf("%s %s under the policy: %d %s", c.method, c.path, res.StatusCode, b)
				}
			}
			recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "authz.service_account_takeover", Limit: 10})
			if err != nil || len(recs) != len(takeovers) {
				t.Fatalf("takeover audit events: %d, %v", len(recs), err)
			}
			ops := map[string]bool{}
			for _, r := range recs {
				ev := r.Event
				if ev.ActorType != audit.ActorServiceAccount || ev.ActorID != sa.SA.ID || ev.TargetID != u.ID ||
					ev.Details["policy"] != "service_accounts_may_take_over_accounts" {
					t.Fatalf("takeover event %+v", ev)
				}
				ops[ev.Details["operation"].(string)] = true
			}
			for _, op := range authz.TakeoverOperations {
				if !ops[string(op)] {
					t.Errorf("no audited takeover %s in %v", op, ops)
				}
			}
			// Turned off again, it stops at once, also for accounts made while it was on.
			e.stepUp(t, a.cookie, secret)
			if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"service_accounts_may_take_over_accounts":false}`, "", a.cookie); res.StatusCode != 200 {
				t.Fatalf("disallow takeover: %d %s", res.StatusCode, b)
			}
			_, tok = e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
			res, b = e.req(t, "POST", base+"/password-reset", "", "192.0.2.10", tok["access_token"].(string))
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
		})
	}
}

// The policy also lets an administrator (with a fresh step-up) create an account holding a
// takeover permission.
func TestTakeover_PolicyAllowsCreatingSuchAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, a, secret := adminWithFactor(t, e)
	e.stepUp(t, a.cookie, secret)
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"service_accounts_may_take_over_accounts":true}`, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("allow takeover: %d %s", res.StatusCode, b)
	}
	sa := e.createSA(t, tn.ID, a.cookie, `{"name":"provisioning","permissions":[{"resource":"users","action":"MANAGE"}]}`)
	var out struct{ Scope string }
	code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	b, _ := json.Marshal(tok)
	_ = json.Unmarshal(b, &out)
	if code != 200 || out.Scope != "users:MANAGE" {
		t.Fatalf("token: %d %s", code, b)
	}
}
