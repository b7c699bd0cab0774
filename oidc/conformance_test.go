package oidc_test

// Tests named in docs/oidc.md's conformance table for OpenID Foundation Basic and Config OP
// test cases the attack tests do not already cover.

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"tutela"
	"tutela/identity/token"
	"tutela/oidc"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// OP-Req-id_token_hint: a request carrying an ID token as hint may only be completed by that
// token's user (the hosted pages see whom it is for); a forged hint is refused.
func TestAuthorize_IDTokenHintBindsTheUser(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, d)
			_, bo := f.e.Seed(t, "acme", "bo@example.org", pw)
			boSess := f.e.SignIn(t, "acme", "bo@example.org", pw)
			code, v := f.rp.code(t, f)
			_, tok := f.rp.exchange(t, code, v)
			hint := str(tok, "id_token")

			id := f.e.Authorize(t, f.rp.conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(v),
				oauth2.SetAuthURLParam("id_token_hint", hint), oauth2.SetAuthURLParam("prompt", "none")))
			p, err := f.e.Provider.Pending(ctx, f.tn.ID, id)
			if err != nil || p.UserID != f.u.ID || !slices.Equal(p.Prompt, []string{"none"}) {
				t.Fatalf("pending %+v %v", p, err)
			}
			_, err = f.e.Provider.Complete(ctx, f.tn.ID, id, oidc.Authenticated{UserID: bo.ID, SessionID: boSess.ID})
			if tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
				t.Fatalf("another user completed a hinted request: %v", err)
			}
			q := f.complete(t, id, oidc.Authenticated{UserID: f.u.ID, SessionID: f.sess.ID})
			if len(q.Get("code")) != 43 {
				t.Fatalf("hinted user: %v", q)
			}

			forged := hint[:len(hint)-4] + "AAAA"
			if forged == hint {
				forged = hint[:len(hint)-4] + "BBBB"
			}
			status, loc := get(t, f.rp.conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("id_token_hint", forged)))
			if _, r := authorizeResponse(t, loc); status != http.StatusFound || r.Get("error") != "login_required" || r.Has("code") || r.Get("iss") != f.iss {
				t.Fatalf("forged hint: %d %q", status, loc)
			}
		})
	}
}

// OP-prompt-none-NotLoggedIn and refusals in general: the hosted pages deny the request and
// the client gets the error, its state and iss, and no code; the request cannot then be
// completed after all.
func TestAuthorize_DenialReachesTheClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, sqlstore.SQLite)
	v := oauth2.GenerateVerifier()
	for _, reason := range []string{oidc.DenyLoginRequired, oidc.DenyConsentRequired, oidc.DenyAccessDenied, oidc.DenyInteractionRequired} {
		id := f.e.Authorize(t, f.rp.conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none")))
		cb, err := f.e.Provider.Deny(ctx, f.tn.ID, id, reason)
		if err != nil {
			t.Fatal(err)
		}
		_, q := authorizeResponse(t, cb)
		if !strings.HasPrefix(cb, redirect+"?") || q.Get("error") != reason ||
			q.Get("state") != "st4te" || q.Get("iss") != f.iss || q.Has("code") {
			t.Fatalf("%s: %q", reason, cb)
		}
		if _, err := f.e.Provider.Complete(ctx, f.tn.ID, id, oidc.Authenticated{UserID: f.u.ID, SessionID: f.sess.ID}); err == nil {
			t.Fatalf("%s: a denied request was completed", reason)
		}
	}
	if _, err := f.e.Provider.Deny(ctx, f.tn.ID, "x", "because"); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("unknown denial reason: %v", err)
	}
}

