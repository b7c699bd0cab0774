package oidc_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"tutela/oidc"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// RFC 9700 §2.1.1: PKCE S256 for every client. A request without a challenge, or with the
// plain method (whose "challenge" is the verifier itself, readable wherever the request is),
// is refused back to the client, with iss (RFC 9207), and no code is ever made for it.
func TestAuthorize_RefusesMissingOrPlainPKCE(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			v := oauth2.GenerateVerifier()
			for _, tc := range []struct {
				name string
				edit func(url.Values)
			}{
				{"missing", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }},
				{"plain", func(q url.Values) { q.Set("code_challenge", v); q.Set("code_challenge_method", "plain") }},
				{"method omitted (plain by default)", func(q url.Values) { q.Del("code_challenge_method") }},
				{"unknown method", func(q url.Values) { q.Set("code_challenge_method", "S512") }},
				{"short challenge", func(q url.Values) { q.Set("code_challenge", "abc") }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					q := f.rp.params(v)
					tc.edit(q)
					status, loc := get(t, f.rp.conf.Endpoint.AuthURL+"?"+q.Encode())
					if status != http.StatusFound || !strings.HasPrefix(loc, redirect+"?") {
						t.Fatalf("want an error redirect to the client, got %d %q", status, loc)
					}
					_, r := authorizeResponse(t, loc)
					if r.Get("error") != "invalid_request" || r.Get("iss") != f.iss || r.Get("state") != "st4te" || r.Has("code") {
						t.Fatalf("authorization response %v", r)
					}
				})
			}
			// The same request with S256 goes on to the sign-in page.
			if id := f.e.Authorize(t, f.rp.conf.Endpoint.AuthURL+"?"+f.rp.params(v).Encode()); id == "" {
				t.Fatal("no request id")
			}
		})
	}
}

// RFC 9700 §2.1.1 and RFC 7636 §4.6: the token endpoint proves the code is redeemed by whoever
// started the request. A confidential client is held to it too: a stolen code with its
// client's secret but without the verifier gets nothing.
func TestCodeExchange_RequiresTheRightVerifier(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			code, v := f.rp.code(t, f)
			status, body := f.rp.exchange(t, code, "")
			if status != http.StatusBadRequest || str(body, "error") != "invalid_grant" || body["access_token"] != nil {
				t.Fatalf("without verifier: %d %v", status, body)
			}
			status, body = f.rp.exchange(t, code, oauth2.GenerateVerifier())
			if status != http.StatusBadRequest || str(body, "error") != "invalid_grant" || body["access_token"] != nil {
				t.Fatalf("wrong verifier: %d %v", status, body)
			}
			// A wrong verifier spends the code: it was redeemed before the check, and a code
			// works once whatever happens (a stolen code tried first is lost to its owner, who
			// signs in again; it never becomes usable by a second guess).
			if status, body = f.rp.exchange(t, code, v); status != http.StatusBadRequest || str(body, "error") != "invalid_grant" {
				t.Fatalf("spent code: %d %v", status, body)
			}
			// The control: a fresh code with its verifier works.
			code, v = f.rp.code(t, f)
			if status, body = f.rp.exchange(t, code, v); status != http.StatusOK || str(body, "access_token") == "" {
				t.Fatalf("right verifier: %d %v", status, body)
			}
		})
	}
}

