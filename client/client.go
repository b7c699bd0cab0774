// Package client is the Go SDK for resource servers that accept Tutela access tokens: net/http
// middleware that authenticates a request's bearer token and authorizes it with Tutela's policy.
//
// Per request, on the hot path, nothing goes over the network:
//
//   - The token's signature is checked against Tutela's JWK Set (/.well-known/jwks.json),
//     fetched once and cached (default 5 min, the server's max-age). A token naming an unknown
//     kid triggers an early refetch, at most once per 10 s, so key rotation is picked up at once
//     but tokens with random kids cannot turn the resource server into a JWKS flooder.
//   - Revocation: the token version and session state live only in Tutela, so the client asks
//     the introspection endpoint (RFC 7662) and caches the answer per token (jti) for
//     RevocationTTL (default 30 s). That TTL is the longest a revoked token (sign-out, password
//     change, disabled user) is still accepted here. Without a service account (ClientID empty)
//     revocation is not checked at all and a revoked token is accepted until it expires (at
//     most the access-token TTL, 5 min by default): a deliberate trade-off a deployment must
//     choose knowingly.
//   - Authorization is evaluated locally with authz.Decide when a PolicySource (a policy
//     snapshot) is configured; otherwise, or when the snapshot has no policy for the caller,
//     the client asks POST /v1/authz/check with the caller's own token and caches the decision
//     for CheckTTL (default 5 s).
//   - Step-up is enforced, as Tutela enforces it for its own routes: a sensitive action
//     (EXPORT, DELETE, MANAGE, APPROVE) or RED data needs a second factor proved within the
//     last 5 minutes. Without one, Require answers 401 step_up_required with the RFC 9470
//     challenge (acr_values="urn:tutela:acr:mfa", max_age=300) and Authorize refuses. The
//     token proves a second factor only when its amr names one, and then at its auth_time: the
//     session's latest sign-in or step-up (RFC 9470), so after POST /v1/auth/step-up the
//     caller refreshes its access token and the new one passes; with the check API, Tutela
//     answering that no step-up is needed (it knows the session's step-ups) is honoured too.
//     Service accounts are never asked to step up.
//
// Every failure is refused (fail closed): a token that cannot be checked for revocation, or a
// decision Tutela cannot be asked for, is 503, never an allow.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tutela"
	"tutela/authz"
)

// Defaults and bounds of Config.
const (
	DefaultJWKSRefresh   = 5 * time.Minute
	DefaultRevocationTTL = 30 * time.Second
	DefaultCheckTTL      = 5 * time.Second
	// MaxRevocationTTL bounds how long a revoked token can stay accepted because of this cache.
	MaxRevocationTTL = 5 * time.Minute
	// MaxCheckTTL bounds how long a revoked permission can stay allowed because of this cache.
	MaxCheckTTL = time.Minute

	// JWKSMinInterval is the rate limit on JWKS fetches, whatever triggers them (an unknown kid,
	// an expired cache, a failed fetch): tokens with random kids cost Tutela one request per
	// interval per resource server.
	JWKSMinInterval = 10 * time.Second

	// leeway tolerates clock skew between Tutela and the resource server for exp, nbf and iat;
	// the same as the server's default.
	leeway = 30 * time.Second
	// maxTokenLifetime refuses tokens whose exp−iat exceeds what Tutela can issue (token.MaxTTL).
	maxTokenLifetime = time.Hour
	// maxTokenLen bounds the work an unauthenticated token can cause (same as the server).
	maxTokenLen = 8 << 10
	// maxCacheEntries bounds each cache; entries need a verified token, so this is a safety net
	// rather than the first defence.
	maxCacheEntries = 50_000
	// fetchTimeout bounds a JWKS fetch, which runs detached from the request that caused it.
	fetchTimeout = 10 * time.Second
)

// PolicySource returns the policy snapshot of one principal, e.g. from a periodic export of
// Tutela's policies. It returns (nil, nil) when it has no policy for the principal; the client
// then asks Tutela's check API. It is called on every authorization, so it should read memory.
type PolicySource func(ctx context.Context, tenant, subject string) (*authz.Policy, error)

