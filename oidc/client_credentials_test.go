package oidc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"tutela"
	"tutela/authz"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// serviceAccount creates a service account in the tenant and returns it with its secret.
func serviceAccount(t *testing.T, e *oidctest.Env, sa sqlstore.ServiceAccount) (*sqlstore.ServiceAccount, string) {
	t.Helper()
	ctx := context.Background()
	if sa.Name == "" {
		sa.Name = "etl"
	}
	var secret tutela.Secret
	err := e.DB.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		secret, err = e.Identity.CreateServiceAccountTx(ctx, tx, &sa)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return &sa, secret.Reveal()
}

// tokenPost sends a token request to endpoint (a URL below e.URL) with optional HTTP Basic
// credentials and returns the status and the decoded body.
func tokenPost(t *testing.T, e *oidctest.Env, endpoint string, form url.Values, id, secret string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", e.URL+endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// apiStatus calls the /v1 API with a bearer token.
func apiStatus(t *testing.T, e *oidctest.Env, method, path, body, tok string) int {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// auditCount counts the tenant's events of action.
func auditCount(t *testing.T, e *oidctest.Env, tenantID, action string) int {
	t.Helper()
	recs, _, err := e.DB.AuditEvents(context.Background(), sqlstore.AuditFilter{TenantID: tenantID, Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

var ccForm = url.Values{"grant_type": {"client_credentials"}}

func TestClientCredentials_ProviderTokenWorksOnTheAPIWithinItsPermissions(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := oidctest.New(t, d, nil)
			ta, _ := e.Seed(t, "acme", "ana@example.org", pw)
			tb, _ := e.Seed(t, "globex", "bo@example.org", pw)
			sa, secret := serviceAccount(t, e, sqlstore.ServiceAccount{TenantID: ta.ID,
				Permissions: []authz.Permission{{Resource: authz.ResUsers, Action: authz.Read}}, IPAllowlist: []string{"127.0.0.0/8"}})

			// Discovery names the grant, and a standard client uses it with client_secret_basic.
			var disc struct {
				GrantTypes []string `json:"grant_types_supported"`
				Token      string   `json:"token_endpoint"`
			}
			res, err := http.Get(e.URL + "/t/acme/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			_ = json.NewDecoder(res.Body).Decode(&disc)
			res.Body.Close()
			if !slices.Contains(disc.GrantTypes, "client_credentials") || disc.Token != e.URL+"/t/acme/oauth/token" {
				t.Fatalf("discovery: %+v", disc)
			}
			cc := clientcredentials.Config{ClientID: sa.ClientID, ClientSecret: secret, TokenURL: disc.Token,
				AuthStyle: oauth2.AuthStyleInHeader}
			tok, err := cc.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || tok.Extra("scope") != "users:READ" || tok.Expiry.IsZero() {
				t.Fatalf("token: %+v scope %v", tok, tok.Extra("scope"))
			}
			// Token responses are not cached (RFC 6749 §5.1).
			req, _ := http.NewRequest("POST", disc.Token, strings.NewReader(ccForm.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(sa.ClientID, secret)
			if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("raw token response: %v %+v", err, res)
			} else {
				res.Body.Close()
			}
			// The token is the one /v1/oauth/token gives: it works on the API within the
			// account's permissions, in its tenant only.
			if s := apiStatus(t, e, "GET", "/v1/tenants/"+ta.ID+"/users", "", tok.AccessToken); s != 200 {
				t.Fatalf("read within its permissions: %d", s)
			}
			if s := apiStatus(t, e, "POST", "/v1/tenants/"+ta.ID+"/users", `{"email":"x@example.org"}`, tok.AccessToken); s != 403 {
				t.Fatalf("write beyond its permissions: %d", s)
			}
			if s := apiStatus(t, e, "GET", "/v1/tenants/"+tb.ID+"/users", "", tok.AccessToken); s != 404 {
				t.Fatalf("another tenant: %d", s)
			}
			// The /v1 endpoint still serves the same exchange.
			code, out := tokenPost(t, e, "/v1/oauth/token", ccForm, sa.ClientID, secret)
			if code != 200 || out["scope"] != "users:READ" || out["token_type"] != "Bearer" {
				t.Fatalf("/v1/oauth/token: %d %v", code, out)
			}
			if s := apiStatus(t, e, "GET", "/v1/tenants/"+ta.ID+"/users", "", out["access_token"].(string)); s != 200 {
				t.Fatalf("/v1 token on the API: %d", s)
			}
			// Both issues are audited the same way.
			if n := auditCount(t, e, ta.ID, "service_account.token"); n != 3 {
				t.Fatalf("service_account.token events: %d, want 3", n)
			}
			// Disabling the account ends the provider's token too.
			if err := e.DB.Update(ctx, func(tx *sqlstore.Tx) error {
				return tx.SetServiceAccountStatus(ctx, ta.ID, sa.ID, tutela.StatusDisabled)
			}); err != nil {
				t.Fatal(err)
			}
			if s := apiStatus(t, e, "GET", "/v1/tenants/"+ta.ID+"/users", "", tok.AccessToken); s != 401 {
				t.Fatalf("disabled account's token: %d", s)
			}
		})
	}
}

func TestClientCredentials_ProviderRefusesWhatV1Refuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	ta, _ := e.Seed(t, "acme", "ana@example.org", pw)
	tb, _ := e.Seed(t, "globex", "bo@example.org", pw)
	exp := e.Clock.Now().Add(time.Hour)
	sa, secret := serviceAccount(t, e, sqlstore.ServiceAccount{TenantID: ta.ID, ExpiresAt: &exp})
	other, otherSecret := serviceAccount(t, e, sqlstore.ServiceAccount{TenantID: tb.ID})
	fenced, fencedSecret := serviceAccount(t, e, sqlstore.ServiceAccount{TenantID: ta.ID, Name: "fenced", IPAllowlist: []string{"192.0.2.0/24"}})
	const acme = "/t/acme/oauth/token"
	invalidClient := func(what string, code int, out map[string]any) {
		t.Helper()
		if code != 401 || out["error"] != "invalid_client" {
			t.Fatalf("%s: %d %v", what, code, out)
		}
	}
	if code, _ := tokenPost(t, e, acme, ccForm, sa.ClientID, secret); code != 200 {
		t.Fatalf("the account works: %d", code)
	}
	code, out := tokenPost(t, e, acme, ccForm, sa.ClientID, secret+"x")
	invalidClient("wrong secret", code, out)
	code, out = tokenPost(t, e, acme, ccForm, "sa_00000000000000000000000000000000", secret)
	invalidClient("unknown client", code, out)
	// Another tenant's account, with its right secret, is unknown here and works at home.
	code, out = tokenPost(t, e, acme, ccForm, other.ClientID, otherSecret)
	invalidClient("another tenant's account", code, out)
	if code, _ := tokenPost(t, e, "/t/globex/oauth/token", ccForm, other.ClientID, otherSecret); code != 200 {
		t.Fatalf("the other account at its own tenant: %d", code)
	}
	recs, _, err := e.DB.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tb.ID, Action: "auth.client"})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["reason"] != "wrong_tenant" || recs[0].Event.TargetID != other.ID {
		t.Fatalf("auth.client event of the wrong tenant: %v %+v", err, recs)
	}
	// The allowlist: this test calls from 127.0.0.1.
	code, out = tokenPost(t, e, acme, ccForm, fenced.ClientID, fencedSecret)
	invalidClient("outside the allowlist", code, out)
	// Secrets only in the Authorization header, and nothing in the query string.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {sa.ClientID}, "client_secret": {secret}}
	if code, out := tokenPost(t, e, acme, form, "", ""); code != 400 || out["error"] != "invalid_request" {
		t.Fatalf("client_secret_post: %d %v", code, out)
	}
	if code, out := tokenPost(t, e, acme+"?client_id="+sa.ClientID, ccForm, sa.ClientID, secret); code != 400 || out["error"] != "invalid_request" {
		t.Fatalf("query string: %d %v", code, out)
	}
	// One registered resource at most (RFC 8707).
	for _, res := range [][]string{{"https://unknown.example/api"}, {"tutela", "tutela"}} {
		f := url.Values{"grant_type": {"client_credentials"}, "resource": res}
		if code, out := tokenPost(t, e, acme, f, sa.ClientID, secret); code != 400 || out["error"] != "invalid_target" {
			t.Fatalf("resource %v: %d %v", res, code, out)
		}
	}
	// A registered application has no client credentials grant, and an account nothing else.
	app, appSecret := e.Client(t, ta.ID, sqlstore.OIDCClient{RedirectURIs: []string{redirect}})
	code, out = tokenPost(t, e, acme, ccForm, app.ID, appSecret)
	invalidClient("an application", code, out)
	rt := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}
	if code, out := tokenPost(t, e, acme, rt, sa.ClientID, secret); code < 400 || out["access_token"] != nil {
		t.Fatalf("an account with another grant: %d %v", code, out)
	}
	// Expired, then disabled: refused at both endpoints alike.
	e.Clock.Add(2 * time.Hour)
	code, out = tokenPost(t, e, acme, ccForm, sa.ClientID, secret)
	invalidClient("expired", code, out)
	code, out = tokenPost(t, e, "/v1/oauth/token", ccForm, sa.ClientID, secret)
	invalidClient("expired at /v1", code, out)
	live, liveSecret := serviceAccount(t, e, sqlstore.ServiceAccount{TenantID: ta.ID, Name: "live"})
	if err := e.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.SetServiceAccountStatus(ctx, ta.ID, live.ID, tutela.StatusDisabled)
	}); err != nil {
		t.Fatal(err)
	}
	code, out = tokenPost(t, e, acme, ccForm, live.ClientID, liveSecret)
	invalidClient("disabled", code, out)
	code, out = tokenPost(t, e, "/v1/oauth/token", ccForm, live.ClientID, liveSecret)
	invalidClient("disabled at /v1", code, out)
}

