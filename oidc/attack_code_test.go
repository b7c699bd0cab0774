package oidc_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"tutela/oidc"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// tokensWork reports whether an access token still gets userinfo and a refresh token still
// refreshes, as r.
func (r *rp) tokensWork(t *testing.T, access, refresh string) (userinfo, refreshes bool) {
	t.Helper()
	ctx := context.Background()
	_, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access, TokenType: "Bearer"}))
	userinfo = err == nil
	if refresh != "" {
		_, err = r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
		refreshes = err == nil
	}
	return userinfo, refreshes
}

// RFC 6749 §4.1.2 and RFC 9700 §4.5: a code works once, and a code presented a second time
// means it was stolen, so everything its first exchange issued is revoked and the replay is
// recorded as a security event.
func TestCodeExchange_ReplayRevokesWhatTheCodeIssued(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, d)
			code, v := f.rp.code(t, f)
			status, first := f.rp.exchange(t, code, v)
			if status != http.StatusOK || str(first, "refresh_token") == "" {
				t.Fatalf("first exchange: %d %v", status, first)
			}
			// The control: the first exchange's tokens work before the replay (userinfo only:
			// refreshing would rotate the token the replay must revoke).
			if ui, _ := f.rp.tokensWork(t, str(first, "access_token"), ""); !ui {
				t.Fatal("fresh access token refused")
			}
			// OP-OAuth-2nd-30s: the replay comes a while later (within the request's lifetime,
			// sqlstore.OIDCAuthRequestTTL, after which the code is forgotten).
			f.e.Clock.Add(30 * time.Second)
			status, second := f.rp.exchange(t, code, v)
			if status != http.StatusBadRequest || str(second, "error") != "invalid_grant" || second["access_token"] != nil {
				t.Fatalf("replayed code: %d %v", status, second)
			}
			if ui, rf := f.rp.tokensWork(t, str(first, "access_token"), str(first, "refresh_token")); ui || rf {
				t.Fatalf("tokens of a replayed code still work: userinfo %v refresh %v", ui, rf)
			}
			var events []*sqlstore.SecurityEvent
			err := f.e.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
				events, err = tx.SecurityEvents(ctx, f.tn.ID, 50)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, ev := range events {
				if ev.Kind == "authorization_code_replay" {
					n++
					if ev.UserID != f.u.ID || !strings.Contains(ev.Details, f.rp.conf.ClientID) || strings.Contains(ev.Details, code) {
						t.Fatalf("event %+v", ev)
					}
				}
			}
			if n != 1 {
				t.Fatalf("%d authorization_code_replay events, want 1", n)
			}
			// The browser session the code came from is not what was stolen: it still completes
			// new requests.
			code2, v2 := f.rp.code(t, f)
			if status, _ := f.rp.exchange(t, code2, v2); status != http.StatusOK {
				t.Fatalf("a new code after the replay: %d", status)
			}
		})
	}
}

// RFC 9700 §4.5 (code injection) and RFC 6749 §4.1.3: a code is bound to the client it was
// issued to. Client B redeeming client A's code, even with A's verifier, gets nothing. The
// attempt spends the code (it is redeemed before the client is compared, and a code works
// once whatever happens), so A's user signs in again: a stolen code is lost, never usable.
func TestCodeExchange_CodeOfAnotherClientRefused(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			b := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{Name: "Other application"})
			code, v := f.rp.code(t, f)
			status, body := b.exchange(t, code, v)
			if status != http.StatusBadRequest || str(body, "error") != "invalid_grant" || body["access_token"] != nil {
				t.Fatalf("client B with A's code: %d %v", status, body)
			}
			if status, body = f.rp.exchange(t, code, v); status != http.StatusBadRequest || str(body, "error") != "invalid_grant" {
				t.Fatalf("A's code after B tried it: %d %v", status, body)
			}
			// The control: B's own code works for B.
			code, v = b.code(t, f)
			if status, body = b.exchange(t, code, v); status != http.StatusOK {
				t.Fatalf("B's own code: %d %v", status, body)
			}
		})
	}
}

// RFC 9700 §4.4 (mix-up) and RFC 9207: each tenant is its own issuer. The authorization
// response names it; a code of one tenant is worthless at another's token endpoint (and is
// not spent there); a client of one tenant is unknown at another's authorize endpoint.
func TestMixUp_TenantsAreSeparateIssuers(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			tb, _ := f.e.Seed(t, "beta", "bo@example.org", pw)
			other := newRP(t, f.e, "beta", tb.ID, sqlstore.OIDCClient{})
			if other.provider.Endpoint().TokenURL == f.rp.provider.Endpoint().TokenURL {
				t.Fatal("tenants share a token endpoint")
			}
			v := oauth2.GenerateVerifier()
			q := f.rp.signIn(t, f.tn.ID, f.sess, []string{"pwd"}, oauth2.S256ChallengeOption(v))
			if q.Get("iss") != f.iss || q.Get("iss") == f.e.URL+"/t/beta" {
				t.Fatalf("iss %q, want %q", q.Get("iss"), f.iss)
			}
			code := q.Get("code")
			// At beta's token endpoint, with beta's client: no such code there.
			if status, body := other.exchange(t, code, v); status != http.StatusBadRequest || str(body, "error") != "invalid_grant" {
				t.Fatalf("acme's code at beta: %d %v", status, body)
			}
			// At beta's token endpoint with acme's client credentials: no such client there.
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {v}}
			status, body := postAs(t, other.provider.Endpoint().TokenURL, f.rp.conf.ClientID, f.rp.conf.ClientSecret, form)
			if status != http.StatusUnauthorized || str(body, "error") != "invalid_client" {
				t.Fatalf("acme's client at beta: %d %v", status, body)
			}
			// acme's client at beta's authorize endpoint: refused there, never redirected.
			status, loc := get(t, other.provider.Endpoint().AuthURL+"?"+f.rp.params(v).Encode())
			if status < 400 || loc != "" {
				t.Fatalf("acme's client at beta's authorize: %d %q", status, loc)
			}
			// The code was not spent at beta: acme redeems it.
			if status, body := f.rp.exchange(t, code, v); status != http.StatusOK || str(body, "id_token") == "" {
				t.Fatalf("acme's code at acme: %d %v", status, body)
			}
		})
	}
}

