package oidc

import (
	"errors"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

func webClient() *sqlstore.OIDCClient {
	c := &sqlstore.OIDCClient{Name: "Portal", AppType: sqlstore.AppWeb, RedirectURIs: []string{"https://app.example.org/cb"}}
	ClientDefaults(c)
	return c
}

// fields lists the field of every problem ValidateClient reported.
func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var te *tutela.Error
		if !errors.As(e, &te) || te.Code != tutela.EINVALID || te.Field == "" {
			t.Fatalf("problem %v is not a field error", e)
		}
		out = append(out, te.Field)
	}
	walk(err)
	return out
}

func TestClientDefaults_ByApplicationType(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]string{sqlstore.AppWeb: sqlstore.ClientSecretBasic, sqlstore.AppNative: sqlstore.AuthNone,
		sqlstore.AppUserAgent: sqlstore.AuthNone} {
		c := &sqlstore.OIDCClient{AppType: typ}
		ClientDefaults(c)
		if c.AuthMethod != want || c.IDTokenAlg != "EdDSA" || strings.Join(c.Scopes, " ") != "openid" ||
			strings.Join(c.GrantTypes, " ") != "authorization_code refresh_token" {
			t.Errorf("%s: defaults %+v", typ, c)
		}
	}
	c := &sqlstore.OIDCClient{AppType: sqlstore.AppWeb, AuthMethod: sqlstore.PrivateKeyJWT, Scopes: []string{"openid", "email"}}
	ClientDefaults(c)
	if c.AuthMethod != sqlstore.PrivateKeyJWT || len(c.Scopes) != 2 {
		t.Fatalf("defaults overwrote given values: %+v", c)
	}
}

func TestValidateClient_AcceptsWellFormedClients(t *testing.T) {
	t.Parallel()
	for _, c := range []*sqlstore.OIDCClient{
		{Name: "Portal", AppType: sqlstore.AppWeb, RedirectURIs: []string{"https://app.example.org/cb", "http://127.0.0.1:8080/cb"},
			PostLogoutRedirectURIs: []string{"https://app.example.org/bye"}, BackchannelLogoutURI: "https://app.example.org/bcl",
			Scopes: ClientScopes, AccessTokenTTL: 600},
		{Name: "Partner", AppType: sqlstore.AppWeb, AuthMethod: sqlstore.PrivateKeyJWT, RedirectURIs: []string{"https://p.example/cb?x=1"},
			IDTokenAlg: "RS256"},
		{Name: "تطبيق الهاتف", AppType: sqlstore.AppNative, RedirectURIs: []string{"http://127.0.0.1/cb", "http://[::1]/cb",
			"org.example.app:/oauth2redirect", "https://app.example.org/native"}},
		{Name: "SPA", AppType: sqlstore.AppUserAgent, RedirectURIs: []string{"https://spa.example.org/"}, AccessTokenTTL: 60},
	} {
		ClientDefaults(c)
		if err := ValidateClient(c); err != nil {
			t.Errorf("%s refused: %v", c.Name, err)
		}
	}
}

