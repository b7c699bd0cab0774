package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"tutela"
	"tutela/oidc"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// dpopKey makes DPoP proofs as a public client would.
type dpopKey struct{ signer jose.Signer }

func newDPoPKey(t *testing.T) *dpopKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKey{signer: s}
}

func (k *dpopKey) proof(t *testing.T, method, u, accessToken string) string {
	t.Helper()
	c := map[string]any{"jti": tutela.RandomToken(12), "htm": method, "htu": u, "iat": time.Now().Unix()}
	if accessToken != "" {
		h := sha256.Sum256([]byte(accessToken))
		c["ath"] = base64.RawURLEncoding.EncodeToString(h[:])
	}
	b, _ := json.Marshal(c)
	sig, err := k.signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sig.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenRequest posts form to the token endpoint with an optional DPoP proof (a public client:
// no secret) and returns the status and the JSON answer.
func tokenRequest(t *testing.T, endpoint string, form url.Values, proof string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(b, &out)
	return res.StatusCode, out
}

// DPoP (RFC 9449): a public client's tokens bound to its key are refused without a proof by
// that key, at userinfo and at refresh; a client registered to need DPoP gets nothing without.
func TestDPoP_PublicClientTokensBoundToItsKey(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := oidctest.New(t, d, nil)
			tn, _ := e.Seed(t, "acme", "ana@example.org", pw)
			r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{AppType: sqlstore.AppNative, RequireDPoP: true,
				RedirectURIs: []string{"http://127.0.0.1/callback"}})
			r.conf.RedirectURL = "http://127.0.0.1:51234/callback" // RFC 8252 §7.3: any port
			sess := e.SignIn(t, "acme", "ana@example.org", pw)
			tokenURL := e.URL + "/t/acme/oauth/token"
			key := newDPoPKey(t)
			exchange := func(proof string) (int, map[string]any) {
				verifier := oauth2.GenerateVerifier()
				q := r.signIn(t, tn.ID, sess, []string{"pwd"}, oauth2.S256ChallengeOption(verifier))
				return tokenRequest(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
					"redirect_uri": {r.conf.RedirectURL}, "client_id": {r.conf.ClientID}, "code_verifier": {verifier}}, proof)
			}
			if st, out := exchange(""); st != 400 || out["error"] != "invalid_dpop_proof" {
				t.Fatalf("exchange without a proof: %d %v", st, out)
			}
			st, tok := exchange(key.proof(t, "POST", tokenURL, ""))
			if st != 200 || tok["token_type"] != "DPoP" {
				t.Fatalf("exchange with a proof: %d %v", st, tok)
			}
			at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
			userinfo := func(scheme, proof string) int {
				req, _ := http.NewRequest("GET", e.URL+"/t/acme/userinfo", nil)
				req.Header.Set("Authorization", scheme+" "+at)
				if proof != "" {
					req.Header.Set("DPoP", proof)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return res.StatusCode
			}
			uiURL := e.URL + "/t/acme/userinfo"
			if st := userinfo("Bearer", ""); st == 200 {
				t.Fatal("a DPoP-bound token was accepted as a bearer token")
			}
			if st := userinfo("DPoP", ""); st == 200 {
				t.Fatal("a DPoP-bound token was accepted without a proof")
			}
			if st := userinfo("DPoP", newDPoPKey(t).proof(t, "GET", uiURL, at)); st == 200 {
				t.Fatal("a proof by another key was accepted")
			}
			proof := key.proof(t, "GET", uiURL, at)
			if st := userinfo("DPoP", proof); st != 200 {
				t.Fatalf("userinfo with its proof: %d", st)
			}
			if st := userinfo("DPoP", proof); st == 200 {
				t.Fatal("a replayed proof was accepted")
			}
			refresh := func(proof string) (int, map[string]any) {
				return tokenRequest(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
					"client_id": {r.conf.ClientID}}, proof)
			}
			if st, out := refresh(""); st == 200 {
				t.Fatalf("refresh without a proof: %v", out)
			}
			if st, out := refresh(newDPoPKey(t).proof(t, "POST", tokenURL, "")); st == 200 {
				t.Fatalf("refresh with another key's proof: %v", out)
			}
			if st, out := refresh(key.proof(t, "POST", tokenURL, "")); st != 200 || out["token_type"] != "DPoP" {
				t.Fatalf("refresh with its key: %d %v", st, out)
			}
		})
	}
}