// RFC 9700 §4.1.3 and RFC 6749 §3.1.2.4: redirect URIs match exactly, and a request whose
// redirect_uri is not registered is refused with a page of the provider — never a redirect
// to that URI (it is the attacker's).
func TestAuthorize_RedirectURIMustMatchExactly(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			native := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{AppType: sqlstore.AppNative,
				RedirectURIs: []string{"http://127.0.0.1/callback", "com.example.app:/cb"}})
			withQuery := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{RedirectURIs: []string{redirect + "?tenant=a"}})
			// A web client registered with a port-less loopback URI gets no port freedom.
			webLoop := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{RedirectURIs: []string{"http://127.0.0.1/callback"}})
			v := oauth2.GenerateVerifier()
			for _, tc := range []struct {
				name string
				r    *rp
				uri  string
			}{
				{"suffix", f.rp, redirect + "/evil"},
				{"appended characters", f.rp, redirect + "x"},
				{"path changed", f.rp, "http://127.0.0.1:9/other"},
				{"path traversal", f.rp, "http://127.0.0.1:9/callback/../evil"},
				{"case changed", f.rp, "http://127.0.0.1:9/Callback"},
				{"scheme case changed", f.rp, "HTTP://127.0.0.1:9/callback"},
				{"userinfo added", f.rp, "http://evil@127.0.0.1:9/callback"},
				{"other host (open redirect)", f.rp, "https://evil.example/callback"},
				{"other port", f.rp, "http://127.0.0.1:10/callback"},
				{"extra query", f.rp, redirect + "?next=https://evil.example"},
				{"fragment", f.rp, redirect + "#evil"},
				{"missing", f.rp, ""},
				{"registered query changed", withQuery, redirect + "?tenant=b"},
				{"registered query dropped", withQuery, redirect},
				{"registered query added to", withQuery, redirect + "?tenant=a&x=1"},
				{"web client on another loopback port", webLoop, "http://127.0.0.1:49152/callback"},
				{"native: other path", native, "http://127.0.0.1:49152/other"},
				{"native: extra query", native, "http://127.0.0.1:49152/callback?x=1"},
				{"native: fragment", native, "http://127.0.0.1:49152/callback#x"},
				{"native: userinfo", native, "http://evil@127.0.0.1:49152/callback"},
				{"native: other host", native, "http://evil.example:49152/callback"},
				{"native: localhost for the registered IP", native, "http://localhost:49152/callback"},
				{"native: https for the registered http", native, "https://127.0.0.1:49152/callback"},
				{"native: private scheme suffix", native, "com.example.app:/cb/evil"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					q := tc.r.params(v)
					q.Set("redirect_uri", tc.uri)
					if tc.uri == "" {
						q.Del("redirect_uri")
					}
					status, loc := get(t, tc.r.conf.Endpoint.AuthURL+"?"+q.Encode())
					if status != http.StatusBadRequest || loc != "" {
						t.Fatalf("want 400 without a redirect, got %d Location %q", status, loc)
					}
				})
			}
			// OP-redirect_uri-Query-OK: a registered query is kept, the response added to it.
			q := withQuery.params(v)
			q.Set("redirect_uri", redirect+"?tenant=a")
			id := f.e.Authorize(t, withQuery.conf.Endpoint.AuthURL+"?"+q.Encode())
			r := f.complete(t, id, oidc.Authenticated{UserID: f.u.ID, SessionID: f.sess.ID})
			if r.Get("tenant") != "a" || len(r.Get("code")) != 43 {
				t.Fatalf("registered query: %v", r)
			}
		})
	}
}

// RFC 8252 §7.3: a native app listens on whatever loopback port is free, so its registered
// loopback redirect URI matches on any port; the code goes to that port, and the public
// client redeems it with its verifier alone.
func TestAuthorize_NativeLoopbackAnyPort(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			native := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{AppType: sqlstore.AppNative,
				RedirectURIs: []string{"http://127.0.0.1/callback"}})
			if native.conf.ClientSecret != "" {
				t.Fatal("a native client got a secret")
			}
			const at = "http://127.0.0.1:49152/callback"
			v := oauth2.GenerateVerifier()
			q := native.params(v)
			q.Set("redirect_uri", at)
			id := f.e.Authorize(t, native.conf.Endpoint.AuthURL+"?"+q.Encode())
			cb, err := f.e.Provider.Complete(context.Background(), f.tn.ID, id, oidc.Authenticated{UserID: f.u.ID,
				SessionID: f.sess.ID})
			if err != nil {
				t.Fatal(err)
			}
			loc := cb
			if !strings.HasPrefix(loc, at+"?") {
				t.Fatalf("authorization response %q", loc)
			}
			_, r := authorizeResponse(t, loc)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {r.Get("code")}, "redirect_uri": {at},
				"code_verifier": {v}}
			if status, body := native.post(t, native.provider.Endpoint().TokenURL, form); status != http.StatusOK ||
				str(body, "access_token") == "" || str(body, "id_token") == "" {
				t.Fatalf("public client exchange: %d %v", status, body)
			}
		})
	}
}

// RFC 9700 §2.1.2: no implicit or hybrid flow (tokens in the front channel leak and can be
// injected). Every response type but code is refused, and no token reaches the redirect. The
// client's redirect URI is https, so that the library, which refuses plain http outside the
// confidential code flow before anything else, does not hide what the response type gets.
func TestAuthorize_RefusesImplicitAndHybrid(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sqlstore.SQLite)
	f.rp = newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{RedirectURIs: []string{"https://app.example/cb"}})
	v := oauth2.GenerateVerifier()
	for _, rt := range []string{"token", "id_token", "id_token token", "code id_token", "code token", "code id_token token", "none", ""} {
		t.Run(rt, func(t *testing.T) {
			q := f.rp.params(v)
			q.Set("response_type", rt)
			if rt == "" { // OP-Response-Missing
				q.Del("response_type")
			}
			status, loc := get(t, f.rp.conf.Endpoint.AuthURL+"?"+q.Encode())
			if status != http.StatusFound && status != http.StatusBadRequest {
				t.Fatalf("status %d", status)
			}
			if strings.Contains(loc, "/login?id=") {
				t.Fatalf("response_type %s went on to sign-in: %q", rt, loc)
			}
			if loc != "" {
				_, r := authorizeResponse(t, loc)
				if r.Get("error") == "" || r.Has("code") || r.Has("access_token") || r.Has("id_token") || r.Get("iss") != f.iss {
					t.Fatalf("authorization response %v", r)
				}
			}
		})
	}
}