// RFC 9700 §4.14: a refresh token is bound to its client. Another client presenting it gets
// invalid_grant, and the owner's family is untouched (the attempt is not taken as reuse, or
// any client could end another's sessions by replaying a leaked token).
func TestRefresh_TokenOfAnotherClientRefused(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			b := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{Name: "Other application"})
			code, v := f.rp.code(t, f)
			_, tok := f.rp.exchange(t, code, v)
			rt := str(tok, "refresh_token")
			if rt == "" {
				t.Fatalf("no refresh token: %v", tok)
			}
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			if status, body := b.post(t, b.provider.Endpoint().TokenURL, form); status != http.StatusBadRequest ||
				str(body, "error") != "invalid_grant" || body["access_token"] != nil {
				t.Fatalf("B refreshing A's token: %d %v", status, body)
			}
			status, body := f.rp.post(t, f.rp.provider.Endpoint().TokenURL, url.Values{"grant_type": {"refresh_token"},
				"refresh_token": {rt}})
			if status != http.StatusOK || str(body, "refresh_token") == "" || str(body, "refresh_token") == rt {
				t.Fatalf("A's own refresh after B's attempt: %d %v", status, body)
			}
		})
	}
}

// Authorization request fixation: the attacker starts an authorization request in their own
// browser (so the client's state and PKCE verifier are theirs), sends the victim the genuine
// sign-in link it leads to, and, once the victim has signed in, asks the provider for the
// request's result themselves. There is nothing to ask: Complete answers the completing
// browser with the client's redirect URI and the code, and no callback endpoint hands a
// completed request's code to anyone else.
func TestCallback_OnlyTheCompletingBrowserGetsTheCode(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, d)
			v := oauth2.GenerateVerifier()
			id := f.e.Authorize(t, f.rp.conf.AuthCodeURL("attacker-state", oauth2.S256ChallengeOption(v)))
			victim, err := f.e.Provider.Complete(ctx, f.tn.ID, id, oidc.Authenticated{UserID: f.u.ID, SessionID: f.sess.ID})
			if err != nil {
				t.Fatal(err)
			}
			for _, attempt := range []string{
				f.iss + "/authorize/callback?id=" + url.QueryEscape(id),
				f.iss + "/authorize/callback?id=" + url.QueryEscape(id) + "&k=x",
				f.iss + "/callback?id=" + url.QueryEscape(id),
			} {
				status, loc := get(t, attempt)
				if _, q := authorizeResponse(t, loc); q.Has("code") || status != http.StatusNotFound {
					t.Fatalf("%s: %d %q", attempt, status, loc)
				}
			}
			// Completing it again (the attacker cannot, holding no session of the victim;
			// even the victim's own second try) makes no second code.
			if _, err := f.e.Provider.Complete(ctx, f.tn.ID, id, oidc.Authenticated{UserID: f.u.ID, SessionID: f.sess.ID}); err == nil {
				t.Fatal("a completed request was completed again")
			}
			// The victim's browser, following Complete's answer, gets the code; the client
			// finds the attacker's state in it and, in the victim's browser, rejects it.
			_, q := authorizeResponse(t, victim)
			if !strings.HasPrefix(victim, redirect+"?") || len(q.Get("code")) != 43 || q.Get("state") != "attacker-state" {
				t.Fatalf("the completing browser: %q", victim)
			}
			if status, body := f.rp.exchange(t, q.Get("code"), v); status != http.StatusOK {
				t.Fatalf("exchange: %d %v", status, body)
			}
		})
	}
}

// RFC 6749 §4.1.3: the exchange names the redirect URI the code was sent to; a code taken
// from one redirect URI of the client and presented with another is refused.
func TestCodeExchange_RedirectURIMustMatchTheRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sqlstore.SQLite)
	two := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{RedirectURIs: []string{redirect, "http://127.0.0.1:9/other"}})
	for _, uri := range []string{"http://127.0.0.1:9/other", ""} {
		code, v := two.code(t, f)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}}
		if uri != "" {
			form.Set("redirect_uri", uri)
		}
		status, body := two.post(t, two.provider.Endpoint().TokenURL, form)
		if status != http.StatusBadRequest || body["access_token"] != nil {
			t.Fatalf("redirect_uri %q: %d %v", uri, status, body)
		}
	}
	code, v := two.code(t, f)
	if status, body := two.exchange(t, code, v); status != http.StatusOK {
		t.Fatalf("the request's redirect_uri: %d %v", status, body)
	}
}
