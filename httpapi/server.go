// Package httpapi is Tutela's HTTP adapter: routing, the middleware chain every route gets, and
// the JSON handlers over the domain services. It holds no state of its own beyond short-lived
// caches, so any number of nodes can serve behind a load balancer.
package httpapi

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"tutela"
	"tutela/ai/upstream"
	"tutela/authz"
	"tutela/files/intake"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// Deps is what the server needs. Zero values get sensible defaults where one exists.
type Deps struct {
	DB             *sqlstore.DB
	Identity       *identity.Service
	Logger         *slog.Logger
	Clock          tutela.Clock
	TLS            bool // the listener serves TLS itself (turns on HSTS)
	TrustedProxies []netip.Prefix
	BodyLimit      int64
	RateRPS        float64
	RateBurst      int
	// RateShareEvery, on PostgreSQL, makes the per-client rate limit hold across every node on
	// the database: each node flushes its counts this often (config
	// http.rate_limit.share_every). Zero, or SQLite: each node limits alone.
	RateShareEvery time.Duration
	// AuditVerifierKey is the public key that verifies audit checkpoints (a signed-note
	// verifier key), published at /v1/audit/public-key.
	AuditVerifierKey string
	// MaskKey keys the stable hashes of masked fields (derive it from the master key).
	MaskKey []byte
	// EnforceStepUp makes sensitive actions (EXPORT, DELETE, MANAGE, APPROVE, RED data) need
	// a second factor verified in the last 5 minutes. Production always sets it; tests of
	// unrelated features may leave it off.
	EnforceStepUp bool
	// Keys is the vault, for GET /v1/keys (nil: not served).
	Keys *vault.Vault
	// MetricsToken, when set, is the bearer token MetricsHandler requires.
	MetricsToken tutela.Secret
	// DBTimeout bounds the database time of one request (default 5 s): a database that stops
	// answering then costs a client that long and a 503, not a hang (config
	// database.request_timeout).
	DBTimeout time.Duration
	// DSR is the data-subject request deadline policy (config dsr.*); the zero value is
	// privacy.DefaultDSRPolicy.
	DSR privacy.DSRPolicy
	// UnmergeWindow is how long an identity merge can be undone (config privacy.unmerge_window);
	// zero is DefaultUnmergeWindow.
	UnmergeWindow time.Duration
	// Hosted serves each tenant's OpenID Provider and hosted pages (/t/{tenant}/...) at the
	// HostedPatterns, behind the same middleware as the API (request ID, limits, audit).
	Hosted         http.Handler
	HostedPatterns []string
	// AI sends the AI gateway's requests to providers (nil: /v1/ai/ answers 501 not_configured).
	AI *upstream.Client
	// Files is the file intake (nil: uploads and downloads answer 501 not_configured). Links
	// are signed with Keys.
	Files *intake.Service
	// FileTransferTimeout bounds one upload's body or one download (config
	// files.transfer_timeout; default 30 minutes).
	FileTransferTimeout time.Duration
	// MaxConcurrentUploads is how many upload bodies this node takes at once (config
	// files.max_concurrent_uploads; default 32); past it, 503 with Retry-After.
	MaxConcurrentUploads int
	// FileIdleTimeout ends an upload whose body sends nothing for this long (default a minute).
	FileIdleTimeout time.Duration
	// Tracer records a span per request (nil or a no-op provider: none, docs/tracing.md);
	// TrustTraceparent continues a client's W3C trace instead of starting a new one.
	Tracer           trace.TracerProvider
	TrustTraceparent bool
	// Compliance answers GET /v1/compliance/report (nil: 501 not_configured).
	Compliance *ComplianceSource
}

// Route is one registered endpoint.
type Route struct {
	Method  string
	Pattern string
	// Public routes need no credentials (probes, discovery, token exchanges that carry their
	// own proof). Everything else must answer 401 without them.
	Public bool
}

// Server is the HTTP API.
type Server struct {
	d         Deps
	mux       *http.ServeMux
	handler   http.Handler
	routes    []Route
	reg       *prometheus.Registry
	aiMetrics *aiMetrics
	masker    *authz.Masker
	uploads   chan struct{} // a slot per upload in progress
	limiter   *middleware.RateLimiter
	migrated  atomic.Bool // readyz saw every migration applied
}

