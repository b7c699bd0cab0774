// Package oidctest runs a whole Tutela — store, identity with second factors, key ring, the
// /v1 API, each tenant's OpenID Provider and whatever hosted pages a test registers — on a
// loopback HTTP server, for tests that drive it as relying parties and browsers do.
package oidctest

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/identity/identitytest"
	"tutela/identity/token"
	"tutela/jobs"
	"tutela/mail"
	"tutela/mfa"
	"tutela/oidc"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
	"tutela/web"
)

// Env is a running Tutela.
type Env struct {
	// URL is the server's base URL, http://localhost:<port> (a host name, not an IP address,
	// so passkeys work: WebAuthn relying-party IDs are domains).
	URL      string
	DB       *sqlstore.DB
	Clock    *clocktest.Clock
	Identity *identity.Service
	Provider *oidc.Provider
	Ring     *token.Ring
	Mail     *mail.Recorder
	Server   *httptest.Server
	Jobs     *jobs.Queue
	// LogoutHTTP sends back-channel logout tokens; a test points its Transport at its relying
	// party (an httptest TLS server's Client().Transport).
	LogoutHTTP *http.Client
	// CSRFKey keys the hosted pages' form tokens.
	CSRFKey []byte
}

// WebPages registers the real hosted pages.
func WebPages(e *Env, mux *http.ServeMux) []string {
	web.New(web.Deps{DB: e.DB, Identity: e.Identity, Flow: e.Provider, Clock: e.Clock.Now, PublicURL: e.URL,
		CSRFKey: e.CSRFKey}).Routes(mux)
	return []string{web.Pattern}
}

// Pages registers hosted pages on mux and returns their patterns; e is complete but for
// the server, which starts after. WebPages registers the real ones.
type Pages func(e *Env, mux *http.ServeMux) []string

// New starts a Tutela on dialect d, with the hosted pages pages registers (nil: none). The
// clock starts now and moves only when the test moves it.
func New(t testing.TB, d sqlstore.Dialect, pages Pages) *Env {
	t.Helper()
	ctx := context.Background()
	e := &Env{Clock: clocktest.New(time.Now().UTC().Truncate(time.Second)), Mail: &mail.Recorder{},
		LogoutHTTP: &http.Client{}, CSRFKey: bytes.Repeat([]byte{5}, 32)}
	e.DB = sqltest.Open(t, d, sqlstore.Options{Clock: e.Clock.Now})
	sqltest.AttachVault(t, e.DB)
	srv := httptest.NewUnstartedServer(nil)
	e.Server = srv
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	e.URL = "http://localhost:" + port

	key := func(b byte) vault.Sealer {
		s, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{b}, 32)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var err error
	e.Ring, err = token.NewRing(ctx, token.Config{Issuer: e.URL, Audience: []string{"tutela", oidc.UserinfoAudience},
		Algs: []token.Alg{token.EdDSA, token.ES256, token.RS256}, Clock: e.Clock.Now}, identity.KeyStore{DB: e.DB}, key(7))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := mfa.New(e.DB, key(9), e.Clock.Now, mfa.WebAuthnConfig{RPID: "localhost", RPDisplayName: "Tutela",
		RPOrigins: []string{e.URL}})
	if err != nil {
		t.Fatal(err)
	}
	hasher := identitytest.FastHasher(t)
	e.Jobs = jobs.New(e.DB, key(8), jobs.Options{})
	e.Identity = identity.New(identity.Deps{DB: e.DB, Hasher: hasher, Policy: password.DefaultPolicy(), Tokens: e.Ring,
		MFA: m, Mailer: e.Mail, Jobs: e.Jobs, PublicURL: e.URL, Clock: e.Clock.Now},
		identity.Config{MFAAllUsers: false})
	e.Provider, err = oidc.New(oidc.Deps{DB: e.DB, Identity: e.Identity, Tokens: e.Ring, PublicURL: e.URL, Clock: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	(&oidc.BackchannelLogout{DB: e.DB, Queue: e.Jobs, Signer: e.Provider, PublicURL: e.URL, HTTPClient: e.LogoutHTTP}).Register()
	hosted := http.NewServeMux()
	e.Provider.Register(hosted)
	patterns := oidc.Patterns
	if pages != nil {
		patterns = append(patterns, pages(e, hosted)...)
	}
	srv.Config.Handler = httpapi.New(httpapi.Deps{DB: e.DB, Identity: e.Identity, Clock: e.Clock.Now, RateRPS: 1000,
		RateBurst: 1000, Hosted: hosted, HostedPatterns: patterns})
	srv.Start()
	t.Cleanup(srv.Close)
	return e
}

// Seed creates tenant slug (when new) and a user with password pw and roles.
func (e *Env) Seed(t testing.TB, slug, email, pw string, roles ...string) (*tutela.Tenant, *tutela.User) {
	t.Helper()
	ctx := context.Background()
	var tn *tutela.Tenant
	var u *tutela.User
	err := e.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		var err error
		tn, err = tx.TenantBySlug(ctx, slug)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			tn = &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
			err = tx.CreateTenant(ctx, tn)
		}
		if err != nil {
			return err
		}
		u = &tutela.User{Email: email, DisplayName: "Person " + slug}
		if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
			return err
		}
		for _, r := range roles {
			if err := tx.Users(tn.ID).Grant(ctx, u.ID, r, "", nil); err != nil {
				return err
			}
		}
		h, err := e.Identity.Hasher.Hash(ctx, pw)
		if err != nil {
			return err
		}
		return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, h)
	})
	if err != nil {
		t.Fatal(err)
	}
	return tn, u
}

