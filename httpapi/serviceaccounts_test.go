package httpapi_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

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

// signedAssertion is a private_key_jwt client assertion (RFC 7523 §3) for the token endpoint.
func (e *env) signedAssertion(t *testing.T, key ed25519.PrivateKey, kid, clientID string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: clientID, Subject: clientID,
		Audience: jwt.Audience{"https://tutela.test/v1/oauth/token"}, ID: tutela.NewID(), IssuedAt: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(2 * time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) assertionToken(t *testing.T, assertion string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {assertion}}
	r := httptest.NewRequest("POST", "/v1/oauth/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

// introspectFrom introspects tok as the resource server (id, secret) calling from ip.
func (e *env) introspectFrom(t *testing.T, tok, id, secret, ip string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest("POST", "/v1/auth/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	r.RemoteAddr = ip + ":5000"
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

// jwkOf is a fresh Ed25519 key pair as a JWK request body and its private key.
func jwkOf(t *testing.T, kid string) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: kid})
	if err != nil {
		t.Fatal(err)
	}
	return `{"jwk":` + string(jwk) + `}`, priv
}

// TestServiceAccount_ManagingNeedsEveryRightOfTheAccount: service_accounts MANAGE alone does not
// let a programme administrator mint a secret or key for (and so act as), revoke or disable an
// account that holds more than they do.
func TestServiceAccount_ManagingNeedsEveryRightOfTheAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _ := e.seed(t, "acme", "root@example.org", pw, "super_admin")
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	stepUp := func(email string) *http.Cookie {
		g := e.login(t, "acme", email, pw, "")
		secret := e.enrolTOTP(t, g.cookie)
		if res, b := e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", g.cookie); res.StatusCode != 200 && res.StatusCode != 204 {
			t.Fatalf("step-up %s: %d %s", email, res.StatusCode, b)
		}
		return g.cookie
	}
	root, admin := stepUp("root@example.org"), stepUp("admin@example.org")
	base := "/v1/tenants/" + tn.ID + "/service-accounts/"
	addSecret := func(saID string, auth any) (*http.Response, []byte, string) {
		res, b := e.req(t, "POST", base+saID+"/secrets", "", "", auth)
		var out struct {
			ID string `json:"secret_id"`
		}
		_ = json.Unmarshal(b, &out)
		return res, b, out.ID
	}
	for _, tc := range []struct{ name, body string }{
		{"permission above the admin's limit", `{"name":"red-records","clearance":"RED","permissions":[{"resource":"records","action":"READ","max_classification":"RED"}]}`},
		{"permission the admin lacks", `{"name":"keys","permissions":[{"resource":"keys","action":"MANAGE"}]}`},
		{"clearance above the admin's", `{"name":"red-clearance","clearance":"RED"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sa := e.createSA(t, tn.ID, root, tc.body)
			res, b, _ := addSecret(sa.SA.ID, admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			key, _ := jwkOf(t, "k1")
			res, b = e.req(t, "POST", base+sa.SA.ID+"/keys", key, "", admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b, rootSecret := addSecret(sa.SA.ID, root) // the super-admin holds everything
			if res.StatusCode != 201 {
				t.Fatalf("super-admin adds a secret: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "DELETE", base+sa.SA.ID+"/secrets/"+rootSecret, "", "", admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = e.req(t, "POST", base+sa.SA.ID+"/disable", "", "", admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if code, out := e.clientToken(t, sa.SA.ClientID, sa.Secret, ""); code != 200 {
				t.Fatalf("account changed by the refused requests: %d %v", code, out)
			}
		})
	}
	// An account within the admin's own rights (at their limits) they manage as before.
	sa := e.createSA(t, tn.ID, admin, `{"name":"own","clearance":"YELLOW","permissions":[{"resource":"records","action":"READ","max_classification":"YELLOW"}]}`)
	res, b, id := addSecret(sa.SA.ID, admin)
	if res.StatusCode != 201 {
		t.Fatalf("add secret to own-rights account: %d %s", res.StatusCode, b)
	}
	key, priv := jwkOf(t, "k1")
	if res, b := e.req(t, "POST", base+sa.SA.ID+"/keys", key, "", admin); res.StatusCode != 201 {
		t.Fatalf("register key: %d %s", res.StatusCode, b)
	}
	if code, out := e.assertionToken(t, e.signedAssertion(t, priv, "k1", sa.SA.ClientID)); code != 200 {
		t.Fatalf("private_key_jwt with the registered key: %d %v", code, out)
	}
	if res, b := e.req(t, "DELETE", base+sa.SA.ID+"/secrets/"+id, "", "", admin); res.StatusCode != 204 {
		t.Fatalf("revoke secret: %d %s", res.StatusCode, b)
	}
	if res, b := e.req(t, "POST", base+sa.SA.ID+"/disable", "", "", admin); res.StatusCode != 204 {
		t.Fatalf("disable: %d %s", res.StatusCode, b)
	}
}

// TestServiceAccount_DisabledTenantEndsItsAccounts: like its users, a disabled tenant's service
// accounts can get no token by secret or by key, and tokens already issued stop at once.
func TestServiceAccount_DisabledTenantEndsItsAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "platform", "root@example.org", pw, "super_admin")
	tn, _ := e.seed(t, "acme", "ana@example.org", pw)
	g := e.login(t, "platform", "root@example.org", pw, "")
	secret := e.enrolTOTP(t, g.cookie)
	e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", g.cookie)
	root := g.cookie
	sa := e.createSA(t, tn.ID, root, `{"name":"etl","permissions":[{"resource":"users","action":"READ"}]}`)
	key, priv := jwkOf(t, "k1")
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/service-accounts/"+sa.SA.ID+"/keys", key, "", root); res.StatusCode != 201 {
		t.Fatalf("register key: %d %s", res.StatusCode, b)
	}
	code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 {
		t.Fatalf("token: %d %v", code, tok)
	}
	at := tok["access_token"].(string)
	if code, out := e.assertionToken(t, e.signedAssertion(t, priv, "k1", sa.SA.ClientID)); code != 200 {
		t.Fatalf("private_key_jwt: %d %v", code, out)
	}
	check := `{"action":"READ","resource":"users"}`
	if res, b := e.req(t, "POST", "/v1/authz/check", check, "", at); res.StatusCode != 200 {
		t.Fatalf("check before: %d %s", res.StatusCode, b)
	}
	caller := &sqlstore.ServiceAccount{TenantID: tn.ID}
	if got := e.ids.Introspect(context.Background(), caller, at); !got.Active {
		t.Fatal("introspection before: inactive")
	}

	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"status":"disabled"}`, "", root); res.StatusCode != 200 {
		t.Fatalf("disable tenant: %d %s", res.StatusCode, b)
	}
	if code, out := e.clientToken(t, sa.SA.ClientID, sa.Secret, ""); code != 401 || out["error"] != "invalid_client" {
		t.Fatalf("client_secret after the tenant is disabled: %d %v", code, out)
	}
	if code, out := e.assertionToken(t, e.signedAssertion(t, priv, "k1", sa.SA.ClientID)); code != 401 || out["error"] != "invalid_client" {
		t.Fatalf("private_key_jwt after the tenant is disabled: %d %v", code, out)
	}
	res, b := e.req(t, "POST", "/v1/authz/check", check, "", at)
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
	if got := e.ids.Introspect(context.Background(), caller, at); got.Active {
		t.Fatalf("introspection after the tenant is disabled: %+v", got)
	}
}