// New builds the server and its routes.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = tutela.SystemClock
	}
	if d.BodyLimit <= 0 {
		d.BodyLimit = 1 << 20
	}
	if d.RateRPS <= 0 {
		d.RateRPS, d.RateBurst = 20, 40
	}
	if d.DBTimeout <= 0 {
		d.DBTimeout = 5 * time.Second
	}
	if d.FileTransferTimeout <= 0 {
		d.FileTransferTimeout = 30 * time.Minute
	}
	if d.MaxConcurrentUploads <= 0 {
		d.MaxConcurrentUploads = 32
	}
	if d.FileIdleTimeout <= 0 {
		d.FileIdleTimeout = time.Minute
	}
	s := &Server{d: d, mux: http.NewServeMux(), reg: prometheus.NewRegistry(), masker: authz.NewMasker(d.MaskKey),
		uploads: make(chan struct{}, d.MaxConcurrentUploads)}
	s.routesInit()
	m := newMetrics(s.reg, d.DB)
	s.aiMetrics = newAIMetrics(s.reg)
	limitOpts := []middleware.RateLimitOption{middleware.ExemptPaths("/healthz", "/readyz")}
	if d.RateShareEvery > 0 && d.DB != nil && d.DB.Dialect() == sqlstore.Postgres {
		limitOpts = append(limitOpts, middleware.ShareCounts(rateCounts{d.DB}))
	}
	limiter := middleware.NewRateLimiter(d.RateRPS, d.RateBurst, d.Clock, limitOpts...)
	s.limiter = limiter
	// Order matters: the logger and request ID come first so everything below logs with them;
	// metrics and the access log sit outside Recover so a panic is counted and logged as the
	// 500 it becomes; the rate limiter runs before any body is read.
	s.handler = middleware.Chain(http.HandlerFunc(s.dispatch),
		middleware.WithLogger(d.Logger),
		middleware.RequestID,
		middleware.Trace(d.Tracer, d.TrustTraceparent, s.route),
		middleware.ClientIP{Trusted: d.TrustedProxies}.Middleware,
		m.middleware(s.route),
		middleware.AccessLog,
		middleware.Recover,
		middleware.SecurityHeaders(d.TLS),
		limiter.Middleware,
		requestMeta,
		s.auditRequests,
		boundDB(d.DBTimeout),
		middleware.BodyLimitExcept(d.BodyLimit, isUpload),
	)
	return s
}

func (s *Server) handle(method, pattern string, public bool, h http.HandlerFunc) {
	s.routes = append(s.routes, Route{Method: method, Pattern: pattern, Public: public})
	s.mux.Handle(method+" "+pattern, h)
}

