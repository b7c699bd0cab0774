package oidc_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// RFC 9700 §2.4: no resource owner password grant; an OIDC client has no client_credentials
// grant (that grant is for service accounts, and a relying party's credentials are not one's:
// invalid_client); a client registered without refresh_token cannot refresh.
func TestToken_RefusesGrantsNotOffered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sqlstore.SQLite)
	tokenURL := f.rp.provider.Endpoint().TokenURL
	for _, tc := range []struct {
		name string
		form url.Values
		want []string
	}{
		{"password", url.Values{"grant_type": {"password"}, "username": {"ana@example.org"}, "password": {pw}},
			[]string{"unsupported_grant_type"}},
		{"client_credentials", url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}},
			[]string{"invalid_client"}},
		{"device_code", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"x"}},
			[]string{"unsupported_grant_type", "unauthorized_client"}},
		{"token exchange", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token": {f.sess.Access}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}},
			[]string{"unsupported_grant_type", "unauthorized_client"}},
		{"jwt bearer", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {f.sess.Access}},
			[]string{"unsupported_grant_type", "unauthorized_client", "invalid_request"}},
		{"unknown", url.Values{"grant_type": {"magic"}}, []string{"unsupported_grant_type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.rp.post(t, tokenURL, tc.form)
			if status < 400 || body["access_token"] != nil || !contains(tc.want, str(body, "error")) {
				t.Fatalf("%d %v, want one of %v", status, body, tc.want)
			}
		})
	}
	t.Run("refresh without the grant", func(t *testing.T) {
		c := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{GrantTypes: []string{"authorization_code"}})
		code, v := c.code(t, f)
		_, tok := c.exchange(t, code, v)
		if str(tok, "access_token") == "" {
			t.Fatalf("code exchange: %v", tok)
		}
		// offline_access was asked for, but the client may not refresh: no refresh token.
		if rt := str(tok, "refresh_token"); rt != "" {
			t.Fatal("a refresh token for a client without the refresh_token grant")
		}
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// RFC 6749 §2.3 and §5.2: a confidential client proves itself at the token endpoint; a wrong
// or missing secret, or a disabled client, is invalid_client with 401 (and the code is not
// spent by the failed attempt). A public client (no secret) is held to PKCE instead.
func TestToken_ClientAuthentication(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, d)
			tokenURL := f.rp.provider.Endpoint().TokenURL
			code, v := f.rp.code(t, f)
			form := func() url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {v}}
			}
			for name, secret := range map[string]string{"wrong secret": "x" + f.rp.conf.ClientSecret[1:], "no secret": ""} {
				status, body := postAs(t, tokenURL, f.rp.conf.ClientID, secret, form())
				if status != http.StatusUnauthorized || str(body, "error") != "invalid_client" || body["access_token"] != nil {
					t.Fatalf("%s: %d %v", name, status, body)
				}
			}
			req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form().Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(f.rp.conf.ClientID, "wrong")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("401 without a Basic challenge: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
			}
			// client_secret_post is not offered (discovery lists client_secret_basic): a secret
			// in the body does not authenticate.
			body := form()
			body.Set("client_id", f.rp.conf.ClientID)
			body.Set("client_secret", f.rp.conf.ClientSecret)
			if status, b := postAs(t, tokenURL, f.rp.conf.ClientID, "", body); status != http.StatusUnauthorized || b["access_token"] != nil {
				t.Fatalf("client_secret_post: %d %v", status, b)
			}
			// The right secret still redeems the code: a failed client authentication does
			// not reach it.
			if status, body := f.rp.exchange(t, code, v); status != http.StatusOK {
				t.Fatalf("right secret: %d %v", status, body)
			}

			// A disabled client is refused at both ends.
			code, v = f.rp.code(t, f)
			if err := f.e.DB.Update(ctx, func(tx *sqlstore.Tx) error {
				return tx.OIDCClients(f.tn.ID).SetStatus(ctx, f.rp.conf.ClientID, sqlstore.ClientDisabled)
			}); err != nil {
				t.Fatal(err)
			}
			if status, body := f.rp.exchange(t, code, v); status != http.StatusUnauthorized || str(body, "error") != "invalid_client" {
				t.Fatalf("disabled client at the token endpoint: %d %v", status, body)
			}
			if status, loc := get(t, f.rp.conf.Endpoint.AuthURL+"?"+f.rp.params(v).Encode()); status < 400 || loc != "" {
				t.Fatalf("disabled client at authorize: %d %q", status, loc)
			}

			// A single-page application: public, PKCE its only proof.
			spa := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{AppType: sqlstore.AppUserAgent,
				RedirectURIs: []string{"https://spa.example/cb"}})
			if spa.conf.ClientSecret != "" {
				t.Fatal("a public client got a secret")
			}
			q := spa.params(v)
			q.Del("code_challenge")
			q.Del("code_challenge_method")
			status, loc := get(t, spa.conf.Endpoint.AuthURL+"?"+q.Encode())
			if _, r := authorizeResponse(t, loc); status != http.StatusFound || r.Get("error") != "invalid_request" || r.Has("code") {
				t.Fatalf("public client without PKCE: %d %q", status, loc)
			}
			code, _ = spa.code(t, f)
			if status, body := spa.exchange(t, code, ""); status != http.StatusBadRequest || str(body, "error") != "invalid_grant" {
				t.Fatalf("public client without verifier: %d %v", status, body)
			}
			code, v = spa.code(t, f)
			if status, body := spa.exchange(t, code, v); status != http.StatusOK || str(body, "id_token") == "" {
				t.Fatalf("public client with its verifier: %d %v", status, body)
			}
		})
	}
}

