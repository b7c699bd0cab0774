package oidc

import (
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"tutela"
	"tutela/sqlstore"
)

// Limits on a client registration.
const (
	MaxClientNameRunes  = 100
	MaxRedirectURIs     = 10
	MaxRedirectURIBytes = 2000
	// MinAccessTokenTTL and MaxAccessTokenTTL bound a client's own access-token lifetime (0:
	// the server's): short enough that a leaked bearer token dies soon (RFC 9700 §4.10.2),
	// long enough not to turn every API call into a refresh.
	MinAccessTokenTTL = 60
	MaxAccessTokenTTL = 3600
)

// ClientScopes are the scopes a client may be registered for.
var ClientScopes = []string{"openid", "profile", "email", "roles", "offline_access"}

// ClientGrantTypes are the grants a relying party may use. No implicit (RFC 9700 §2.1.2: tokens
// in the front channel leak), no password (§2.4: the client sees the password), no
// client_credentials: service accounts are the machine clients.
var ClientGrantTypes = []string{"authorization_code", "refresh_token"}

// IDTokenAlgs are the ID-token signature algorithms a client may ask for.
var IDTokenAlgs = []string{"EdDSA", "ES256", "RS256"}

// ClientDefaults fills what a registration left out: scopes [openid], the authorization code
// and refresh grants, EdDSA ID tokens, and the authentication method its type allows (a web
// server keeps a secret; a native or browser application cannot, RFC 8252 §8.4).
func ClientDefaults(c *sqlstore.OIDCClient) {
	c.Name = strings.TrimSpace(c.Name)
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid"}
	}
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = slices.Clone(ClientGrantTypes)
	}
	if c.IDTokenAlg == "" {
		c.IDTokenAlg = "EdDSA"
	}
	if c.AuthMethod == "" {
		switch c.AppType {
		case sqlstore.AppWeb:
			c.AuthMethod = sqlstore.ClientSecretBasic
		case sqlstore.AppNative, sqlstore.AppUserAgent:
			c.AuthMethod = sqlstore.AuthNone
		}
	}
	if c.RedirectURIs == nil {
		c.RedirectURIs = []string{}
	}
	if c.PostLogoutRedirectURIs == nil {
		c.PostLogoutRedirectURIs = []string{}
	}
}

// ValidateClient checks a registration against RFC 9700, RFC 8252 and OpenID Connect Dynamic
// Client Registration §2, and returns every problem at once: errors.Join of one field error
// (tutela.FieldErrorf) per problem, in field order, so the first names the first bad field.
func ValidateClient(c *sqlstore.OIDCClient) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, tutela.FieldErrorf(field, format, args...))
	}

	if n := utf8.RuneCountInString(c.Name); n == 0 || n > MaxClientNameRunes || strings.TrimSpace(c.Name) != c.Name {
		bad("name", "name must be 1-%d characters, without surrounding spaces", MaxClientNameRunes)
	} else if !tutela.ValidText(c.Name) {
		errs = append(errs, tutela.InvalidText("name"))
	}
	switch c.AppType {
	case sqlstore.AppWeb:
		if c.AuthMethod != sqlstore.ClientSecretBasic && c.AuthMethod != sqlstore.PrivateKeyJWT {
			bad("token_endpoint_auth_method", "a web client authenticates with client_secret_basic or private_key_jwt")
		}
	case sqlstore.AppNative, sqlstore.AppUserAgent:
		// RFC 8252 §8.5: a secret shipped in an app or a page is public; PKCE is the proof.
		if c.AuthMethod != sqlstore.AuthNone {
			bad("token_endpoint_auth_method", "a %s client cannot keep a secret: its auth method is none (PKCE)", c.AppType)
		}
		// Anyone can use a public client's ID with a redirect they receive: the user is asked
		// every time (RFC 8252 §8.6, ASVS 10.7.1).
		if c.SkipConsent {
			bad("skip_consent", "a %s client's identity is not assured: its users are always asked for consent", c.AppType)
		}
	default:
		bad("application_type", "application_type must be web, native or user_agent")
	}

	if len(c.RedirectURIs) == 0 || len(c.RedirectURIs) > MaxRedirectURIs {
		bad("redirect_uris", "register 1-%d redirect URIs", MaxRedirectURIs)
	}
	for _, u := range c.RedirectURIs {
		if msg := redirectProblem(c.AppType, u); msg != "" {
			bad("redirect_uris", "%s", msg)
		}
	}
	if len(c.PostLogoutRedirectURIs) > MaxRedirectURIs {
		bad("post_logout_redirect_uris", "register at most %d post-logout redirect URIs", MaxRedirectURIs)
	}
	for _, u := range c.PostLogoutRedirectURIs {
		if msg := redirectProblem(c.AppType, u); msg != "" {
			bad("post_logout_redirect_uris", "%s", msg)
		}
	}
	if c.BackchannelLogoutURI != "" {
		// OIDC Back-Channel Logout §2.2: the server calls it, so it is a web endpoint whatever
		// the client's type.
		if msg := redirectProblem(sqlstore.AppWeb, c.BackchannelLogoutURI); msg != "" {
			bad("backchannel_logout_uri", "%s", msg)
		}
	}

	for _, s := range c.Scopes {
		if !slices.Contains(ClientScopes, s) {
			bad("scopes", "scope %q is not one of %s", clip(s), strings.Join(ClientScopes, ", "))
		}
	}
	if !slices.Contains(c.Scopes, "openid") {
		bad("scopes", "scopes must include openid")
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(ClientGrantTypes, g) {
			bad("grant_types", "grant type %q is not allowed: only authorization_code and refresh_token", clip(g))
		}
	}
	if !slices.Contains(c.GrantTypes, "authorization_code") {
		bad("grant_types", "grant_types must include authorization_code")
	}
	if !slices.Contains(IDTokenAlgs, c.IDTokenAlg) {
		bad("id_token_signed_response_alg", "id_token_signed_response_alg must be EdDSA, ES256 or RS256")
	}
	if t := c.AccessTokenTTL; t != 0 && (t < MinAccessTokenTTL || t > MaxAccessTokenTTL) {
		bad("access_token_ttl_seconds", "access_token_ttl_seconds must be 0 (the server's) or %d-%d", MinAccessTokenTTL, MaxAccessTokenTTL)
	}
	return errors.Join(errs...)
}