func (s *Server) routesInit() {
	for _, p := range s.d.HostedPatterns {
		s.mux.Handle(p, s.d.Hosted)
	}
	s.handle("GET", "/healthz", true, s.healthz)
	s.handle("GET", "/readyz", true, s.readyz)
	s.handle("GET", "/v1/openapi.json", true, serveOpenAPI)
	s.handle("GET", "/.well-known/jwks.json", true, s.jwks)
	s.handle("POST", "/v1/auth/setup", true, s.setup)
	s.handle("POST", "/v1/auth/login", true, s.login)
	s.handle("POST", "/v1/auth/refresh", true, s.refresh)
	s.handle("POST", "/v1/auth/password/reset", true, s.resetPassword)
	s.handle("POST", "/v1/auth/password/forgot", true, s.forgotPassword)
	s.handle("POST", "/v1/auth/introspect", true, s.introspect)
	s.handle("POST", "/v1/oauth/token", true, s.token)
	if s.d.Identity != nil && s.d.Identity.MFA != nil {
		s.handle("POST", "/v1/auth/mfa", true, s.completeMFA)
		s.handle("POST", "/v1/auth/mfa/webauthn/options", true, s.mfaWebAuthnOptions)
		s.handle("POST", "/v1/auth/step-up", false, s.authed(false, s.stepUp))
		s.handle("POST", "/v1/auth/step-up/webauthn/options", false, s.authed(false, s.stepUpWebAuthnOptions))
		s.handle("GET", "/v1/auth/mfa/factors", false, s.authed(true, s.listFactors))
		s.handle("POST", "/v1/auth/mfa/totp", false, s.authed(true, s.beginTOTP))
		s.handle("POST", "/v1/auth/mfa/totp/confirm", false, s.authed(true, s.confirmTOTP))
		s.handle("POST", "/v1/auth/mfa/recovery-codes", false, s.authed(true, s.newRecoveryCodes))
		s.handle("POST", "/v1/auth/mfa/webauthn/register/options", false, s.authed(true, s.webAuthnRegisterOptions))
		s.handle("POST", "/v1/auth/mfa/webauthn/register", false, s.authed(true, s.webAuthnRegister))
		s.handle("DELETE", "/v1/auth/mfa/factors/{id}", false, s.authed(false, s.removeFactor))
		s.handle("POST", "/v1/tenants/{tenant}/users/{id}/mfa/reset", false, s.authed(false, s.adminResetMFA))
		s.handle("POST", "/v1/tenants/{tenant}/service-accounts/{sa}/keys", false, s.authed(false, s.registerClientKey))
	}
	s.handle("POST", "/v1/auth/logout", false, s.authed(true, s.logout))
	s.handle("GET", "/v1/auth/me", false, s.authed(true, s.me))
	s.handle("POST", "/v1/auth/password", false, s.authed(true, s.changePassword))
	s.handle("GET", "/v1/auth/sessions", false, s.authed(false, s.listSessions))
	s.handle("DELETE", "/v1/auth/sessions", false, s.authed(false, s.deleteOtherSessions))
	s.handle("DELETE", "/v1/auth/sessions/{id}", false, s.authed(false, s.deleteSession))
	s.handle("POST", "/v1/auth/reauthenticate", false, s.authed(false, s.reauthenticate))
	s.handle("GET", "/v1/security-events", false, s.authed(false, s.securityEvents))
	s.handle("GET", "/v1/audit/events", false, s.authed(false, s.auditEvents))
	s.handle("GET", "/v1/audit/checkpoint", true, s.auditCheckpoint)
	s.handle("GET", "/v1/audit/public-key", true, s.auditPublicKey)
	s.handle("GET", "/v1/audit/proof/inclusion", false, s.authed(false, s.auditInclusion))
	s.handle("GET", "/v1/audit/proof/consistency", true, s.auditConsistency)
	s.handle("POST", "/v1/tenants", false, s.authed(false, s.createTenant))
	s.handle("GET", "/v1/tenants", false, s.authed(false, s.listTenants))
	s.handle("GET", "/v1/tenants/{tenant}", false, s.authed(false, s.getTenant))
	s.handle("PATCH", "/v1/tenants/{tenant}", false, s.authed(false, s.patchTenant))
	s.handle("POST", "/v1/tenants/{tenant}/revoke-sessions", false, s.authed(false, s.revokeTenantSessions))
	s.handle("POST", "/v1/tenants/{tenant}/users", false, s.authed(false, s.createUser))
	s.handle("GET", "/v1/tenants/{tenant}/users", false, s.authed(false, s.listUsers))
	s.handle("GET", "/v1/tenants/{tenant}/users/{id}", false, s.authed(false, s.getUser))
	s.handle("PATCH", "/v1/tenants/{tenant}/users/{id}", false, s.authed(false, s.patchUser))
	s.handle("DELETE", "/v1/tenants/{tenant}/users/{id}", false, s.authed(false, s.deleteUser))
	s.handle("POST", "/v1/tenants/{tenant}/users/{id}/erase", false, s.authed(false, s.eraseUser))
	s.handle("POST", "/v1/tenants/{tenant}/users/{id}/disable", false, s.authed(false, s.setUserStatus(tutela.StatusDisabled)))
	s.handle("POST", "/v1/tenants/{tenant}/users/{id}/enable", false, s.authed(false, s.setUserStatus(tutela.StatusActive)))
	s.handle("POST", "/v1/tenants/{tenant}/users/{id}/revoke-sessions", false, s.authed(false, s.adminRevokeSessions))
	s.handle("POST", "/v1/tenants/{tenant}/users/{id}/unlock", false, s.authed(false, s.adminUnlock))
	s.handle("POST", "/v1/tenants/{tenant}/users/{id}/password-reset", false, s.authed(false, s.adminResetPassword))
	s.handle("GET", "/v1/tenants/{tenant}/users/{id}/access", false, s.authed(false, s.userAccess))
	s.handle("PUT", "/v1/tenants/{tenant}/users/{id}/roles/{role}", false, s.authed(false, s.grantRole))
	s.handle("DELETE", "/v1/tenants/{tenant}/users/{id}/roles/{role}", false, s.authed(false, s.revokeRole))
	s.handle("POST", "/v1/tenants/{tenant}/users/{id}/permissions", false, s.authed(false, s.grantPermission))
	s.handle("DELETE", "/v1/tenants/{tenant}/users/{id}/permissions/{grant}", false, s.authed(false, s.revokePermission))
	s.handle("GET", "/v1/tenants/{tenant}/roles", false, s.authed(false, s.listRoles))
	s.handle("POST", "/v1/tenants/{tenant}/roles", false, s.authed(false, s.createRole))
	s.handle("GET", "/v1/tenants/{tenant}/roles/{role}", false, s.authed(false, s.getRole))
	s.handle("PUT", "/v1/tenants/{tenant}/roles/{role}", false, s.authed(false, s.updateRole))
	s.handle("DELETE", "/v1/tenants/{tenant}/roles/{role}", false, s.authed(false, s.deleteRole))
	s.handle("POST", "/v1/tenants/{tenant}/service-accounts", false, s.authed(false, s.createServiceAccount))
	s.handle("GET", "/v1/tenants/{tenant}/service-accounts", false, s.authed(false, s.listServiceAccounts))
	s.handle("POST", "/v1/tenants/{tenant}/service-accounts/{sa}/secrets", false, s.authed(false, s.addServiceAccountSecret))
	s.handle("DELETE", "/v1/tenants/{tenant}/service-accounts/{sa}/secrets/{secret}", false, s.authed(false, s.revokeServiceAccountSecret))
	s.handle("POST", "/v1/tenants/{tenant}/service-accounts/{sa}/disable", false, s.authed(false, s.disableServiceAccount))
	s.oidcClientRoutes()
	s.handle("POST", "/v1/authz/check", false, s.decisionAPI(s.authzCheck))
	s.handle("POST", "/v1/authz/check/batch", false, s.decisionAPI(s.authzCheckBatch))
	s.handle("GET", "/v1/authz/explain", false, s.authed(false, s.authzExplain))
	s.handle("GET", "/v1/authz/policy", false, s.authed(false, s.authzPolicy))
	s.accessReviewRoutes()
	s.tokenRoutes()
	s.processingRoutes()
	s.aiAdminRoutes()
	s.fileRoutes()
	s.webhookRoutes()
	s.approvalRoutes()
	s.partnerRoutes()
	s.complianceRoutes()
	s.incidentRoutes()
	if s.d.Keys != nil {
		s.handle("GET", "/v1/keys", false, s.authed(false, s.listKeys))
		s.handle("POST", "/v1/keys/rotate", false, s.authed(false, s.rotateKeys))
		s.subjectRoutes()
		s.mergeRoutes()
		s.subjectMinimizedRoutes()
		s.consentRoutes()
		s.dsrRoutes()
		s.aiRoutes()
		s.referralRoutes()
	}
}