// RFC 7009 and RFC 7662: the owning client revokes its grant (the whole family) and
// introspects its tokens; another client can do neither — its revocation is answered 200 as
// the RFC says but changes nothing, and its introspection sees an inactive token.
func TestRevocationAndIntrospection_OwnerOnly(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			b := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{Name: "Other application"})
			revoke, introspect := f.iss+"/oauth/revoke", f.iss+"/oauth/introspect"
			code, v := f.rp.code(t, f)
			_, tok := f.rp.exchange(t, code, v)
			at, rt := str(tok, "access_token"), str(tok, "refresh_token")

			active := func(r *rp) bool {
				t.Helper()
				status, body := r.post(t, introspect, url.Values{"token": {at}})
				if status != http.StatusOK {
					t.Fatalf("introspection: %d %v", status, body)
				}
				act, _ := body["active"].(bool)
				if act && (str(body, "client_id") != f.rp.conf.ClientID || str(body, "sub") != f.u.ID) {
					t.Fatalf("introspection %v", body)
				}
				return act
			}
			if !active(f.rp) {
				t.Fatal("the owner sees its live token inactive")
			}
			if active(b) {
				t.Fatal("another client introspected the token")
			}
			// Garbage is inactive, not an error.
			if status, body := f.rp.post(t, introspect, url.Values{"token": {"a.b.c"}}); status != http.StatusOK || body["active"] == true {
				t.Fatalf("garbage token: %d %v", status, body)
			}
			// Wrong secret, or the secret in the body, at introspection: invalid_client, 401
			// (RFC 7662 §2.3), and no answer about the token.
			if status, body := postAs(t, introspect, f.rp.conf.ClientID, "wrong", url.Values{"token": {at}}); status != http.StatusUnauthorized ||
				str(body, "error") != "invalid_client" || body["active"] != nil {
				t.Fatalf("introspection with a wrong secret: %d %v", status, body)
			}
			inBody := url.Values{"token": {at}, "client_secret": {f.rp.conf.ClientSecret}}
			if status, body := postAs(t, introspect, f.rp.conf.ClientID, "", inBody); status != http.StatusUnauthorized || body["active"] != nil {
				t.Fatalf("introspection with the secret in the body: %d %v", status, body)
			}

			for _, tk := range []string{rt, at} {
				if status, body := b.post(t, revoke, url.Values{"token": {tk}}); status != http.StatusOK {
					t.Fatalf("revocation by another client: %d %v", status, body)
				}
			}
			if !active(f.rp) {
				t.Fatal("another client's revocation ended the grant")
			}
			status, body := f.rp.post(t, revoke, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}})
			if status != http.StatusOK {
				t.Fatalf("revocation by the owner: %d %v", status, body)
			}
			if ui, rf := f.rp.tokensWork(t, at, rt); ui || rf {
				t.Fatalf("revoked family still works: userinfo %v refresh %v", ui, rf)
			}
			if active(f.rp) {
				t.Fatal("revoked token introspected active")
			}

			// Revoking the access token ends the grant too (one session, one grant).
			code, v = f.rp.code(t, f)
			_, tok = f.rp.exchange(t, code, v)
			if status, _ := f.rp.post(t, revoke, url.Values{"token": {str(tok, "access_token")}}); status != http.StatusOK {
				t.Fatalf("revoking an access token: %d", status)
			}
			if ui, rf := f.rp.tokensWork(t, str(tok, "access_token"), str(tok, "refresh_token")); ui || rf {
				t.Fatalf("family of a revoked access token still works: userinfo %v refresh %v", ui, rf)
			}
		})
	}
}