// redirectProblem says what is wrong with u as a redirect URI of a client of appType, or "".
// Redirect URIs are matched exactly at use (RFC 9700 §4.1.3), so registration refuses anything
// that could make an exact match mean more than one place: wildcards, fragments (OAuth 2.0
// §3.1.2), userinfo (a phishing aid: https://good@evil), relative references.
func redirectProblem(appType, u string) string {
	if len(u) > MaxRedirectURIBytes {
		return "a redirect URI is longer than 2000 characters"
	}
	if !utf8.ValidString(u) || strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "a redirect URI contains spaces or control characters"
	}
	if strings.Contains(u, "*") {
		return "wildcards are not allowed in redirect URIs: " + clip(u)
	}
	p, err := url.Parse(u)
	if err != nil || !p.IsAbs() || p.Opaque != "" {
		return "a redirect URI must be an absolute URI: " + clip(u)
	}
	if p.Fragment != "" || strings.Contains(u, "#") {
		return "a redirect URI must not have a fragment: " + clip(u)
	}
	if p.User != nil {
		return "a redirect URI must not carry userinfo: " + clip(u)
	}
	scheme := p.Scheme // url.Parse lower-cases it
	switch {
	case scheme == "https":
		if p.Host == "" || p.Hostname() == "" {
			return "an https redirect URI needs a host: " + clip(u)
		}
		if strings.EqualFold(p.Hostname(), "localhost") {
			return "use a loopback IP literal (127.0.0.1 or [::1]), not localhost (RFC 8252 §8.3): " + clip(u)
		}
		return ""
	case scheme == "http":
		if strings.EqualFold(p.Hostname(), "localhost") {
			return "use a loopback IP literal (127.0.0.1 or [::1]), not localhost (RFC 8252 §8.3): " + clip(u)
		}
		if !loopbackLiteral(p.Hostname()) {
			return "http is allowed only for the loopback IP literals 127.0.0.1 and [::1]; use https: " + clip(u)
		}
		return ""
	case appType == sqlstore.AppNative && strings.Contains(scheme, "."):
		// RFC 8252 §7.1: a private-use scheme in reverse-domain form the app's owner controls.
		// "com.example.app:/cb" has one slash; "com.example.app://cb" names a host, allowed too.
		if p.Host == "" && p.Path == "" {
			return "a private-use redirect URI needs a path: " + clip(u)
		}
		return ""
	case appType == sqlstore.AppNative:
		return "a native redirect URI is https, http on 127.0.0.1 or [::1], or a private-use scheme in reverse-domain form (com.example.app:/cb): " + clip(u)
	default:
		return "a redirect URI must use https (http only on 127.0.0.1 or [::1]): " + clip(u)
	}
}

// loopbackLiteral reports whether host is exactly 127.0.0.1 or ::1, not a name that resolves
// to it (RFC 8252 §8.3: a name can be rebound or shadowed by a hosts file or the network).
func loopbackLiteral(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && (host == "127.0.0.1" || host == "::1") && ip.IsLoopback()
}

// clip shortens s for an error message: a refused value may be long, and the message is echoed.
func clip(s string) string {
	if len(s) > 80 {
		r := []rune(s)
		if len(r) > 80 {
			return string(r[:80]) + "…"
		}
	}
	return s
}

// CheckSigningAlg refuses a client whose ID-token algorithm the key ring does not keep (RS256
// is kept only when auth.token_algs lists it): its sign-ins would fail at the token endpoint.
func CheckSigningAlg(c *sqlstore.OIDCClient, algs []string) error {
	if c.IDTokenAlg == "" || slices.Contains(algs, c.IDTokenAlg) {
		return nil
	}
	return tutela.FieldErrorf("id_token_signed_response_alg", "%s is not among the server's signing algorithms (auth.token_algs: %s)",
		c.IDTokenAlg, strings.Join(algs, ", "))
}