// PAR (RFC 9126): a pushed request signs in through its request_uri, once; a client registered
// to push cannot send its request through the browser.
func TestPAR_PushedRequestOnceAndRequiredWhenRegistered(t *testing.T) {
	t.Parallel()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	ctx := context.Background()
	tn, u := e.Seed(t, "acme", "ana@example.org", pw)
	r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{RequirePAR: true})
	res, err := oidctest.NoRedirects.Get(r.conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); !strings.Contains(loc, "error=invalid_request") || strings.Contains(loc, "/login") {
		t.Fatalf("unpushed request of a PAR client: %d %s", res.StatusCode, loc)
	}
	verifier := oauth2.GenerateVerifier()
	push := url.Values{"response_type": {"code"}, "client_id": {r.conf.ClientID}, "redirect_uri": {redirect},
		"scope": {"openid email"}, "state": {"st4te"}, "code_challenge_method": {"S256"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}}
	post := func(form url.Values, secret string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.URL+"/t/acme/par", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if secret != "" {
			req.SetBasicAuth(url.QueryEscape(r.conf.ClientID), url.QueryEscape(secret))
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
	if st, _ := post(push, "wrong"); st != 401 {
		t.Fatalf("push with a wrong secret: %d", st)
	}
	st, out := post(push, r.conf.ClientSecret)
	uri, _ := out["request_uri"].(string)
	if st != 201 || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") {
		t.Fatalf("push: %d %v", st, out)
	}
	authURL := e.URL + "/t/acme/authorize?" + url.Values{"client_id": {r.conf.ClientID}, "request_uri": {uri}}.Encode()
	id := e.Authorize(t, authURL)
	sess := e.SignIn(t, "acme", "ana@example.org", pw)
	cb, err := e.Provider.Complete(ctx, tn.ID, id, oidc.Authenticated{UserID: u.ID, SessionID: sess.ID})
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := url.Parse(cb)
	if _, err := r.conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("exchange of a pushed request's code: %v", err)
	}
	// The request_uri worked once.
	res, err = oidctest.NoRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusFound {
		t.Fatalf("a used request_uri was accepted again: %s", res.Header.Get("Location"))
	}
}

// logoutRP is a relying party's back-channel logout endpoint (TLS, as the spec requires).
type logoutRP struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens []string
}

func newLogoutRP(t *testing.T) *logoutRP {
	rp := &logoutRP{}
	rp.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			rp.mu.Lock()
			rp.tokens = append(rp.tokens, r.PostForm.Get("logout_token"))
			rp.mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *logoutRP) received() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return slices.Clone(rp.tokens)
}

// RP-initiated logout ends the sign-in session; every application signed in from it is told
// through back-channel logout, with the sid of its ID token, signed by the provider.
func TestLogout_RPInitiatedEndsTheSignInAndNotifiesEveryApplication(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	tn, _ := e.Seed(t, "acme", "ana@example.org", pw)
	rpA, rpB := newLogoutRP(t), newLogoutRP(t)
	e.LogoutHTTP.Transport = rpA.srv.Client().Transport // both test servers share the test CA
	a := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{BackchannelLogoutURI: rpA.srv.URL + "/bcl",
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:9/bye"}})
	b := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{BackchannelLogoutURI: rpB.srv.URL + "/bcl"})
	sess := e.SignIn(t, "acme", "ana@example.org", pw)
	login := func(r *rp) (*oauth2.Token, string) {
		verifier := oauth2.GenerateVerifier()
		q := r.signIn(t, tn.ID, sess, []string{"pwd"}, oauth2.S256ChallengeOption(verifier))
		tok, err := r.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		return tok, raw
	}
	tokA, idA := login(a)
	tokB, _ := login(b)
	// An unregistered post_logout_redirect_uri is refused and ends nothing.
	end := func(redirect string) *http.Response {
		res, err := oidctest.NoRedirects.Get(e.URL + "/t/acme/end_session?" + url.Values{"id_token_hint": {idA},
			"client_id": {a.conf.ClientID}, "post_logout_redirect_uri": {redirect}, "state": {"s1"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := end("http://127.0.0.1:9/elsewhere"); strings.HasPrefix(res.Header.Get("Location"), "http://127.0.0.1:9/elsewhere") {
		t.Fatal("logout redirected to an unregistered URI")
	}
	if _, err := b.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tokB.RefreshToken}).Token(); err != nil {
		t.Fatalf("a refused logout ended the session: %v", err)
	}
	if res := end("http://127.0.0.1:9/bye"); !strings.HasPrefix(res.Header.Get("Location"), "http://127.0.0.1:9/bye") {
		t.Fatalf("logout: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := a.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tokA.RefreshToken}).Token(); err == nil {
		t.Fatal("application A's refresh token survived the logout")
	}
	if _, err := e.Jobs.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		rp *rp
		lr *logoutRP
	}{"A": {a, rpA}, "B": {b, rpB}} {
		got := c.lr.received()
		if len(got) != 1 {
			t.Fatalf("application %s got %d logout tokens", name, len(got))
		}
		lt, err := c.rp.provider.Verifier(&gooidc.Config{ClientID: c.rp.conf.ClientID}).Verify(ctx, got[0])
		if err != nil {
			t.Fatalf("application %s: logout token does not verify: %v", name, err)
		}
		var claims struct {
			SID    string         `json:"sid"`
			Events map[string]any `json:"events"`
		}
		if err := lt.Claims(&claims); err != nil || claims.SID != sess.ID || claims.Events[oidc.BackchannelLogoutEvent] == nil {
			t.Fatalf("application %s: logout token claims %+v", name, claims)
		}
	}
}