// Config configures a Client. Zero values take the defaults.
type Config struct {
	// BaseURL is Tutela's URL, e.g. https://tutela.example.org. It must be https unless the host
	// is a loopback address or AllowPlaintext is set: bearer tokens and the service account's
	// secret go to it.
	BaseURL string
	// Audience is this resource server's identifier, registered in Tutela's auth.resources; a
	// token must list it in aud. Callers get such tokens by asking Tutela for this resource
	// (RFC 8707: "resource" at POST /v1/auth/refresh or /v1/oauth/token); a token for another
	// resource server, or for Tutela's own API, is refused.
	Audience string
	// Issuer is Tutela's issuer identifier (auth.issuer); a token's iss must equal it.
	Issuer string
	// ClientID and ClientSecret are a service account (tutela service-account create) used for
	// introspection, i.e. revocation checks. Empty ClientID disables revocation checks; see the
	// package documentation for what that costs.
	ClientID     string
	ClientSecret tutela.Secret
	// HTTPClient defaults to a client with a 10 s timeout that does not follow redirects.
	HTTPClient *http.Client
	// JWKSRefresh is how long the JWK Set is cached (default 5 min).
	JWKSRefresh time.Duration
	// RevocationTTL is how long an introspection answer is cached per token (default 30 s, at
	// most MaxRevocationTTL).
	RevocationTTL time.Duration
	// CheckTTL is how long a decision of the check API is cached per (token, request) (default
	// 5 s, at most MaxCheckTTL). Local decisions are not cached.
	CheckTTL time.Duration
	// Policies, when set, makes authorization local; see PolicySource.
	Policies PolicySource
	// AllowPlaintext allows an http:// BaseURL on a non-loopback host, e.g. inside a mesh that
	// encrypts traffic itself.
	AllowPlaintext bool
	// Clock defaults to tutela.SystemClock.
	Clock tutela.Clock
	// Logger receives failures the caller only sees as a generic 401/503 (default: discard).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout: 10 * time.Second,
			// A redirect would resend the token being introspected or checked to wherever
			// Tutela (or something impersonating it) points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	if c.RevocationTTL == 0 {
		c.RevocationTTL = DefaultRevocationTTL
	}
	if c.CheckTTL == 0 {
		c.CheckTTL = DefaultCheckTTL
	}
	if c.Clock == nil {
		c.Clock = tutela.SystemClock
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return c
}

// validate reports every problem at once.
func (c Config) validate() error {
	var errs []error
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "":
		errs = append(errs, errors.New("base URL is required"))
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("base URL %q must be an absolute http(s) URL without credentials, query or fragment", c.BaseURL))
	case u.Scheme == "http" && !c.AllowPlaintext && !tutela.IsLoopbackHost(u.Hostname()):
		errs = append(errs, fmt.Errorf("base URL %q is plain http on a non-loopback host; use https (or set AllowPlaintext)", c.BaseURL))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("audience is required"))
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if c.ClientID == "" && !c.ClientSecret.IsZero() {
		errs = append(errs, errors.New("client secret given without client ID"))
	}
	if c.ClientID != "" && c.ClientSecret.IsZero() {
		errs = append(errs, errors.New("client ID given without client secret"))
	}
	if c.JWKSRefresh < JWKSMinInterval {
		errs = append(errs, fmt.Errorf("JWKS refresh %v must be at least %v", c.JWKSRefresh, JWKSMinInterval))
	}
	if c.RevocationTTL < 0 || c.RevocationTTL > MaxRevocationTTL {
		errs = append(errs, fmt.Errorf("revocation TTL %v must be between 0 and %v", c.RevocationTTL, MaxRevocationTTL))
	}
	if c.CheckTTL < 0 || c.CheckTTL > MaxCheckTTL {
		errs = append(errs, fmt.Errorf("check TTL %v must be between 0 and %v", c.CheckTTL, MaxCheckTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("client: invalid config: %w", err)
	}
	return nil
}

// Client verifies Tutela access tokens and authorizes requests. It is safe for concurrent use.
type Client struct {
	cfg Config

	keys        atomic.Pointer[keySet]
	fetchMu     sync.Mutex   // serialises JWKS fetches
	lastAttempt atomic.Int64 // unix nanoseconds of the last JWKS fetch attempt; 0: none

	revocation *cache[introspection]
	decisions  *cache[authz.Decision]
}

// New returns a Client for cfg. It does no network call; the JWK Set is fetched by the first
// request, or by Refresh (call it at startup to fail fast on a wrong BaseURL).
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Client{
		cfg:        cfg,
		revocation: newCache[introspection](maxCacheEntries),
		decisions:  newCache[authz.Decision](maxCacheEntries),
	}, nil
}

