package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// RFC 8707 resource indicators (ASVS 9.2.4, 10.3.1): a token asked for a registered resource
// server carries that audience only. It is refused by Tutela's own API, accepted by the decision
// API and introspection (which resource servers call about the tokens presented to them), and
// an unregistered resource is refused without using anything up.
func TestAudience_ResourceTokensAreRestricted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	if aud := claimsOf(t, a.AccessToken)["aud"]; !audIs(aud, "tutela") {
		t.Fatalf("sign-in token aud = %v", aud)
	}

	// A user token for the resource server, by refresh (RFC 8707 §2.2).
	res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+a.RefreshToken+`","resource":"https://evil.example.org"}`, "", nil)
	wantError(t, res, body, 400, tutela.EINVALID)
	res, body = e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+a.RefreshToken+`","resource":"`+testResource+`"}`, "", nil)
	var rs grant
	if err := json.Unmarshal(body, &rs); err != nil || res.StatusCode != 200 {
		t.Fatalf("refresh for the resource (the refused one must not have used the refresh token): %d %s", res.StatusCode, body)
	}
	if aud := claimsOf(t, rs.AccessToken)["aud"]; !audIs(aud, testResource) {
		t.Fatalf("resource token aud = %v", aud)
	}
	// Not a token for Tutela's API ...
	res, body = e.req(t, "GET", "/v1/auth/me", "", "", rs.AccessToken)
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
	res, body = e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users", "", "", rs.AccessToken)
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
	// ... but the decision API answers for it.
	if d := e.check(t, rs.AccessToken, `{"action":"READ","resource":"users"}`); !d.Allow {
		t.Fatalf("check with the resource token: %+v", d)
	}
	if res, body := e.req(t, "POST", "/v1/authz/check/batch", `{"checks":[{"action":"READ","resource":"users"}]}`, "", rs.AccessToken); res.StatusCode != 200 {
		t.Fatalf("batch with the resource token: %d %s", res.StatusCode, body)
	}

	// A service account asks for a token for the resource server.
	sa := e.createSA(t, tn.ID, a.AccessToken, `{"name":"records-api","permissions":[{"resource":"users","action":"READ"}]}`)
	form := func(extra url.Values) (int, map[string]any) {
		v := url.Values{"grant_type": {"client_credentials"}}
		for k, vs := range extra {
			v[k] = vs
		}
		r := httptest.NewRequest("POST", "/v1/oauth/token", strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(sa.SA.ClientID+":"+sa.Secret)))
		r.RemoteAddr = "192.0.2.10:5000"
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, r)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	for _, bad := range []url.Values{{"resource": {"https://evil.example.org"}}, {"resource": {testResource + "/"}},
		{"resource": {testResource, "https://other.example.org"}}} {
		if code, out := form(bad); code != 400 || out["error"] != "invalid_target" {
			t.Fatalf("resource %v: %d %v", bad, code, out)
		}
	}
	code, out := form(url.Values{"resource": {testResource}})
	if code != 200 {
		t.Fatalf("token for the resource: %d %v", code, out)
	}
	saTok := out["access_token"].(string)
	if aud := claimsOf(t, saTok)["aud"]; !audIs(aud, testResource) {
		t.Fatalf("service-account resource token aud = %v", aud)
	}
	res, body = e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users", "", "192.0.2.10", saTok)
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
	// Introspection (by the resource server's own account) reports it active, with its audience.
	if code, in := e.introspectFrom(t, rs.AccessToken, sa.SA.ClientID, sa.Secret, "198.51.100.7"); code != 200 ||
		in["active"] != true || !audIs(in["aud"], testResource) {
		t.Fatalf("introspection of the resource token: %d %v", code, in)
	}
}

func audIs(v any, want string) bool {
	list, ok := v.([]any)
	return ok && len(list) == 1 && list[0] == want
}
