package oidc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"tutela"
	"tutela/identity"
	"tutela/identity/token"
	"tutela/sqlstore"
)

// UserinfoAudience is the audience of the access tokens the provider gives relying parties
// (identity.UserinfoAudience).
const UserinfoAudience = identity.UserinfoAudience

// Scopes the provider knows. roles adds the user's roles and permissions in the tenant.
var supportedScopes = []string{"openid", "profile", "email", "roles", "offline_access"}

// Deps are the provider's collaborators.
type Deps struct {
	DB       *sqlstore.DB
	Identity *identity.Service
	Tokens   *token.Ring
	// PublicURL is where users and relying parties reach Tutela (no trailing slash); each
	// tenant's issuer is PublicURL + "/t/" + slug.
	PublicURL string
	Clock     tutela.Clock
	Log       *slog.Logger
	// DBTimeout bounds the database time of a record written after the request that caused it
	// may have ended (a refused service account's auth.client event): default 5 s, as the
	// API's (config database.request_timeout).
	DBTimeout time.Duration
}

// Provider serves every tenant's OpenID Provider. It keeps one op.Provider per tenant, built
// on first use; everything it knows comes from the store, so any number of nodes can serve.
type Provider struct {
	d   Deps
	mu  sync.Mutex
	ops map[string]*tenantOP // by tenant ID
	// active caches the active tenants' rows by slug for tenantTTL, so a request does not
	// begin with a transaction of its own to find its tenant.
	active map[string]activeTenant
}

// activeTenant is a tenant row read at a time (monotonic clock).
type activeTenant struct {
	tn *tutela.Tenant
	at time.Time
}

// tenantTTL bounds how long a node's provider keeps answering for a tenant disabled or renamed
// on another node: the tenant's status is read again after it. Sessions, codes and tokens are
// checked against the store on every request regardless.
const tenantTTL = time.Second

// tenantOP is one tenant's provider.
type tenantOP struct {
	p        *Provider
	tenantID string
	slug     string
	issuer   string
	op       *op.Provider
	handler  http.Handler
}

// New returns the provider. PublicURL must be an absolute http(s) URL; plain http is only
// accepted for loopback addresses (development and tests).
func New(d Deps) (*Provider, error) {
	d.PublicURL = strings.TrimRight(d.PublicURL, "/")
	if !strings.HasPrefix(d.PublicURL, "https://") && !loopbackHTTP(d.PublicURL) {
		return nil, errors.New("oidc: the public URL must be https (plain http only on a loopback address)")
	}
	if d.Clock == nil {
		d.Clock = tutela.SystemClock
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.DBTimeout <= 0 {
		d.DBTimeout = 5 * time.Second
	}
	return &Provider{d: d, ops: map[string]*tenantOP{}}, nil
}

// loopbackHTTP reports whether u is a plain-http URL of a loopback address.
func loopbackHTTP(u string) bool {
	for _, p := range []string{"http://127.0.0.1", "http://[::1]", "http://localhost"} {
		if u == p || strings.HasPrefix(u, p+":") || strings.HasPrefix(u, p+"/") {
			return true
		}
	}
	return false
}

// Issuer is the tenant's issuer identifier.
func (p *Provider) Issuer(slug string) string { return p.d.PublicURL + "/t/" + slug }

// Endpoints below the issuer. The paths are relative to it.
var endpoints = op.Endpoints{
	Authorization: op.NewEndpoint("authorize"),
	Token:         op.NewEndpoint("oauth/token"),
	Introspection: op.NewEndpoint("oauth/introspect"),
	Userinfo:      op.NewEndpoint("userinfo"),
	Revocation:    op.NewEndpoint("oauth/revoke"),
	EndSession:    op.NewEndpoint("end_session"),
	JwksURI:       op.NewEndpoint("keys"),
}

// Patterns are the http.ServeMux patterns the provider answers (the hosted pages have the
// rest of /t/{tenant}/).
var Patterns = []string{
	"/t/{tenant}/.well-known/openid-configuration",
	"/t/{tenant}/authorize",
	"/t/{tenant}/oauth/token",
	"/t/{tenant}/oauth/introspect",
	"/t/{tenant}/oauth/revoke",
	"/t/{tenant}/userinfo",
	"/t/{tenant}/end_session",
	"/t/{tenant}/keys",
	"POST /t/{tenant}" + parPath,
}

// parPath is the pushed authorization request endpoint (RFC 9126), below the issuer.
const parPath = "/par"

// Register adds the provider's patterns to mux.
func (p *Provider) Register(mux *http.ServeMux) {
	for _, pat := range Patterns {
		mux.Handle(pat, p)
	}
}

// ServeHTTP answers one request to a tenant's provider: unknown and inactive tenants are 404.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("tenant")
	t, err := p.tenant(r.Context(), slug)
	if err != nil {
		status := http.StatusNotFound
		if tutela.ErrorCode(err) == tutela.EWRONGREGION {
			status = http.StatusMisdirectedRequest
		} else if tutela.ErrorCode(err) != tutela.ENOTFOUND {
			status = http.StatusServiceUnavailable
		}
		writeOAuthError(w, status, "invalid_request", "unknown issuer")
		return
	}
	rel := strings.TrimPrefix(r.URL.Path, "/t/"+slug)
	ctx := withState(r.Context(), &reqState{tenantID: t.tenantID, authenticatesClient: r.Method == http.MethodPost &&
		(rel == parPath || rel == endpoints.Token.Relative() || rel == endpoints.Introspection.Relative() || rel == endpoints.Revocation.Relative())})
	r = r.WithContext(ctx)
	switch {
	case rel == parPath && r.Method == http.MethodPost:
		t.pushAuthorization(w, r)
		return
	case rel == endpoints.Token.Relative() && r.Method == http.MethodPost:
		if !t.dpopTokenRequest(w, r) {
			return
		}
	case rel == endpoints.Userinfo.Relative():
		if !t.dpopUserinfo(w, r) {
			return
		}
	}
	http.StripPrefix("/t/"+slug, t.handler).ServeHTTP(w, r)
}