// dispatch serves r by its route. Where no route matches it answers in the API's JSON error
// shape what the mux would answer in plain text: 405 method_not_allowed with Allow when the path
// exists under other methods (RFC 9110 §15.5.6; OPTIONS included, since no route serves it), and
// 404 not_found otherwise. A path the mux would redirect to its clean form (an empty segment as
// in /v1/tenants//users, "." or "..") is a 404 too: /v1/tenants//users is not
// /v1/tenants/users, and an API client has no page to be sent to.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if s.route(r) != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	if p := r.URL.EscapedPath(); cleanPath(p) == p {
		// The mux's own answer tells a 405 and its Allow list apart from a 404.
		h, _ := s.mux.Handler(r)
		var probe headerProbe
		h.ServeHTTP(&probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.Header().Get("Allow"))
			middleware.WriteError(w, r, tutela.Errorf(tutela.EMETHODNOTALLOWED, "method not allowed; see the Allow header"))
			return
		}
	}
	middleware.WriteError(w, r, tutela.Errorf(tutela.ENOTFOUND, "no such endpoint"))
}

// route is the pattern that serves r ("GET /v1/tenants/{tenant}"), or "" when none does,
// including for a path that is not in clean form. Metrics and the request audit record label
// requests with it, so an ID in a path never becomes a label.
func (s *Server) route(r *http.Request) string {
	if p := r.URL.EscapedPath(); cleanPath(p) != p {
		return ""
	}
	_, pattern := s.mux.Handler(r)
	return pattern
}

