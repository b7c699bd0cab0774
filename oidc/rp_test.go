package oidc_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"tutela/oidc"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

const pw = "amber falcon meadow 93 tidewater"

const redirect = "http://127.0.0.1:9/callback"

// rp is a relying party of one tenant: go-oidc and x/oauth2, as an application would use them.
type rp struct {
	e        *oidctest.Env
	provider *gooidc.Provider
	conf     oauth2.Config
	client   *sqlstore.OIDCClient
}

func newRP(t *testing.T, e *oidctest.Env, slug, tenantID string, c sqlstore.OIDCClient) *rp {
	t.Helper()
	if c.RedirectURIs == nil {
		c.RedirectURIs = []string{redirect}
	}
	cl, secret := e.Client(t, tenantID, c)
	p, err := gooidc.NewProvider(context.Background(), e.URL+"/t/"+slug)
	if err != nil {
		t.Fatal(err)
	}
	return &rp{e: e, provider: p, client: cl, conf: oauth2.Config{ClientID: cl.ID, ClientSecret: secret,
		Endpoint: p.Endpoint(), RedirectURL: cl.RedirectURIs[0], Scopes: []string{"openid", "profile", "email", "offline_access"}}}
}

// signIn runs the code flow for the user of sess (as if the hosted pages had signed them in)
// and returns the authorization response's query. The session's own amr counts: amr lists
// the second factors to record on it first (a step-up).
func (r *rp) signIn(t *testing.T, tenantID string, sess *oidctest.Session, amr []string, opts ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	id := r.e.Authorize(t, r.conf.AuthCodeURL("st4te", opts...))
	for _, m := range amr {
		if m != "pwd" {
			r.e.StepUp(t, sess.ID, m)
		}
	}
	cb, err := r.e.Provider.Complete(context.Background(), tenantID, id, oidc.Authenticated{UserID: sess.UserID,
		SessionID: sess.ID})
	if err != nil {
		t.Fatal(err)
	}
	// The hosted pages send the browser straight to the client with the code.
	loc, err := url.Parse(cb)
	if err != nil || !strings.HasPrefix(cb, r.conf.RedirectURL) {
		t.Fatalf("authorization response %q", cb)
	}
	return loc.Query()
}

func TestCodeFlow_RealRelyingPartySignsInRefreshesAndDetectsReuse(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := oidctest.New(t, d, nil)
			tn, u := e.Seed(t, "acme", "ana@example.org", pw)
			r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{})
			sess := e.SignIn(t, "acme", "ana@example.org", pw)
			verifier := oauth2.GenerateVerifier()
			q := r.signIn(t, tn.ID, sess, []string{"pwd"}, oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n0nce"))
			if q.Get("state") != "st4te" || q.Get("iss") != e.URL+"/t/acme" || len(q.Get("code")) != 43 {
				t.Fatalf("authorization response %v", q)
			}
			tok, err := r.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := r.provider.Verifier(&gooidc.Config{ClientID: r.conf.ClientID}).Verify(ctx, raw)
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				Nonce    string   `json:"nonce"`
				SID      string   `json:"sid"`
				ACR      string   `json:"acr"`
				AMR      []string `json:"amr"`
				AuthTime int64    `json:"auth_time"`
			}
			if err := idt.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			if idt.Subject != u.ID || claims.Nonce != "n0nce" || claims.SID != sess.ID || claims.AuthTime == 0 ||
				!slices.Equal(claims.AMR, []string{"pwd"}) || claims.ACR == "" {
				t.Fatalf("ID token claims %+v sub %s", claims, idt.Subject)
			}
			ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			if ui.Subject != u.ID || ui.Email != "ana@example.org" {
				t.Fatalf("userinfo %+v", ui)
			}
			// Rotation: a new refresh token each time.
			tok2, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatal(err)
			}
			if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
				t.Fatal("refresh token not rotated")
			}
			// Reuse of the first token revokes the family: the second stops working too.
			if _, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
				t.Fatal("reused refresh token accepted")
			}
			if _, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
				t.Fatal("refresh token of a revoked family accepted")
			}
			if _, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok2)); err == nil {
				t.Fatal("access token of a revoked family accepted at userinfo")
			}
		})
	}
}
