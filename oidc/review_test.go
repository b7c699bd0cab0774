package oidc_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"tutela/oidc"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
)

// A client disabled while its user is at the hosted pages: the request goes nowhere, not even
// back to the client's redirect URI with a code.
func TestComplete_DisabledClientMidFlowIsNotCompleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	tn, _ := e.Seed(t, "acme", "ana@example.org", pw)
	r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{})
	id := e.Authorize(t, r.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	sess := e.SignIn(t, "acme", "ana@example.org", pw)
	if _, err := e.Provider.Pending(ctx, tn.ID, id); err != nil {
		t.Fatalf("the request before the client was disabled: %v", err)
	}
	if err := e.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.OIDCClients(tn.ID).SetStatus(ctx, r.client.ID, sqlstore.ClientDisabled)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Provider.Pending(ctx, tn.ID, id); err == nil {
		t.Error("Pending shows the request of a disabled client")
	}
	if to, err := e.Provider.Complete(ctx, tn.ID, id, oidc.Authenticated{UserID: sess.UserID, SessionID: sess.ID}); err == nil {
		t.Errorf("Complete sent the browser to a disabled client: %s", to)
	}
}

// post_logout_redirect_uri is matched like a redirect URI: a native client's registered
// loopback URI on any port, nothing else (no userinfo, no other host or scheme).
func TestEndSession_NativeLoopbackLogoutURIExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	tn, _ := e.Seed(t, "acme", "ana@example.org", pw)
	r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{AppType: sqlstore.AppNative,
		RedirectURIs: []string{"http://127.0.0.1/callback"}, PostLogoutRedirectURIs: []string{"http://127.0.0.1/bye"}})
	r.conf.RedirectURL = "http://127.0.0.1:50000/callback"
	sess := e.SignIn(t, "acme", "ana@example.org", pw)
	v := oauth2.GenerateVerifier()
	q := r.signIn(t, tn.ID, sess, nil, oauth2.S256ChallengeOption(v))
	tok, err := r.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	hint, _ := tok.Extra("id_token").(string)
	end := func(uri string) (int, string) {
		res, err := oidctest.NoRedirects.Get(e.URL + "/t/acme/end_session?" + url.Values{"id_token_hint": {hint},
			"post_logout_redirect_uri": {uri}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header.Get("Location")
	}
	for _, bad := range []string{"http://evil@127.0.0.1:5000/bye", "http://localhost:5000/bye", "https://127.0.0.1:5000/bye",
		"http://127.0.0.2:5000/bye", "http://127.0.0.1:5000/bye#x", "http://127.0.0.1:5000/bye/more"} {
		if status, loc := end(bad); status == http.StatusFound && (loc == bad || strings.HasPrefix(loc, bad+"?")) {
			t.Errorf("logout redirected to %s", loc)
		}
	}
	if status, loc := end("http://127.0.0.1:5000/bye"); status != http.StatusFound || !strings.HasPrefix(loc, "http://127.0.0.1:5000/bye") {
		t.Fatalf("registered loopback logout URI on another port: %d %q", status, loc)
	}
}

// CORS: browser applications may call the token, userinfo and discovery endpoints from any
// origin, but never with the browser's credentials (its Tutela session cookie): a page of
// another site cannot read an answer made with the user's session.
func TestCORS_NoCredentialsFromOtherOrigins(t *testing.T) {
	t.Parallel()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	e.Seed(t, "acme", "ana@example.org", pw)
	for _, path := range []string{"/.well-known/openid-configuration", "/oauth/token", "/userinfo", "/authorize", "/end_session"} {
		req, _ := http.NewRequest(http.MethodOptions, e.URL+"/t/acme"+path, nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: preflight allows credentials from another origin", path)
		}
		get, _ := http.NewRequest(http.MethodGet, e.URL+"/t/acme"+path, nil)
		get.Header.Set("Origin", "https://evil.example")
		res, err = oidctest.NoRedirects.Do(get)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("Access-Control-Allow-Credentials") == "true" {
			t.Errorf("%s: answer readable with credentials by another origin", path)
		}
	}
}

// A user who must first change their password (or enrol a second factor) may use only Tutela:
// the code exchange gives an application nothing (ASVS 2.3.1).
func TestCodeExchange_RestrictedUserGetsNoToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	tn, u := e.Seed(t, "acme", "ana@example.org", pw)
	r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{})
	sess := e.SignIn(t, "acme", "ana@example.org", pw)
	v := oauth2.GenerateVerifier()
	q := r.signIn(t, tn.ID, sess, nil, oauth2.S256ChallengeOption(v))
	if err := e.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Users(tn.ID).SetMustChangePassword(ctx, u.ID, true)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v)); err == nil {
		t.Fatal("a user who must change their password got tokens for an application")
	}
}