// Client registers a relying party with the tenant (defaults: a confidential web client with
// client_secret_basic, scopes openid profile email roles offline_access, both grants) and
// returns it with its secret ("" for a public client).
func (e *Env) Client(t testing.TB, tenantID string, c sqlstore.OIDCClient) (*sqlstore.OIDCClient, string) {
	t.Helper()
	if c.Name == "" {
		c.Name = "Test application"
	}
	if c.AppType == "" {
		c.AppType = sqlstore.AppWeb
	}
	if c.AuthMethod == "" {
		c.AuthMethod = sqlstore.ClientSecretBasic
		if c.AppType != sqlstore.AppWeb {
			c.AuthMethod = sqlstore.AuthNone
		}
	}
	if c.Scopes == nil {
		c.Scopes = []string{"openid", "profile", "email", "roles", "offline_access"}
	}
	if c.GrantTypes == nil {
		c.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	if c.IDTokenAlg == "" {
		c.IDTokenAlg = "EdDSA"
	}
	c.CreatedBy = "test"
	var secret tutela.Secret
	err := e.DB.Update(context.Background(), func(tx *sqlstore.Tx) (err error) {
		secret, err = tx.OIDCClients(tenantID).Create(context.Background(), &c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if secret.IsZero() {
		return &c, ""
	}
	return &c, secret.Reveal()
}

// Session is a signed-in browser session of the /v1 API.
type Session struct {
	ID       string
	UserID   string
	TenantID string
	Cookie   *http.Cookie
	Access   string
}

// SignIn signs in with a password through POST /v1/auth/login.
func (e *Env) SignIn(t testing.TB, slug, email, pw string) *Session {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"tenant": slug, "email": email, "password": pw})
	res, err := http.Post(e.URL+"/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("sign in %s: %d", email, res.StatusCode)
	}
	var g struct {
		AccessToken string `json:"access_token"`
		SessionID   string `json:"session_id"`
		UserID      string `json:"user_id"`
		TenantID    string `json:"tenant_id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&g); err != nil {
		t.Fatal(err)
	}
	s := &Session{ID: g.SessionID, UserID: g.UserID, TenantID: g.TenantID, Access: g.AccessToken}
	for _, c := range res.Cookies() {
		if c.Name == httpapi.SessionCookie {
			s.Cookie = c
		}
	}
	return s
}

// NoRedirects is an HTTP client that hands redirects back instead of following them.
var NoRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout: 10 * time.Second}

// Authorize sends the browser to authURL and returns the authorization request ID the
// provider sends it to the sign-in page with.
func (e *Env) Authorize(t testing.TB, authURL string) string {
	t.Helper()
	res, err := NoRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusFound || !strings.Contains(loc, "/login?id=") {
		t.Fatalf("authorize: %d, Location %q", res.StatusCode, loc)
	}
	return loc[strings.Index(loc, "?id=")+4:]
}

// StepUp records that session proved the second factor method now (what the MFA page does).
func (e *Env) StepUp(t testing.TB, sessionID, method string) {
	t.Helper()
	if err := e.DB.Update(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.StepUp(context.Background(), sessionID, method)
	}); err != nil {
		t.Fatal(err)
	}
}