// tenant returns the provider of the active tenant slug, building it on first use.
func (p *Provider) tenant(ctx context.Context, slug string) (*tenantOP, error) {
	if slug == "" || len(slug) > 63 {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	p.mu.Lock()
	c, ok := p.active[slug]
	p.mu.Unlock()
	tn := c.tn
	if !ok || time.Since(c.at) >= tenantTTL {
		at := time.Now()
		err := p.d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
			tn, err = tx.TenantBySlug(ctx, slug)
			return err
		})
		if err == nil && tn.Status != tutela.StatusActive {
			err = tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
		}
		p.mu.Lock()
		delete(p.active, slug)
		if err == nil {
			if p.active == nil {
				p.active = map[string]activeTenant{}
			}
			p.active[slug] = activeTenant{tn: tn, at: at}
		}
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.ops[tn.ID]; t != nil && t.slug == tn.Slug {
		return t, nil
	}
	t, err := p.build(tn)
	if err != nil {
		return nil, err
	}
	p.ops[tn.ID] = t
	return t, nil
}

// build makes a tenant's op.Provider over the store.
func (p *Provider) build(tn *tutela.Tenant) (*tenantOP, error) {
	t := &tenantOP{p: p, tenantID: tn.ID, slug: tn.Slug, issuer: p.Issuer(tn.Slug)}
	st := &storage{t: t}
	cfg := &op.Config{
		CodeMethodS256:                    true,
		AuthMethodPost:                    false,
		AuthMethodPrivateKeyJWT:           true,
		GrantTypeRefreshToken:             true,
		RequestObjectSupported:            false,
		SupportedUILocales:                []language.Tag{language.English, language.French, language.Arabic},
		SupportedScopes:                   supportedScopes,
		SupportedClaims:                   supportedClaims,
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
		DefaultLogoutRedirectURI:          t.issuer + "/logged-out",
	}
	var algs []string
	for _, a := range p.d.Tokens.Algs() {
		algs = append(algs, string(a))
	}
	opts := []op.Option{op.WithCrypto(tokenCrypto{}), op.WithLogger(p.d.Log),
		// id_token_hint (end_session, authorize) is one of our own ID tokens, in any algorithm
		// the ring signs with; the library's default is RS256 alone.
		op.WithIDTokenHintVerifierOpts(op.WithSupportedIDTokenHintSigningAlgorithms(algs...))}
	if !strings.HasPrefix(t.issuer, "https://") {
		opts = append(opts, op.WithAllowInsecure())
	}
	prov, err := op.NewProvider(cfg, st, op.StaticIssuer(t.issuer), opts...)
	if err != nil {
		return nil, err
	}
	t.op = prov
	srv := &server{LegacyServer: op.NewLegacyServer(prov, endpoints), t: t}
	// CORS: the library's default answers every origin with credentials on every endpoint.
	// Browser applications need the token, userinfo, keys and discovery endpoints without
	// cookies; nothing cross-origin may use the browser's session.
	t.handler = withResponseFixes(t.issuer, op.RegisterLegacyServer(srv, noCallback, op.WithServerCORSOptions(&cors.Options{
		AllowOriginFunc:  func(string) bool { return true },
		AllowedMethods:   []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "DPoP"},
		ExposedHeaders:   []string{"WWW-Authenticate", "DPoP-Nonce"},
		AllowCredentials: false,
	})))
	return t, nil
}

// supportedClaims are the claims the provider can return.
var supportedClaims = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
	"at_hash", "c_hash", "name", "email", "email_verified", "roles", "permissions", "tenant"}

// loginURL is where the provider sends the browser to sign in for request id.
func (t *tenantOP) loginURL(id string) string { return t.issuer + "/login?id=" + id }
