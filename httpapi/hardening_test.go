package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi"
	"tutela/sqlstore"
)

// ASVS 7.5.1: the e-mail address receives password resets, so changing it needs a fresh second
// factor, ends the user's outstanding reset codes, and tells the old address.
func TestUserEmailChange_NeedsStepUpEndsCodesAndNotifies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, v := e.seed(t, "acme", "vic@example.org", pw, "operator")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	secret := e.enrolTOTP(t, a.cookie)
	e.clock.Add(6 * time.Minute)

	// A reset code is on its way to the old address.
	if res, b := e.req(t, "POST", "/v1/auth/password/forgot", `{"tenant":"acme","email":"vic@example.org"}`, "", nil); res.StatusCode != 202 {
		t.Fatalf("forgot: %d %s", res.StatusCode, b)
	}
	deliver(t, e.ids) // the worker sends the queued code
	var code string
	for _, m := range e.mail.Messages() {
		if m.To == "vic@example.org" {
			code = codeRE.FindString(m.Text)
		}
	}
	if code == "" {
		t.Fatal("no reset code sent")
	}
	e.mail.Reset()

	path := "/v1/tenants/" + tn.ID + "/users/" + v.ID
	res, b := e.req(t, "PATCH", path, `{"email":"vic@attacker.example"}`, "", a.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	// A display-name change, or restating the same address in another case, needs nothing more.
	if res, b := e.req(t, "PATCH", path, `{"display_name":"Vic","email":"VIC@example.org"}`, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("rename: %d %s", res.StatusCode, b)
	}
	e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", a.cookie)
	if res, b := e.req(t, "PATCH", path, `{"email":"vic@new.example"}`, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("e-mail change after step-up: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "POST", "/v1/auth/password/reset", `{"token":"`+code+`","new_password":"granite meadow lantern 44 swallow"}`, "", nil)
	if res.StatusCode == 204 {
		t.Fatalf("a reset code sent to the old address still works: %s", b)
	}
	deliver(t, e.ids)
	told := false
	for _, m := range e.mail.Messages() {
		told = told || (m.To == "VIC@example.org" || m.To == "vic@example.org") && strings.Contains(m.Text, "vic@new.example")
	}
	if !told {
		t.Fatalf("the old address was not told: %+v", e.mail.Messages())
	}
}

// ASVS 2.3.1: a user who must first enrol a second factor (or change their password) gets no
// token for another service, and introspection reports theirs inactive.
func TestRestrictedUser_NoTokensForOtherServices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin") // must enrol: no factor yet
	a := e.login(t, "acme", "admin@example.org", pw, "")
	res, b := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+a.RefreshToken+`","resource":"`+testResource+`"}`, "", nil)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	// The refused refresh used nothing up; a plain one still works.
	if res, b := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+a.RefreshToken+`"}`, "", nil); res.StatusCode != 200 {
		t.Fatalf("plain refresh: %d %s", res.StatusCode, b)
	}
	// Introspected by a resource server of the tenant: inactive.
	sa := e.createSAUnchecked(t, tn.ID)
	if code, in := e.introspectFrom(t, a.AccessToken, sa.SA.ClientID, sa.Secret, "192.0.2.10"); code != 200 || in["active"] != false {
		t.Fatalf("introspection of a restricted user's token: %d %v", code, in)
	}
}

// ASVS 7.3.1: an idle session's access tokens stop too, not only its cookie.
func TestBearer_IdleSessionRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	a := e.login(t, "acme", "ana@example.org", pw, "")
	e.clock.Add(4 * time.Minute)
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", a.AccessToken); res.StatusCode != 200 {
		t.Fatalf("fresh token: %d", res.StatusCode)
	}
	// Bearer requests do not extend the session (only refresh and cookie requests do): after the
	// 15-minute idle timeout the same, still unexpired access token is refused.
	res, b := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+a.RefreshToken+`"}`, "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("refresh: %d %s", res.StatusCode, b)
	}
	var g grant
	mustUnmarshal(t, b, &g)
	e.clock.Add(4 * time.Minute)
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken); res.StatusCode != 200 {
		t.Fatalf("active session: %d", res.StatusCode)
	}
	e.clock.Add(12 * time.Minute) // 16 minutes since the refresh touched the session
	res, b = e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken)
	if res.StatusCode != 401 {
		t.Fatalf("idle session's token: %d %s", res.StatusCode, b)
	}
}

// ASVS 2.2.3: a tenant's session settings must agree with each other and with the defaults.
func TestTenantSessionSettings_Consistent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	path := "/v1/tenants/" + tn.ID
	for _, body := range []string{`{"session_idle_seconds":1}`, `{"session_idle_seconds":59}`,
		`{"session_idle_seconds":7200,"session_absolute_seconds":3600}`, `{"session_absolute_seconds":60}`} {
		res, b := e.req(t, "PATCH", path, body, "", a.AccessToken)
		wantError(t, res, b, 400, tutela.EINVALID)
	}
	if res, b := e.req(t, "PATCH", path, `{"session_idle_seconds":600,"session_absolute_seconds":3600}`, "", a.AccessToken); res.StatusCode != 200 {
		t.Fatalf("consistent settings: %d %s", res.StatusCode, b)
	}
}