func TestValidateClient_RefusesEachRule(t *testing.T) {
	t.Parallel()
	long := "https://app.example.org/" + strings.Repeat("a", MaxRedirectURIBytes)
	many := make([]string, MaxRedirectURIs+1)
	for i := range many {
		many[i] = "https://app.example.org/cb" + strings.Repeat("x", i)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*sqlstore.OIDCClient)
		field string
	}{
		{"empty name", func(c *sqlstore.OIDCClient) { c.Name = "" }, "name"},
		{"blank name", func(c *sqlstore.OIDCClient) { c.Name = "   " }, "name"},
		{"long name", func(c *sqlstore.OIDCClient) { c.Name = strings.Repeat("é", 101) }, "name"},
		{"control in name", func(c *sqlstore.OIDCClient) { c.Name = "Portal\x1b[31m" }, "name"},
		{"bidi override in name", func(c *sqlstore.OIDCClient) { c.Name = "Portal\u202e" }, "name"},
		{"unknown type", func(c *sqlstore.OIDCClient) { c.AppType = "service" }, "application_type"},
		{"web with none", func(c *sqlstore.OIDCClient) { c.AuthMethod = sqlstore.AuthNone }, "token_endpoint_auth_method"},
		{"web with client_secret_post", func(c *sqlstore.OIDCClient) { c.AuthMethod = "client_secret_post" }, "token_endpoint_auth_method"},
		{"native with secret", func(c *sqlstore.OIDCClient) {
			c.AppType, c.AuthMethod = sqlstore.AppNative, sqlstore.ClientSecretBasic
		}, "token_endpoint_auth_method"},
		{"spa with private_key_jwt", func(c *sqlstore.OIDCClient) {
			c.AppType, c.AuthMethod = sqlstore.AppUserAgent, sqlstore.PrivateKeyJWT
		}, "token_endpoint_auth_method"},
		{"public client skipping consent", func(c *sqlstore.OIDCClient) {
			c.AppType, c.AuthMethod, c.SkipConsent = sqlstore.AppUserAgent, sqlstore.AuthNone, true
		}, "skip_consent"},
		{"no redirect", func(c *sqlstore.OIDCClient) { c.RedirectURIs = nil }, "redirect_uris"},
		{"eleven redirects", func(c *sqlstore.OIDCClient) { c.RedirectURIs = many }, "redirect_uris"},
		{"relative", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"/cb"} }, "redirect_uris"},
		{"fragment", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"https://app.example.org/cb#x"} }, "redirect_uris"},
		{"empty fragment", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"https://app.example.org/cb#"} }, "redirect_uris"},
		{"userinfo", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"https://app.example.org@evil.example/cb"} }, "redirect_uris"},
		{"wildcard host", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"https://*.example.org/cb"} }, "redirect_uris"},
		{"wildcard path", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"https://app.example.org/*"} }, "redirect_uris"},
		{"too long", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{long} }, "redirect_uris"},
		{"http remote", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"http://app.example.org/cb"} }, "redirect_uris"},
		{"http localhost", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"http://localhost:8080/cb"} }, "redirect_uris"},
		{"http other loopback", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"http://127.0.0.2/cb"} }, "redirect_uris"},
		{"javascript", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"javascript:alert(1)"} }, "redirect_uris"},
		{"private scheme on web", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"org.example.app:/cb"} }, "redirect_uris"},
		{"native scheme without dot", func(c *sqlstore.OIDCClient) {
			c.AppType, c.AuthMethod, c.RedirectURIs = sqlstore.AppNative, sqlstore.AuthNone, []string{"myapp:/cb"}
		}, "redirect_uris"},
		{"native localhost", func(c *sqlstore.OIDCClient) {
			c.AppType, c.AuthMethod, c.RedirectURIs = sqlstore.AppNative, sqlstore.AuthNone, []string{"http://localhost/cb"}
		}, "redirect_uris"},
		{"space in uri", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"https://app.example.org/c b"} }, "redirect_uris"},
		{"https without host", func(c *sqlstore.OIDCClient) { c.RedirectURIs = []string{"https:///cb"} }, "redirect_uris"},
		{"post-logout http", func(c *sqlstore.OIDCClient) { c.PostLogoutRedirectURIs = []string{"http://app.example.org/"} }, "post_logout_redirect_uris"},
		{"post-logout eleven", func(c *sqlstore.OIDCClient) { c.PostLogoutRedirectURIs = many }, "post_logout_redirect_uris"},
		{"backchannel http", func(c *sqlstore.OIDCClient) { c.BackchannelLogoutURI = "http://app.example.org/bcl" }, "backchannel_logout_uri"},
		{"backchannel fragment", func(c *sqlstore.OIDCClient) { c.BackchannelLogoutURI = "https://app.example.org/bcl#f" }, "backchannel_logout_uri"},
		{"unknown scope", func(c *sqlstore.OIDCClient) { c.Scopes = []string{"openid", "admin"} }, "scopes"},
		{"no openid", func(c *sqlstore.OIDCClient) { c.Scopes = []string{"profile"} }, "scopes"},
		{"implicit", func(c *sqlstore.OIDCClient) { c.GrantTypes = []string{"authorization_code", "implicit"} }, "grant_types"},
		{"password", func(c *sqlstore.OIDCClient) { c.GrantTypes = []string{"authorization_code", "password"} }, "grant_types"},
		{"client credentials", func(c *sqlstore.OIDCClient) {
			c.GrantTypes = []string{"authorization_code", "client_credentials"}
		}, "grant_types"},
		{"no code grant", func(c *sqlstore.OIDCClient) { c.GrantTypes = []string{"refresh_token"} }, "grant_types"},
		{"HS256", func(c *sqlstore.OIDCClient) { c.IDTokenAlg = "HS256" }, "id_token_signed_response_alg"},
		{"alg none", func(c *sqlstore.OIDCClient) { c.IDTokenAlg = "none" }, "id_token_signed_response_alg"},
		{"ttl 59", func(c *sqlstore.OIDCClient) { c.AccessTokenTTL = 59 }, "access_token_ttl_seconds"},
		{"ttl 3601", func(c *sqlstore.OIDCClient) { c.AccessTokenTTL = 3601 }, "access_token_ttl_seconds"},
		{"ttl negative", func(c *sqlstore.OIDCClient) { c.AccessTokenTTL = -1 }, "access_token_ttl_seconds"},
	} {
		c := webClient()
		tc.edit(c)
		got := fields(t, ValidateClient(c))
		if len(got) == 0 || got[0] != tc.field {
			t.Errorf("%s: fields %v, want %s first", tc.name, got, tc.field)
		}
	}
}

func TestValidateClient_ReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	c := &sqlstore.OIDCClient{Name: "", AppType: sqlstore.AppWeb, AuthMethod: sqlstore.ClientSecretBasic,
		RedirectURIs: []string{"http://evil.example/cb", "https://ok.example/cb#frag"}, Scopes: []string{"email"},
		GrantTypes: []string{"implicit"}, IDTokenAlg: "HS256", AccessTokenTTL: 5}
	got := strings.Join(fields(t, ValidateClient(c)), ",")
	want := "name,redirect_uris,redirect_uris,scopes,grant_types,grant_types,id_token_signed_response_alg,access_token_ttl_seconds"
	if got != want {
		t.Fatalf("fields %s, want %s", got, want)
	}
	if tutela.ErrorCode(ValidateClient(c)) != tutela.EINVALID {
		t.Fatal("joined problems do not carry the invalid code")
	}
}

func TestValidateClient_ErrorEchoIsClipped(t *testing.T) {
	t.Parallel()
	c := webClient()
	c.Scopes = []string{"openid", strings.Repeat("s", 500)}
	if msg := tutela.ErrorMessage(ValidateClient(c)); len(msg) > 200 {
		t.Fatalf("message of %d bytes echoes the whole value", len(msg))
	}
}

func BenchmarkValidateClient(b *testing.B) {
	c := &sqlstore.OIDCClient{Name: "Portal", AppType: sqlstore.AppWeb, RedirectURIs: []string{"https://app.example.org/cb",
		"http://127.0.0.1:8080/cb"}, PostLogoutRedirectURIs: []string{"https://app.example.org/bye"}, Scopes: ClientScopes}
	ClientDefaults(c)
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateClient(c); err != nil {
			b.Fatal(err)
		}
	}
}