// cleanPath is net/http's canonical form of a request path: rooted, no empty, "." or ".."
// segments, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// headerProbe records the status and headers a handler writes and discards its body.
type headerProbe struct {
	h      http.Header
	status int
}

func (p *headerProbe) Header() http.Header {
	if p.h == nil {
		p.h = http.Header{}
	}
	return p.h
}

func (p *headerProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *headerProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// ServeHTTP serves a request through the full middleware chain.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Routes lists every registered endpoint, for tests that must cover all of them.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	middleware.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// boundDB gives the handler's context a deadline d away. Every store call runs under it (and
// PostgreSQL is told via statement_timeout), so a black-holed or overloaded database fails the
// request with 503 unavailable in d instead of holding it, and a connection, until the client
// gives up. The request audit record, written after the handler, has its own bound.
func boundDB(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/ai/") || isFileTransfer(r) {
				// An inference waits for a provider, for as long as the provider's timeout
				// allows; an upload or download moves a file for as long as the files' transfer
				// timeout allows. Each bounds its own transactions instead.
				next.ServeHTTP(w, r)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// readyz reports ready only when the database answers and no migration is pending, so a load
// balancer holds traffic back from a node that started against an older schema.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), min(2*time.Second, s.d.DBTimeout))
	defer cancel()
	if err := s.d.DB.Ping(ctx); err != nil {
		middleware.Logger(ctx).Warn("readyz: database unreachable", "err", err)
		middleware.WriteError(w, r, tutela.Errorf(tutela.EUNAVAILABLE, "database unreachable"))
		return
	}
	// Once this binary's migrations are all applied they stay applied (a newer node adds only
	// later ones), so the answer is kept: readyz then costs a ping, and a slow migration listing
	// just after an outage cannot hold a healthy node out of the pool.
	if !s.migrated.Load() {
		current, err := s.d.DB.MigrationsCurrent(ctx)
		if err != nil || !current {
			middleware.WriteError(w, r, tutela.Errorf(tutela.EUNAVAILABLE, "database migrations pending"))
			return
		}
		s.migrated.Store(true)
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 document the server publishes.
func OpenAPI() []byte { return openAPIDoc }

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}

// listKeys shows the super-admin every keyset — IDs, purposes, created and rotated dates, where
// the key-encryption key lives — and never key material.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := requireSuperAdmin(p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	views, err := s.d.Keys.Keys(r.Context())
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"kek_uri": s.d.Keys.KEKURI(), "keysets": views})
}

type keysRotateRequest struct {
	Purpose  string `json:"purpose"`
	TenantID string `json:"tenant_id"` // empty: the platform keyset
	approvalFields
}

// rotateKeys gives an existing keyset a new primary key (`tutela keys rotate` over HTTP). It is
// MANAGE on keys, so besides the super-admin role it needs a fresh second factor; rewrap and
// retire stay operator commands at the host, where their progress can be watched. Where the
// policy for keys.rotate of the super-admin's own tenant is on, it waits for approval
// (keyRotationGate).
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := requireSuperAdmin(p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var req keysRotateRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if !slices.Contains(vault.Purposes, req.Purpose) {
		middleware.WriteError(w, r, tutela.Errorf(tutela.EINVALID, "purpose must be one of %s", strings.Join(vault.Purposes, ", ")))
		return
	}
	if req.TenantID != "" && !tutela.ValidID(req.TenantID) {
		middleware.WriteError(w, r, tutela.Errorf(tutela.EINVALID, "tenant_id must be a tenant ID, or empty for the platform"))
		return
	}
	held, err := s.keyRotationGate(r, p, req)
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	ks, err := s.d.Keys.RotateExisting(r.Context(), req.TenantID, req.Purpose)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, vault.ViewOf(ks))
}
