package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

type oidcCreated struct {
	Client sqlstore.OIDCClient `json:"client"`
	Secret string              `json:"client_secret"`
}

const webClientBody = `{"name":"Case portal","application_type":"web","redirect_uris":["https://portal.example.org/cb"]}`

func (e *env) createOIDCClient(t *testing.T, tenantID string, auth any, body string) oidcCreated {
	t.Helper()
	res, b := e.req(t, "POST", "/v1/tenants/"+tenantID+"/oidc-clients", body, "", auth)
	if res.StatusCode != 201 {
		t.Fatalf("create client: %d %s", res.StatusCode, b)
	}
	var c oidcCreated
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) clientSecretWorks(t *testing.T, tenantID, clientID, secret string) bool {
	t.Helper()
	var ok bool
	if err := e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) {
		ok, err = tx.OIDCClients(tenantID).VerifySecret(context.Background(), clientID, tutela.NewSecret(secret))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestOIDCClients_RegisterReadRotateDisableDelete(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			tn, a, totp := adminWithFactor(t, e)
			e.stepUp(t, a.cookie, totp)
			base := "/v1/tenants/" + tn.ID + "/oidc-clients"
			c := e.createOIDCClient(t, tn.ID, a.cookie, webClientBody)
			if c.Secret == "" || c.Client.AuthMethod != sqlstore.ClientSecretBasic || c.Client.IDTokenAlg != "EdDSA" ||
				strings.Join(c.Client.GrantTypes, " ") != "authorization_code refresh_token" || c.Client.Status != "active" {
				t.Fatalf("created %+v", c)
			}
			if !e.clientSecretWorks(t, tn.ID, c.Client.ID, c.Secret) {
				t.Fatal("the returned secret does not verify")
			}
			// A public client gets no secret.
			spa := e.createOIDCClient(t, tn.ID, a.cookie, `{"name":"SPA","application_type":"user_agent","redirect_uris":["https://spa.example.org/"]}`)
			if spa.Secret != "" || spa.Client.AuthMethod != sqlstore.AuthNone {
				t.Fatalf("public client %+v", spa)
			}
			// The secret is shown once: never in a read.
			res, b := e.req(t, "GET", base+"/"+c.Client.ID, "", "", a.cookie)
			if res.StatusCode != 200 || bytes.Contains(b, []byte(c.Secret)) || bytes.Contains(b, []byte("client_secret\"")) {
				t.Fatalf("GET client: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "GET", base+"?limit=1", "", "", a.cookie)
			var page struct {
				Clients []sqlstore.OIDCClient `json:"clients"`
				Next    string                `json:"next_cursor"`
			}
			_ = json.Unmarshal(b, &page)
			if res.StatusCode != 200 || len(page.Clients) != 1 || page.Next == "" || bytes.Contains(b, []byte(c.Secret)) {
				t.Fatalf("list: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "GET", base+"?cursor="+page.Next, "", "", a.cookie)
			_ = json.Unmarshal(b, &page)
			if res.StatusCode != 200 || len(page.Clients) != 1 {
				t.Fatalf("second page: %d %s", res.StatusCode, b)
			}
			// Rename (no step-up needed once it lapsed), then move the redirect URI (needs one).
			e.clock.Add(6 * time.Minute)
			if res, b := e.req(t, "PATCH", base+"/"+c.Client.ID, `{"name":"Portal","scopes":["openid","email"]}`, "", a.cookie); res.StatusCode != 200 {
				t.Fatalf("rename: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "PATCH", base+"/"+c.Client.ID, `{"redirect_uris":["https://attacker.example/cb"]}`, "", a.cookie)
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			res, b = e.req(t, "PATCH", base+"/"+c.Client.ID, `{"token_endpoint_auth_method":"none"}`, "", a.cookie)
			wantInvalid := wantError(t, res, b, 400, tutela.EINVALID)
			if wantInvalid.Error.Field == "" {
				t.Fatal("refusal names no field")
			}
			// Rotation: the old secret keeps working for the overlap, then stops.
			e.stepUp(t, a.cookie, totp)
			res, b = e.req(t, "POST", base+"/"+c.Client.ID+"/secrets", `{"overlap_seconds":120}`, "", a.cookie)
			var rot struct {
				ID     string `json:"secret_id"`
				Secret string `json:"client_secret"`
			}
			_ = json.Unmarshal(b, &rot)
			if res.StatusCode != 201 || rot.Secret == "" || rot.Secret == c.Secret {
				t.Fatalf("rotate: %d %s", res.StatusCode, b)
			}
			for _, bad := range []string{`{"overlap_seconds":-1}`, `{"overlap_seconds":2592001}`} {
				res, b = e.req(t, "POST", base+"/"+c.Client.ID+"/secrets", bad, "", a.cookie)
				wantError(t, res, b, 400, tutela.EINVALID)
			}
			if !e.clientSecretWorks(t, tn.ID, c.Client.ID, c.Secret) || !e.clientSecretWorks(t, tn.ID, c.Client.ID, rot.Secret) {
				t.Fatal("both secrets must work within the overlap")
			}
			e.clock.Add(121 * time.Second)
			if e.clientSecretWorks(t, tn.ID, c.Client.ID, c.Secret) || !e.clientSecretWorks(t, tn.ID, c.Client.ID, rot.Secret) {
				t.Fatal("after the overlap only the new secret works")
			}
			e.stepUp(t, a.cookie, totp)
			if res, b := e.req(t, "DELETE", base+"/"+c.Client.ID+"/secrets/"+rot.ID, "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("revoke: %d %s", res.StatusCode, b)
			}
			if e.clientSecretWorks(t, tn.ID, c.Client.ID, rot.Secret) {
				t.Fatal("revoked secret still works")
			}
			res, b = e.req(t, "DELETE", base+"/"+c.Client.ID+"/secrets/"+rot.ID, "", "", a.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			// Disabled, enabled, deleted.
			if res, b := e.req(t, "POST", base+"/"+c.Client.ID+"/disable", "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("disable: %d %s", res.StatusCode, b)
			}
			_, b = e.req(t, "GET", base+"/"+c.Client.ID, "", "", a.cookie)
			if !bytes.Contains(b, []byte(`"status":"disabled"`)) {
				t.Fatalf("after disable: %s", b)
			}
			if res, b := e.req(t, "POST", base+"/"+c.Client.ID+"/enable", "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("enable: %d %s", res.StatusCode, b)
			}
			if res, b := e.req(t, "DELETE", base+"/"+c.Client.ID, "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("delete: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "GET", base+"/"+c.Client.ID, "", "", a.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
		})
	}
}

func TestOIDCClients_OtherTenantGetsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	ta, _ := e.seed(t, "tenant-a", "admin@example.org", pw, "program_admin")
	tb, _ := e.seed(t, "tenant-b", "admin-b@example.org", pw, "program_admin")
	a := e.login(t, "tenant-a", "admin@example.org", pw, "")
	b := e.login(t, "tenant-b", "admin-b@example.org", pw, "")
	c := e.createOIDCClient(t, ta.ID, a.AccessToken, webClientBody)
	for _, base := range []string{"/v1/tenants/" + ta.ID + "/oidc-clients", "/v1/tenants/" + tb.ID + "/oidc-clients"} {
		for _, call := range []struct{ method, path, body string }{
			{"GET", "/" + c.Client.ID, ""},
			{"PATCH", "/" + c.Client.ID, `{"name":"Hijacked"}`},
			{"DELETE", "/" + c.Client.ID, ""},
			{"POST", "/" + c.Client.ID + "/disable", ""},
			{"POST", "/" + c.Client.ID + "/secrets", `{}`},
			{"POST", "/" + c.Client.ID + "/keys", `{"jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`},
		} {
			res, body := e.req(t, call.method, base+call.path, call.body, "", b.AccessToken)
			wantError(t, res, body, 404, tutela.ENOTFOUND)
			if bytes.Contains(body, []byte("Case portal")) {
				t.Fatalf("%s %s leaks the client: %s", call.method, call.path, body)
			}
		}
	}
	res, body := e.req(t, "GET", "/v1/tenants/"+ta.ID+"/oidc-clients", "", "", b.AccessToken)
	wantError(t, res, body, 404, tutela.ENOTFOUND)
	res, body = e.req(t, "GET", "/v1/tenants/"+tb.ID+"/oidc-clients", "", "", b.AccessToken)
	if res.StatusCode != 200 || bytes.Contains(body, []byte(c.Client.ID)) {
		t.Fatalf("own tenant's list: %d %s", res.StatusCode, body)
	}
	if !e.clientSecretWorks(t, ta.ID, c.Client.ID, c.Secret) {
		t.Fatal("the other tenant's calls changed the client")
	}
	res, body = e.req(t, "GET", "/v1/tenants/"+ta.ID+"/oidc-clients/"+c.Client.ID, "", "", a.AccessToken)
	if res.StatusCode != 200 || !bytes.Contains(body, []byte(`"name":"Case portal"`)) || !bytes.Contains(body, []byte(`"status":"active"`)) {
		t.Fatalf("client after the other tenant's calls: %d %s", res.StatusCode, body)
	}
}

func TestOIDCClients_CredentialsNeedFreshStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, a, totp := adminWithFactor(t, e)
	base := "/v1/tenants/" + tn.ID + "/oidc-clients"
	e.clock.Add(6 * time.Minute)
	res, b := e.req(t, "POST", base, webClientBody, "", a.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	if _, b := e.req(t, "GET", base, "", "", a.cookie); !bytes.Contains(b, []byte(`"clients":[]`)) {
		t.Fatalf("a client was registered without step-up: %s", b)
	}
	e.stepUp(t, a.cookie, totp)
	c := e.createOIDCClient(t, tn.ID, a.cookie, webClientBody)
	pk := e.createOIDCClient(t, tn.ID, a.cookie, `{"name":"Partner","application_type":"web","token_endpoint_auth_method":"private_key_jwt","redirect_uris":["https://p.example/cb"]}`)
	e.clock.Add(6 * time.Minute)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: &ec.PublicKey})
	for _, call := range []struct{ method, path, body string }{
		{"POST", "/" + c.Client.ID + "/secrets", `{}`},
		{"POST", "/" + pk.Client.ID + "/keys", `{"jwk":` + string(jwk) + `}`},
		{"DELETE", "/" + c.Client.ID, ""},
		{"POST", "/" + c.Client.ID + "/disable", ""},
		{"PATCH", "/" + c.Client.ID, `{"post_logout_redirect_uris":["https://attacker.example/"]}`},
	} {
		res, b := e.req(t, call.method, base+call.path, call.body, "", a.cookie)
		wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	}
	e.stepUp(t, a.cookie, totp)
	res, b = e.req(t, "POST", base+"/"+pk.Client.ID+"/keys", `{"jwk":`+string(jwk)+`}`, "", a.cookie)
	if res.StatusCode != 201 {
		t.Fatalf("add key: %d %s", res.StatusCode, b)
	}
	var added struct{ Kid string }
	_ = json.Unmarshal(b, &added)
	priv, _ := json.Marshal(jose.JSONWebKey{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))})
	res, b = e.req(t, "POST", base+"/"+pk.Client.ID+"/keys", `{"jwk":`+string(priv)+`}`, "", a.cookie)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "jwk" || bytes.Contains(b, []byte(`"d"`)) {
		t.Fatalf("private key refusal: %s", b)
	}
	if res, b := e.req(t, "DELETE", base+"/"+pk.Client.ID+"/keys/"+added.Kid, "", "", a.cookie); res.StatusCode != 204 {
		t.Fatalf("remove key: %d %s", res.StatusCode, b)
	}
}

// Each bad registration is refused with invalid naming the field, and nothing is stored.
func TestOIDCClients_InvalidRedirectURIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	base := "/v1/tenants/" + tn.ID + "/oidc-clients"
	body := func(typ string, uris ...string) string {
		b, _ := json.Marshal(map[string]any{"name": "App", "application_type": typ, "redirect_uris": uris})
		return string(b)
	}
	for _, tc := range []struct{ body, field string }{
		{body("web", "http://portal.example.org/cb"), "redirect_uris"},
		{body("web", "https://portal.example.org/cb#frag"), "redirect_uris"},
		{body("web", "https://user:pw@portal.example.org/cb"), "redirect_uris"},
		{body("web", "https://*.example.org/cb"), "redirect_uris"},
		{body("web", "/relative/cb"), "redirect_uris"},
		{body("web", "javascript:alert(document.domain)"), "redirect_uris"},
		{body("web", "https://portal.example.org/"+strings.Repeat("a", 2000)), "redirect_uris"},
		{body("web"), "redirect_uris"},
		{body("native", "http://localhost:7000/cb"), "redirect_uris"},
		{body("native", "myapp:/cb"), "redirect_uris"},
		{body("user_agent", "http://10.0.0.1/cb"), "redirect_uris"},
		{`{"name":"App","application_type":"web","redirect_uris":["https://a.example/cb"],"post_logout_redirect_uris":["https://a.example/#x"]}`, "post_logout_redirect_uris"},
		{`{"name":"App","application_type":"web","redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"http://a.example/bcl"}`, "backchannel_logout_uri"},
		{`{"name":"App","application_type":"web","redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code","implicit"]}`, "grant_types"},
		{`{"name":"App","application_type":"web","redirect_uris":["https://a.example/cb"],"scopes":["profile"]}`, "scopes"},
		{`{"name":"App","application_type":"native","token_endpoint_auth_method":"client_secret_basic","redirect_uris":["http://127.0.0.1/cb"]}`, "token_endpoint_auth_method"},
		// RS256 is kept only when auth.token_algs lists it (this server's ring: EdDSA, ES256).
		{`{"name":"App","application_type":"web","redirect_uris":["https://a.example/cb"],"id_token_signed_response_alg":"RS256"}`, "id_token_signed_response_alg"},
	} {
		wantInvalidField(t, e, "POST", base, tc.body, a.AccessToken, tc.field)
	}
	_, b := e.req(t, "GET", base, "", "", a.AccessToken)
	if !bytes.Contains(b, []byte(`"clients":[]`)) {
		t.Fatalf("a refused registration was stored: %s", b)
	}
	c := e.createOIDCClient(t, tn.ID, a.AccessToken, webClientBody)
	wantInvalidField(t, e, "PATCH", base+"/"+c.Client.ID, `{"redirect_uris":["https://portal.example.org/cb","http://evil.example/cb"]}`,
		a.AccessToken, "redirect_uris")
	_, b = e.req(t, "GET", base+"/"+c.Client.ID, "", "", a.AccessToken)
	if bytes.Contains(b, []byte("evil.example")) {
		t.Fatalf("a refused change was stored: %s", b)
	}
}

// No client secret, nor its hash, reaches the audit log; the changes themselves are there.
func TestOIDCClients_SecretNeverInAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	c := e.createOIDCClient(t, tn.ID, a.AccessToken, webClientBody)
	res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/oidc-clients/"+c.Client.ID+"/secrets", "", "", a.AccessToken)
	if res.StatusCode != 201 {
		t.Fatalf("rotate without a body: %d %s", res.StatusCode, b)
	}
	var rot struct {
		Secret string `json:"client_secret"`
	}
	_ = json.Unmarshal(b, &rot)
	recs, _, err := e.db.AuditEvents(context.Background(), sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.Event.Action] = true
		for _, s := range []string{c.Secret, rot.Secret} {
			if bytes.Contains(r.Canonical, []byte(s)) || bytes.Contains(r.Canonical, []byte(s[:16])) {
				t.Fatalf("%s event holds a client secret: %s", r.Event.Action, r.Canonical)
			}
		}
	}
	if !seen["oidc_client.create"] || !seen["oidc_client.secret_rotate"] {
		t.Fatalf("audit actions %v", seen)
	}
}