func TestClientCredentials_PrivateKeyJWTBoundToTheEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	ta, _ := e.Seed(t, "acme", "ana@example.org", pw)
	e.Seed(t, "globex", "bo@example.org", pw)
	sa, secret := serviceAccount(t, e, sqlstore.ServiceAccount{TenantID: ta.ID,
		Permissions: []authz.Permission{{Resource: authz.ResUsers, Action: authz.Read}}})
	// A tenant that requires private_key_jwt refuses the account's secret here as at /v1.
	if err := e.DB.Update(ctx, func(tx *sqlstore.Tx) error { return tx.SetTenantRequiresPrivateKeyJWT(ctx, ta.ID, true) }); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"/t/acme/oauth/token", "/v1/oauth/token"} {
		if code, out := tokenPost(t, e, ep, ccForm, sa.ClientID, secret); code != 401 || out["error"] != "invalid_client" {
			t.Fatalf("secret under a private_key_jwt-only policy at %s: %d %v", ep, code, out)
		}
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: "k1"})
	if _, err := e.Identity.MFA.RegisterClientKey(ctx, ta.ID, sa.ID, jwk); err != nil {
		t.Fatal(err)
	}
	assertion := func(key ed25519.PrivateKey, aud string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		now := e.Clock.Now()
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: sa.ClientID, Subject: sa.ClientID, Audience: jwt.Audience{aud},
			ID: tutela.NewID(), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(2 * time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	post := func(endpoint, as string) (int, map[string]any) {
		return tokenPost(t, e, endpoint, url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {as}}, "", "")
	}
	const acme = "/t/acme/oauth/token"
	as := assertion(priv, e.URL+acme)
	code, out := post(acme, as)
	if code != 200 || out["scope"] != "users:READ" {
		t.Fatalf("private_key_jwt at the provider: %d %v", code, out)
	}
	if s := apiStatus(t, e, "GET", "/v1/tenants/"+ta.ID+"/users", "", out["access_token"].(string)); s != 200 {
		t.Fatalf("its token on the API: %d", s)
	}
	if code, out := post(acme, as); code != 401 || out["error"] != "invalid_client" {
		t.Fatalf("replayed assertion: %d %v", code, out)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if code, _ := post(acme, assertion(other, e.URL+acme)); code != 401 {
		t.Fatalf("assertion by another key: %d", code)
	}
	// An assertion names the endpoint it is for: one for /v1 or another tenant is refused.
	if code, _ := post(acme, assertion(priv, e.URL+"/v1/oauth/token")); code != 401 {
		t.Fatalf("assertion for /v1 at the provider: %d", code)
	}
	if code, _ := post("/t/globex/oauth/token", assertion(priv, e.URL+"/t/globex/oauth/token")); code != 401 {
		t.Fatalf("acme's account at globex: %d", code)
	}
	if code, out := post("/v1/oauth/token", assertion(priv, e.URL+"/v1/oauth/token")); code != 200 || out["scope"] != "users:READ" {
		t.Fatalf("private_key_jwt at /v1: %d %v", code, out)
	}
}