// createSAUnchecked makes a read-only service account straight in the store (for tests whose
// admin cannot create one through the API yet).
func (e *env) createSAUnchecked(t *testing.T, tenantID string) saCreated {
	t.Helper()
	return e.createSAWith(t, tenantID, authz.Permission{Resource: "records", Action: authz.Read})
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// ASVS 7.2.4: re-authenticating (step-up, re-entered password) by cookie gives the session a
// new secret; the old cookie stops working. Bearer clients keep their tokens.
func TestSessionSecretRenewedOnReauthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	secret := e.enrolTOTP(t, a.cookie)
	for _, step := range []struct{ path, body func() string }{
		{func() string { return "/v1/auth/step-up" }, func() string { return `{"code":"` + e.code(t, secret) + `"}` }},
		{func() string { return "/v1/auth/reauthenticate" }, func() string { return `{"password":"` + pw + `"}` }},
	} {
		old := *a.cookie
		e.clock.Add(31 * time.Second) // a fresh TOTP step
		res, b := e.req(t, "POST", step.path(), step.body(), "", &old)
		if res.StatusCode != 204 {
			t.Fatalf("%s: %d %s", step.path(), res.StatusCode, b)
		}
		var renewed *http.Cookie
		for _, c := range res.Cookies() {
			if c.Name == httpapi.SessionCookie {
				renewed = c
			}
		}
		if renewed == nil || renewed.Value == a.cookie.Value || !renewed.HttpOnly || !renewed.Secure || renewed.Expires.IsZero() {
			t.Fatalf("%s: no renewed session cookie: %+v", step.path(), renewed)
		}
		if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", a.cookie); res.StatusCode != 401 {
			t.Fatalf("%s: the old session cookie still works: %d", step.path(), res.StatusCode)
		}
		a.cookie.Value = renewed.Value
		if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", a.cookie); res.StatusCode != 200 {
			t.Fatalf("%s: the renewed cookie does not work: %d", step.path(), res.StatusCode)
		}
	}
	// By bearer token: no cookie is set, and the session's cookie and tokens go on.
	e.clock.Add(31 * time.Second)
	res, b := e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", a.AccessToken)
	if res.StatusCode != 204 || len(res.Cookies()) != 0 {
		t.Fatalf("bearer step-up: %d %s, cookies %v", res.StatusCode, b, res.Cookies())
	}
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("cookie after a bearer step-up: %d", res.StatusCode)
	}
}

// The step-up on sign-in policy and e-mail changes cannot be skipped through a service account:
// an administrator may create one holding tenants UPDATE and users UPDATE without a step-up, so
// such changes are for people only.
func TestHumanStepUp_ServiceAccountRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, v := e.seed(t, "acme", "vic@example.org", pw, "operator")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	sa := e.createSA(t, tn.ID, a.AccessToken, `{"name":"ops","permissions":[{"resource":"tenants","action":"UPDATE"},{"resource":"users","action":"UPDATE"}]}`)
	code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 {
		t.Fatalf("token: %d %v", code, tok)
	}
	at := tok["access_token"].(string)
	res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"mfa_required_all":false}`, "192.0.2.10", at)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = e.req(t, "PATCH", "/v1/tenants/"+tn.ID+"/users/"+v.ID, `{"email":"vic@attacker.example"}`, "192.0.2.10", at)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	// What needs no step-up still works for the account.
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"name":"Acme"}`, "192.0.2.10", at); res.StatusCode != 200 {
		t.Fatalf("rename by the service account: %d %s", res.StatusCode, b)
	}
}

// A disabled tenant ends its users' refresh tokens too, not only their access tokens.
func TestRefresh_DisabledTenantRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	tn, _ := e.seed(t, "acme", "ana@example.org", pw)
	root := e.login(t, "root", "root@example.org", pw, "")
	a := e.login(t, "acme", "ana@example.org", pw, "")
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"status":"disabled"}`, "", root.AccessToken); res.StatusCode != 200 {
		t.Fatalf("disable: %d %s", res.StatusCode, b)
	}
	res, b := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+a.RefreshToken+`"}`, "", nil)
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
}

// Every 403 leaves an authz.denied audit event, also from checks outside the policy engine
// (platform-only operations, the platform's key rotation).
func TestEveryForbiddenAnswerIsAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	e.enrolTOTP(t, a.cookie)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/tenants", ""},
		{"POST", "/v1/keys/rotate", `{"purpose":"totp"}`},
	} {
		res, b := e.req(t, c.method, c.path, c.body, "", a.cookie)
		wantError(t, res, b, 403, tutela.EFORBIDDEN)
		var reqID = res.Header.Get("X-Request-ID")
		recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "authz.denied", Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range recs {
			found = found || (r.Event.RequestID == reqID && r.Event.Reason != "" && r.Event.ActorID == a.UserID)
		}
		if !found {
			t.Fatalf("%s %s: no authz.denied event for the 403", c.method, c.path)
		}
	}
}