// OP-Req-login_hint, OP-Req-ui_locales, OP-prompt-login, OP-Req-max_age=1, OP-Req-NotUnderstood:
// what the request asks of the sign-in reaches the hosted pages; a parameter the provider does
// not know is ignored.
func TestAuthorize_RequestParametersReachThePages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, sqlstore.SQLite)
	v := oauth2.GenerateVerifier()
	f.e.Clock.Add(2 * time.Minute) // the fixture's sign-in is now two minutes old
	id := f.e.Authorize(t, f.rp.conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(v),
		oauth2.SetAuthURLParam("login_hint", "ana@example.org"), oauth2.SetAuthURLParam("ui_locales", "fr ar"),
		oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("extra_not_understood", "x"),
		oauth2.SetAuthURLParam("display", "popup"), oauth2.SetAuthURLParam("claims_locales", "se"),
		oauth2.SetAuthURLParam("claims", `{"id_token":{"acr":{"essential":true}}}`)))
	p, err := f.e.Provider.Pending(ctx, f.tn.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.LoginHint != "ana@example.org" || !slices.Equal(p.UILocales, []string{"fr", "ar"}) || !slices.Contains(p.Prompt, "login") ||
		p.ClientID != f.rp.conf.ClientID || p.RedirectHost != "127.0.0.1:9" || p.MaxAge == nil || *p.MaxAge != 0 {
		t.Fatalf("pending %+v", p)
	}
	// prompt=login: the provider itself refuses a sign-in that is not fresh.
	_, err = f.e.Provider.Complete(ctx, f.tn.ID, id, oidc.Authenticated{UserID: f.u.ID, SessionID: f.sess.ID})
	if tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
		t.Fatalf("prompt=login completed with an old sign-in: %v", err)
	}
	id = f.e.Authorize(t, f.rp.conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("max_age", "1")))
	if p, err = f.e.Provider.Pending(ctx, f.tn.ID, id); err != nil || p.MaxAge == nil || p.MaxAge.Seconds() != 1 {
		t.Fatalf("max_age=1: %+v %v", p, err)
	}
	// OIDCCEnsurePostRequestSucceeds: the authorization request may be a form POST.
	res, err := oidctest.NoRedirects.PostForm(f.rp.conf.Endpoint.AuthURL, f.rp.params(v))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || !strings.Contains(res.Header.Get("Location"), "/login?id=") {
		t.Fatalf("POST authorize: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	// OP-request-Unsigned, OP-request_uri-Unsigned: request objects are not supported and
	// say so to the client, rather than being ignored.
	q := f.rp.params(v)
	q.Set("request", "eyJhbGciOiJub25lIn0.eyJzdGF0ZSI6IngifQ.")
	status, loc := get(t, f.rp.conf.Endpoint.AuthURL+"?"+q.Encode())
	if _, r := authorizeResponse(t, loc); status != http.StatusFound || r.Get("error") != "request_not_supported" || r.Has("code") || r.Get("iss") != f.iss {
		t.Fatalf("request object: %d %q", status, loc)
	}
	// A scope the provider does not know is dropped (RFC 6749 §3.3), never granted.
	q = f.rp.params(v)
	q.Set("scope", "openid admin")
	id = f.e.Authorize(t, f.rp.conf.Endpoint.AuthURL+"?"+q.Encode())
	if p, err = f.e.Provider.Pending(ctx, f.tn.ID, id); err != nil || !slices.Equal(p.Scopes, []string{"openid"}) {
		t.Fatalf("unknown scope: %+v %v", p, err)
	}
	// OIDCEnsureOtherScopeOrderSucceeds: scopes are a set.
	q.Set("scope", "email openid")
	id = f.e.Authorize(t, f.rp.conf.Endpoint.AuthURL+"?"+q.Encode())
	if p, err = f.e.Provider.Pending(ctx, f.tn.ID, id); err != nil || !slices.Contains(p.Scopes, "openid") || !slices.Contains(p.Scopes, "email") {
		t.Fatalf("scope order: %+v %v", p, err)
	}
	// A standard scope the client is not registered for (address, phone: Tutela holds
	// neither) is refused to the client: invalid_scope.
	q.Set("scope", "openid address")
	status, loc = get(t, f.rp.conf.Endpoint.AuthURL+"?"+q.Encode())
	if _, r := authorizeResponse(t, loc); status != http.StatusFound || r.Get("error") != "invalid_scope" || r.Has("code") || r.Get("iss") != f.iss {
		t.Fatalf("address scope: %d %q", status, loc)
	}
}

// OP-UserInfo-Endpoint, OP-UserInfo-Header, OP-UserInfo-Body, OP-scope-profile,
// OP-scope-email: userinfo answers a bearer token in the header or a POST body with the
// claims of the token's scopes, and nothing for a token it did not issue.
func TestUserInfo_ClaimsOfTheScopes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, sqlstore.SQLite)
	userinfo := f.iss + "/userinfo"
	ask := func(scope string) string {
		t.Helper()
		v := oauth2.GenerateVerifier()
		q := f.rp.signIn(t, f.tn.ID, f.sess, []string{"pwd"}, oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("scope", scope))
		_, tok := f.rp.exchange(t, q.Get("code"), v)
		return str(tok, "access_token")
	}
	call := func(req *http.Request) (int, map[string]any) {
		t.Helper()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = jsonDecode(res, &m)
		return res.StatusCode, m
	}
	all := ask("openid profile email")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+all)
	if status, m := call(req); status != http.StatusOK || m["sub"] != f.u.ID || m["email"] != "ana@example.org" || m["name"] != "Person acme" {
		t.Fatalf("header: %d %v", status, m)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+all)
	if status, m := call(req); status != http.StatusOK || m["sub"] != f.u.ID {
		t.Fatalf("POST with header: %d %v", status, m)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, userinfo, strings.NewReader(url.Values{"access_token": {all}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, m := call(req); status != http.StatusOK || m["sub"] != f.u.ID {
		t.Fatalf("body: %d %v", status, m)
	}
	only := ask("openid")
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+only)
	if status, m := call(req); status != http.StatusOK || m["sub"] != f.u.ID || m["email"] != nil || m["name"] != nil {
		t.Fatalf("openid only: %d %v", status, m)
	}
	// Tutela's own API token of the same user is not a userinfo token (RFC 6750 §3.1: 401
	// with a Bearer challenge).
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+f.sess.Access)
	if status, m := call(req); status != http.StatusUnauthorized || m["sub"] != nil {
		t.Fatalf("API token at userinfo: %d %v", status, m)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
	}
}

// OP-Rotation-OP-Sig: after the key ring rotates, ID tokens are signed with the new key, which
// the JWKS published beforehand, and an unchanged relying party verifies them.
func TestIDToken_VerifiesAcrossKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, sqlstore.SQLite)
	code, v := f.rp.code(t, f)
	_, tok := f.rp.exchange(t, code, v)
	before := kidOf(t, str(tok, "id_token"))
	if _, _, err := f.rp.verifyID(t, str(tok, "id_token")); err != nil {
		t.Fatal(err)
	}
	f.e.Clock.Add(token.DefaultRotateEvery - token.DefaultPrePublish)
	if err := f.e.Ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	f.e.Clock.Add(token.DefaultPrePublish + 1)
	f.sess = f.e.SignIn(t, "acme", "ana@example.org", pw)
	code, v = f.rp.code(t, f)
	_, tok = f.rp.exchange(t, code, v)
	after := kidOf(t, str(tok, "id_token"))
	if after == before {
		t.Fatalf("still signed with %s after rotation", before)
	}
	// The relying party's verifier, whose key set was fetched before, refetches on the
	// unknown kid and verifies.
	if _, _, err := f.rp.verifyID(t, str(tok, "id_token")); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}
