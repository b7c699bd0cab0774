package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"tutela"
	"tutela/identity/identitytest"
	"tutela/sqlstore"
)

// browser is a cookie-keeping HTTP client that follows Tutela's redirects and stops at the
// relying party's redirect URI, as a browser would arrive there.
type browser struct {
	t      *testing.T
	c      *http.Client
	origin string
}

func newBrowser(t *testing.T, origin, stopAt string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, origin: origin, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(r.URL.String(), stopAt) {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
}

// do sends the request and returns the final URL (the Location of a stop) and the page.
func (b *browser) do(req *http.Request) (string, string) {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if loc := res.Header.Get("Location"); res.StatusCode/100 == 3 && loc != "" {
		return loc, string(body)
	}
	if res.StatusCode != http.StatusOK {
		b.t.Fatalf("%s %s: %d\n%s", req.Method, req.URL, res.StatusCode, body)
	}
	return res.Request.URL.String(), string(body)
}

func (b *browser) get(u string) (string, string) {
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req)
}

// submit posts the page's form fields (its CSRF token and hidden inputs, plus fields) to action.
func (b *browser) submit(page, action string, fields url.Values) (string, string) {
	b.t.Helper()
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	req, _ := http.NewRequest("POST", action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.origin)
	return b.do(req)
}

func find(t *testing.T, page, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("%s not on the page:\n%s", pattern, page)
	}
	return html.UnescapeString(m[1])
}

// A real relying party (go-oidc, x/oauth2) signs a user in against a running `tutela serve`
// through the hosted pages: password, first-time TOTP enrolment (MFA is mandatory), consent,
// code with PKCE; then userinfo, refresh rotation, reuse detection and RP-initiated logout.
func TestServe_RelyingPartySignsInThroughTheHostedPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	m, _ := personStore(t, environ)
	const email, password = "ana@example.org", "amber falcon meadow 93 tidewater"
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		tn, err := tx.TenantBySlug(ctx, "acme")
		if err != nil {
			return err
		}
		u := &tutela.User{Email: email, DisplayName: "Ana"}
		if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
			return err
		}
		h, err := identitytest.FastHasher(t).Hash(ctx, password)
		if err != nil {
			return err
		}
		return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, h)
	}); err != nil {
		t.Fatal(err)
	}
	const cb = "http://127.0.0.1:9/callback"
	code, out, stderr := runCmd(t, environ, "client", "create", "--tenant", "acme", "--name", "Case portal", "--type", "web",
		"--redirect-uri", cb, "--post-logout-uri", "http://127.0.0.1:9/bye", "--scope", "openid", "--scope", "email",
		"--scope", "offline_access")
	if code != 0 {
		t.Fatal(stderr)
	}
	clientID := find(t, out, `client_id:\s+(\S+)`)
	secret := find(t, out, `client_secret:\s+(\S+)`)

	addr, logs, _ := startServe(t, environ)
	base := "http://" + addr
	provider, err := gooidc.NewProvider(ctx, base+"/t/acme")
	if err != nil {
		t.Fatalf("discovery: %v\n%s", err, logs)
	}
	conf := oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: cb,
		Scopes: []string{"openid", "email", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t, base, "http://127.0.0.1:9/")

	where, page := b.get(conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n0nce")))
	if !strings.Contains(where, "/t/acme/login") {
		t.Fatalf("authorize went to %s", where)
	}
	where, page = b.submit(page, where, url.Values{"email": {email}, "password": {password}})
	if !strings.Contains(where, "/t/acme/enroll") {
		t.Fatalf("a user without a second factor went to %s", where)
	}
	totpSecret := find(t, page, `id="totp-secret"[^>]*>([^<]+)<`)
	otp, err := totp.GenerateCode(totpSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, page = b.submit(page, where, url.Values{"code": {otp}})
	if !strings.Contains(page, `id="recovery-codes"`) {
		t.Fatalf("enrolment did not show recovery codes:\n%s", page)
	}
	where, page = b.get(base + find(t, page, `id="continue"[^>]*href="([^"]+)"`))
	if !strings.Contains(where, "/t/acme/consent") {
		t.Fatalf("after enrolment the browser went to %s", where)
	}
	where, _ = b.submit(page, where, url.Values{"decision": {"allow"}})
	back, err := url.Parse(where)
	if err != nil || !strings.HasPrefix(where, cb) || back.Query().Get("state") != "st4te" || back.Query().Get("iss") != base+"/t/acme" {
		t.Fatalf("the browser came back to %s", where)
	}

	tok, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&gooidc.Config{ClientID: clientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Nonce string   `json:"nonce"`
		ACR   string   `json:"acr"`
		AMR   []string `json:"amr"`
	}
	// The factor was enrolled in a session the password alone opened: it says so (an attacker
	// holding only the password could have enrolled it); an application wanting a second
	// factor asks acr_values and the user steps up.
	if err := idt.Claims(&claims); err != nil || claims.Nonce != "n0nce" || claims.ACR != "urn:tutela:acr:pwd" {
		t.Fatalf("ID token claims %+v (%v)", claims, err)
	}
	if ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil || ui.Email != email {
		t.Fatalf("userinfo %+v %v", ui, err)
	}
	tok2, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("a reused refresh token was accepted")
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
		t.Fatal("the family survived the reuse")
	}

	// A second sign-in: the browser's session signs in without a password (SSO) and the
	// remembered consent is not asked again; then RP-initiated logout ends it.
	verifier = oauth2.GenerateVerifier()
	where, _ = b.get(conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)))
	back, _ = url.Parse(where)
	if !strings.HasPrefix(where, cb) || back.Query().Get("code") == "" {
		t.Fatalf("single sign-on went to %s", where)
	}
	tok3, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	where, _ = b.get(base + "/t/acme/end_session?" + url.Values{"id_token_hint": {tok3.Extra("id_token").(string)},
		"post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "client_id": {clientID}}.Encode())
	if !strings.HasPrefix(where, "http://127.0.0.1:9/bye") {
		t.Fatalf("logout went to %s", where)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok3.RefreshToken}).Token(); err == nil {
		t.Fatal("the application's session survived the logout")
	}
	verifier = oauth2.GenerateVerifier()
	where, page = b.get(conf.AuthCodeURL("s3", oauth2.S256ChallengeOption(verifier)))
	if !strings.Contains(where, "/t/acme/login") {
		t.Fatalf("after logout the browser was signed in again: %s", where)
	}
	// Signing in again: password, then the enrolled TOTP (the next time step: the enrolment
	// used this one, and a code works once); consent is remembered.
	where, page = b.submit(page, where, url.Values{"email": {email}, "password": {password}})
	if !strings.Contains(where, "/t/acme/mfa") {
		t.Fatalf("a user with a second factor went to %s", where)
	}
	otp, err = totp.GenerateCode(totpSecret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	where, _ = b.submit(page, where, url.Values{"code": {otp}})
	back, _ = url.Parse(where)
	if !strings.HasPrefix(where, cb) || back.Query().Get("code") == "" {
		t.Fatalf("after the second factor the browser went to %s", where)
	}
	tok4, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err = provider.Verifier(&gooidc.Config{ClientID: clientID}).Verify(ctx, tok4.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := idt.Claims(&claims); err != nil || claims.ACR != "urn:tutela:acr:mfa" || !slices.Contains(claims.AMR, "otp") {
		t.Fatalf("ID token after password and TOTP: %+v (%v)", claims, err)
	}
}
