package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
)

func (e *env) clientToken(t *testing.T, id, secret, ip string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest("POST", "/v1/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	if ip == "" {
		ip = "192.0.2.10"
	}
	r.RemoteAddr = ip + ":5000"
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

type saCreated struct {
	SA struct {
		ID       string `json:"id"`
		ClientID string `json:"client_id"`
	} `json:"service_account"`
	Secret string `json:"client_secret"`
}

func (e *env) createSA(t *testing.T, tenantID string, admin any, body string) saCreated {
	t.Helper()
	res, b := e.req(t, "POST", "/v1/tenants/"+tenantID+"/service-accounts", body, "", admin)
	if res.StatusCode != 201 {
		t.Fatalf("create service account: %d %s", res.StatusCode, b)
	}
	var c saCreated
	_ = json.Unmarshal(b, &c)
	return c
}

func TestServiceAccount_ClientCredentialsTokenLimitedToItsPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	ta, _ := e.seed(t, "tenant-a", "admin@example.org", pw, "program_admin")
	tb, _ := e.seed(t, "tenant-b", "admin-b@example.org", pw, "program_admin")
	a := e.login(t, "tenant-a", "admin@example.org", pw, "")
	sa := e.createSA(t, ta.ID, a.AccessToken, `{"name":"reporting","permissions":[{"resource":"users","action":"READ"}],"ip_allowlist":["192.0.2.0/24"]}`)
	if !strings.HasPrefix(sa.Secret, "tss_") || !strings.HasPrefix(sa.SA.ClientID, "sa_") {
		t.Fatalf("created: %+v", sa)
	}
	code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 || tok["scope"] != "users:READ" || tok["token_type"] != "Bearer" {
		t.Fatalf("token: %d %v", code, tok)
	}
	at := tok["access_token"].(string)
	if res, b := e.req(t, "GET", "/v1/tenants/"+ta.ID+"/users", "", "192.0.2.10", at); res.StatusCode != 200 {
		t.Fatalf("read within scope: %d %s", res.StatusCode, b)
	}
	res, b := e.req(t, "POST", "/v1/tenants/"+ta.ID+"/users", `{"email":"x@example.org"}`, "192.0.2.10", at)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = e.req(t, "GET", "/v1/tenants/"+tb.ID+"/users", "", "192.0.2.10", at)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
	// The allowlist applies to the token request and to every use of the token.
	if code, out := e.clientToken(t, sa.SA.ClientID, sa.Secret, "198.51.100.1"); code != 401 || out["error"] != "invalid_client" {
		t.Fatalf("token from outside the allowlist: %d %v", code, out)
	}
	if res, _ := e.req(t, "GET", "/v1/tenants/"+ta.ID+"/users", "", "198.51.100.1", at); res.StatusCode != 401 {
		t.Fatalf("token used from outside the allowlist: %d", res.StatusCode)
	}
	// Wrong secret, unknown client, other grant types.
	if code, _ := e.clientToken(t, sa.SA.ClientID, sa.Secret+"x", ""); code != 401 {
		t.Fatalf("wrong secret: %d", code)
	}
	if code, _ := e.clientToken(t, "sa_nope", sa.Secret, ""); code != 401 {
		t.Fatalf("unknown client: %d", code)
	}
	// Rotation: a second secret, never a third; the old one can be revoked.
	res, b = e.req(t, "POST", "/v1/tenants/"+ta.ID+"/service-accounts/"+sa.SA.ID+"/secrets", "", "", a.AccessToken)
	var second struct {
		ID     string `json:"secret_id"`
		Secret string `json:"client_secret"`
	}
	_ = json.Unmarshal(b, &second)
	if res.StatusCode != 201 {
		t.Fatalf("second secret: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "POST", "/v1/tenants/"+ta.ID+"/service-accounts/"+sa.SA.ID+"/secrets", "", "", a.AccessToken)
	wantError(t, res, b, 409, tutela.ECONFLICT)
	if code, _ := e.clientToken(t, sa.SA.ClientID, second.Secret, ""); code != 200 {
		t.Fatal("second secret does not work")
	}
	if res, _ := e.req(t, "DELETE", "/v1/tenants/"+ta.ID+"/service-accounts/"+sa.SA.ID+"/secrets/"+second.ID, "", "", a.AccessToken); res.StatusCode != 204 {
		t.Fatal("revoke secret failed")
	}
	if code, _ := e.clientToken(t, sa.SA.ClientID, second.Secret, ""); code != 401 {
		t.Fatal("revoked secret still works")
	}
	// Disabling the account ends its tokens at once.
	if res, _ := e.req(t, "POST", "/v1/tenants/"+ta.ID+"/service-accounts/"+sa.SA.ID+"/disable", "", "", a.AccessToken); res.StatusCode != 204 {
		t.Fatal("disable failed")
	}
	if res, _ := e.req(t, "GET", "/v1/tenants/"+ta.ID+"/users", "", "192.0.2.10", at); res.StatusCode != 401 {
		t.Fatal("disabled account's token still works")
	}
}

func TestServiceAccount_DefaultsReadOnlyExpiresAndNoEscalation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	ta, _ := e.seed(t, "tenant-a", "admin@example.org", pw, "program_admin")
	a := e.login(t, "tenant-a", "admin@example.org", pw, "")
	exp := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
	sa := e.createSA(t, ta.ID, a.AccessToken, `{"name":"etl","expires_at":"`+exp+`"}`)
	code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 || tok["scope"] != "records:READ≤GREEN" {
		t.Fatalf("default scope: %d %v", code, tok)
	}
	// The account cannot be given more than its creator holds.
	for _, body := range []string{
		`{"name":"k","permissions":[{"resource":"keys","action":"MANAGE"}]}`,
		`{"name":"r","clearance":"RED"}`,
	} {
		res, b := e.req(t, "POST", "/v1/tenants/"+ta.ID+"/service-accounts", body, "", a.AccessToken)
		wantError(t, res, b, 403, tutela.EFORBIDDEN)
	}
	// The token never outlives the account.
	if ttl, _ := tok["expires_in"].(float64); ttl <= 0 || ttl > 300 {
		t.Fatalf("expires_in %v", tok["expires_in"])
	}
	e.clock.Add(2 * time.Hour)
	if code, _ := e.clientToken(t, sa.SA.ClientID, sa.Secret, ""); code != 401 {
		t.Fatal("expired account still gets tokens")
	}
}