// Discovery says what the provider does and nothing more: a client choosing from it can only
// pick the code flow with S256.
func TestDiscovery_AdvertisesOnlyWhatIsServed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sqlstore.SQLite)
	var doc struct {
		Issuer                 string   `json:"issuer"`
		AuthorizationEndpoint  string   `json:"authorization_endpoint"`
		TokenEndpoint          string   `json:"token_endpoint"`
		UserinfoEndpoint       string   `json:"userinfo_endpoint"`
		JWKSURI                string   `json:"jwks_uri"`
		EndSessionEndpoint     string   `json:"end_session_endpoint"`
		RevocationEndpoint     string   `json:"revocation_endpoint"`
		IntrospectionEndpoint  string   `json:"introspection_endpoint"`
		ResponseTypes          []string `json:"response_types_supported"`
		ResponseModes          []string `json:"response_modes_supported"`
		GrantTypes             []string `json:"grant_types_supported"`
		ChallengeMethods       []string `json:"code_challenge_methods_supported"`
		AuthMethods            []string `json:"token_endpoint_auth_methods_supported"`
		IntrospectAuthMethods  []string `json:"introspection_endpoint_auth_methods_supported"`
		SigningAlgs            []string `json:"id_token_signing_alg_values_supported"`
		SubjectTypes           []string `json:"subject_types_supported"`
		Scopes                 []string `json:"scopes_supported"`
		Claims                 []string `json:"claims_supported"`
		ACRValues              []string `json:"acr_values_supported"`
		RequestURIParameter    bool     `json:"request_uri_parameter_supported"`
		RequestParameter       bool     `json:"request_parameter_supported"`
		IssParameter           *bool    `json:"authorization_response_iss_parameter_supported"`
		BackchannelLogout      bool     `json:"backchannel_logout_supported"`
		BackchannelLogoutSessn bool     `json:"backchannel_logout_session_supported"`
	}
	if err := f.rp.provider.Claims(&doc); err != nil {
		t.Fatal(err)
	}
	eq := func(name string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if doc.Issuer != f.iss || doc.AuthorizationEndpoint != f.iss+"/authorize" || doc.TokenEndpoint != f.iss+"/oauth/token" ||
		doc.UserinfoEndpoint != f.iss+"/userinfo" || doc.JWKSURI != f.iss+"/keys" || doc.EndSessionEndpoint != f.iss+"/end_session" ||
		doc.RevocationEndpoint != f.iss+"/oauth/revoke" || doc.IntrospectionEndpoint != f.iss+"/oauth/introspect" {
		t.Errorf("endpoints %+v", doc)
	}
	eq("response_types_supported", doc.ResponseTypes, []string{"code"})
	eq("response_modes_supported", doc.ResponseModes, []string{"query"})
	eq("grant_types_supported", doc.GrantTypes, []string{"authorization_code", "refresh_token", "client_credentials"})
	eq("code_challenge_methods_supported", doc.ChallengeMethods, []string{"S256"})
	eq("token_endpoint_auth_methods_supported", doc.AuthMethods, []string{"client_secret_basic", "private_key_jwt", "none"})
	eq("introspection_endpoint_auth_methods_supported", doc.IntrospectAuthMethods, []string{"client_secret_basic", "private_key_jwt"})
	eq("subject_types_supported", doc.SubjectTypes, []string{"public"})
	eq("acr_values_supported", doc.ACRValues, []string{"urn:tutela:acr:pwd", "urn:tutela:acr:mfa"})
	algs := slices.Clone(doc.SigningAlgs)
	slices.Sort(algs)
	eq("id_token_signing_alg_values_supported", algs, []string{"ES256", "EdDSA", "RS256"})
	for _, s := range []string{"openid", "profile", "email", "roles", "offline_access"} {
		if !slices.Contains(doc.Scopes, s) {
			t.Errorf("scope %s not advertised: %v", s, doc.Scopes)
		}
	}
	for _, c := range []string{"sub", "iss", "aud", "acr", "amr", "auth_time", "sid", "email", "name"} {
		if !slices.Contains(doc.Claims, c) {
			t.Errorf("claim %s not advertised: %v", c, doc.Claims)
		}
	}
	if doc.RequestURIParameter || doc.RequestParameter {
		t.Error("request objects advertised but not supported")
	}
	if doc.IssParameter == nil || !*doc.IssParameter {
		t.Error("authorization_response_iss_parameter_supported not advertised (RFC 9207)")
	}
	if !doc.BackchannelLogout || !doc.BackchannelLogoutSessn {
		t.Error("back-channel logout not advertised")
	}
}

// Discovery's VerifyOPEndpointsUseHTTPS: every endpoint is below the issuer, and the issuer
// is https; plain http is accepted only on a loopback address (development and tests).
func TestNew_IssuerMustBeHTTPS(t *testing.T) {
	t.Parallel()
	for u, ok := range map[string]bool{"https://id.example.org": true, "http://127.0.0.1:8080": true, "http://localhost": true,
		"http://id.example.org": false, "http://localhost.evil.example": false, "ftp://id.example.org": false, "": false} {
		if _, err := oidc.New(oidc.Deps{PublicURL: u}); (err == nil) != ok {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}