// Claims are the verified claims of an access token (RFC 9068 §2.2).
type Claims struct {
	Issuer       string
	Subject      string // the user or service account ID
	Audience     []string
	Expiry       time.Time
	IssuedAt     time.Time
	NotBefore    time.Time
	ID           string // jti
	SessionID    string // sid; empty for service-account tokens
	Tenant       string // the tenant ID
	TokenVersion int64  // tv
	AMR          []string
	AuthTime     time.Time
	Scope        string
}

// stepUpAt is the latest time the token proves the principal held a second factor; zero when
// it proves none, so a password-only session never passes a step-up check here.
//
// Tutela sets auth_time to the session's latest authentication event — its sign-in or a later
// step-up — and amr to the methods the session has proved; a session opened by a password
// change has amr ["pwd"] only. So auth_time counts only when amr names a second factor, and it
// is then no later than the last factor proved. A token with auth_time after its iat claims an
// authentication after its own issue and is not trusted at all.
func (c *Claims) stepUpAt() time.Time {
	if c.AuthTime.After(c.IssuedAt) {
		return time.Time{}
	}
	for _, m := range c.AMR {
		if authz.SecondFactorAMR(m) {
			return c.AuthTime
		}
	}
	return time.Time{}
}

// service reports whether the token belongs to a service account: those have a scope and no
// session; a user's token, also one issued to an OpenID relying party with a scope, always
// names its session (identity's token.Claims.Service tells them apart the same way). A service
// account has no second factor to step up with; its permission set is the control.
func (c *Claims) service() bool { return c.SessionID == "" && c.Scope != "" }

// Reasons a token is refused. Verify wraps them in a *tutela.Error with code EUNAUTHENTICATED
// and the message "invalid access token"; errors.Is finds them for logs and tests.
var (
	ErrMalformed    = errors.New("malformed token")
	ErrAlgorithm    = errors.New("algorithm not allowed")
	ErrUnknownKey   = errors.New("missing or unknown key ID")
	ErrBadSignature = errors.New("bad signature")
	ErrIssuer       = errors.New("wrong issuer")
	ErrAudience     = errors.New("wrong audience")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token not yet valid")
	ErrRevoked      = errors.New("token revoked or inactive")
)

func unauthenticated(err error) error {
	return &tutela.Error{Code: tutela.EUNAUTHENTICATED, Message: "invalid access token", Err: err}
}

func unavailable(err error) error {
	return &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "authorization service unavailable", Err: err}
}

// do sends a request to Tutela and returns the status and (bounded) body.
func (c *Client) do(req *http.Request, limit int64) (int, []byte, error) {
	res, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(body)) > limit {
		return 0, nil, fmt.Errorf("%s %s: response larger than %d bytes", req.Method, req.URL.Path, limit)
	}
	return res.StatusCode, body, nil
}

// statusError classifies an unexpected status from Tutela: overload and server errors are
// "unavailable" (worth retrying), anything else is a misconfiguration (internal).
func statusError(op string, status int) error {
	err := fmt.Errorf("%s: unexpected status %d", op, status)
	if status >= 500 || status == http.StatusTooManyRequests {
		return unavailable(err)
	}
	return tutela.Wrap(err, "authorization misconfigured")
}
