package httpapi_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
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

func TestPrivateKeyJWT_TokenWithoutSharedSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	secret := e.enrolTOTP(t, a.cookie)
	e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", a.cookie)
	sa := e.createSA(t, tn.ID, a.cookie, `{"name":"etl","permissions":[{"resource":"users","action":"READ"}]}`)

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: "k1"})
	res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/service-accounts/"+sa.SA.ID+"/keys", `{"jwk":`+string(jwk)+`}`, "", a.cookie)
	if res.StatusCode != 201 {
		t.Fatalf("register key: %d %s", res.StatusCode, b)
	}
	assertion := func(key ed25519.PrivateKey, jti string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		now := e.clock.Now()
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: sa.SA.ClientID, Subject: sa.SA.ClientID,
			Audience: jwt.Audience{"https://tutela.test/v1/oauth/token"}, ID: jti, IssuedAt: jwt.NewNumericDate(now),
			Expiry: jwt.NewNumericDate(now.Add(2 * time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	token := func(as string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {as}}
		r := httptest.NewRequest("POST", "/v1/oauth/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, r)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	as := assertion(priv, tutela.NewID())
	code, out := token(as)
	if code != 200 || out["scope"] != "users:READ" {
		t.Fatalf("private_key_jwt: %d %v", code, out)
	}
	if code, _ := token(as); code != 401 {
		t.Fatalf("replayed assertion (same jti): %d", code)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if code, _ := token(assertion(other, tutela.NewID())); code != 401 {
		t.Fatalf("assertion signed with another key: %d", code)
	}
	if code, _ := token("not.a.jwt"); code != 401 {
		t.Fatalf("garbage assertion: %d", code)
	}
}

func TestTenantPolicy_RequirePrivateKeyJWTRefusesSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	secret := e.enrolTOTP(t, a.cookie)
	e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", a.cookie)
	sa := e.createSA(t, tn.ID, a.cookie, `{"name":"etl"}`)
	if code, _ := e.clientToken(t, sa.SA.ClientID, sa.Secret, ""); code != 200 {
		t.Fatalf("secret before the policy: %d", code)
	}
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"require_private_key_jwt":true}`, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("policy: %d %s", res.StatusCode, b)
	}
	if code, out := e.clientToken(t, sa.SA.ClientID, sa.Secret, ""); code != 401 || out["error"] != "invalid_client" {
		t.Fatalf("secret under a private_key_jwt-only policy: %d %v", code, out)
	}
}

func TestAccessToken_CarriesACR(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "ana@example.org", pw)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	secret := e.enrolTOTP(t, g.AccessToken)
	claims := func(tok string) map[string]any {
		parts := strings.Split(tok, ".")
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	if c := claims(g.AccessToken); c["acr"] != "urn:tutela:acr:pwd" || c["auth_time"] == nil {
		t.Fatalf("password-only claims: %v", c)
	}
	ch := e.passwordStep(t, "acme", "ana@example.org", "")
	_, mg, _ := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`)
	if c := claims(mg.AccessToken); c["acr"] != "urn:tutela:acr:mfa" {
		t.Fatalf("MFA claims: %v", c)
	}
}