// TestIntrospect_AllowlistBindsTheAccountNotTheResourceServer: the IP allowlist limits where the
// account itself calls from; a resource server introspecting its token from elsewhere still
// learns the token is active.
func TestIntrospect_AllowlistBindsTheAccountNotTheResourceServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	api := e.createSA(t, tn.ID, a.AccessToken, `{"name":"api","permissions":[{"resource":"users","action":"READ"}],"ip_allowlist":["192.0.2.0/24"]}`)
	rs := e.createSA(t, tn.ID, a.AccessToken, `{"name":"resource-server"}`)
	code, tok := e.clientToken(t, api.SA.ClientID, api.Secret, "192.0.2.10")
	if code != 200 {
		t.Fatalf("token: %d %v", code, tok)
	}
	at := tok["access_token"].(string)
	code, out := e.introspectFrom(t, at, rs.SA.ClientID, rs.Secret, "203.0.113.5")
	if code != 200 || out["active"] != true || out["sub"] != api.SA.ID {
		t.Fatalf("introspection from the resource server's address: %d %v", code, out)
	}
	// The account itself is still held to its allowlist.
	check := `{"action":"READ","resource":"users"}`
	res, b := e.req(t, "POST", "/v1/authz/check", check, "203.0.113.5", at)
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
	if res, b := e.req(t, "POST", "/v1/authz/check", check, "192.0.2.10", at); res.StatusCode != 200 {
		t.Fatalf("check from inside the allowlist: %d %s", res.StatusCode, b)
	}
	// An account whose own allowlist excludes the resource server's address cannot introspect.
	if code, out := e.introspectFrom(t, at, api.SA.ClientID, api.Secret, "203.0.113.5"); code != 401 {
		t.Fatalf("introspection by an account from outside its allowlist: %d %v", code, out)
	}
}
