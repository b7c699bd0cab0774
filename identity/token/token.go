// Package token issues and verifies Tutela's access tokens: short-lived JWTs (RFC 9068 "at+jwt")
// signed with a rotating ring of keys whose public halves are published as a JWK Set (RFC 7517)
// and whose private halves are stored sealed by the master key. The ring keeps one rotation
// schedule per configured algorithm (Ed25519 and P-256 by default, RSA 3072 when configured):
// access tokens are signed with the primary one, Ed25519 unless configured otherwise; the others
// sign the OpenID Provider's ID and logout tokens for relying parties that need them (SignJWT).
//
// The verifier is deliberately narrow. It accepts only compact JWS with a protected header of
// exactly {alg, kid, typ}, only the algorithm of the key named by kid (so "none", HMAC with a
// public key as secret, and RSA are refused before any cryptography), only typ at+jwt, and only
// keys this ring loaded from its own store: header-supplied keys (jwk, jku, x5c, x5u) and crit
// extensions are refused. Verification needs no store call; keys are cached in memory.
package token

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"tutela"
)

// Alg is a JWS signature algorithm (RFC 7518 §3.1, RFC 8037 §3.1).
type Alg string

const (
	EdDSA Alg = "EdDSA" // Ed25519, the default
	ES256 Alg = "ES256" // ECDSA P-256 with SHA-256, for relying parties without Ed25519
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 over a 3072-bit key (RFC 7518 §3.3), for relying
	// parties that verify only RSA ID tokens. It never signs access tokens.
	RS256 Alg = "RS256"
)

// RSABits is the size of the RSA keys the ring generates: 3072 bits, about 128-bit security
// (NIST SP 800-57 Part 1 Table 2), matching P-256 and Ed25519.
const RSABits = 3072

// defaultAlgs are the algorithms a ring keeps keys for when Config.Algs is empty.
var defaultAlgs = []Alg{EdDSA, ES256}

// ParseAlgs converts configured algorithm names to Algs; NewRing validates them.
func ParseAlgs(names []string) []Alg {
	out := make([]Alg, len(names))
	for i, n := range names {
		out[i] = Alg(n)
	}
	return out
}

// valid reports whether a may sign access tokens: the verifier accepts nothing else.
func (a Alg) valid() bool { return a == EdDSA || a == ES256 }

// supported reports whether the ring can keep keys of a.
func (a Alg) supported() bool { return a.valid() || a == RS256 }

// Defaults and bounds of Config.
const (
	DefaultTTL         = 5 * time.Minute
	MaxTTL             = time.Hour
	DefaultRotateEvery = 30 * 24 * time.Hour
	DefaultPrePublish  = time.Hour
	DefaultLeeway      = 30 * time.Second
	MaxLeeway          = 5 * time.Minute

	// RefreshInterval is the rate limit on store reloads triggered by tokens naming an unknown
	// kid; without it, tokens with random kids would turn every request into a store query.
	RefreshInterval = 10 * time.Second

	// maxTokenLen bounds the work an unauthenticated token can cause before its signature is
	// checked.
	maxTokenLen = 8 << 10
)

// Config configures a Ring. Zero values take the defaults.
type Config struct {
	// Issuer is the "iss" of every token, the issuer identifier URL of this deployment.
	Issuer string
	// Audience lists the audiences tokens may be issued for.
	Audience []string
	// TTL is the lifetime of an access token: default 5 min, at most MaxTTL.
	TTL time.Duration
	// Alg is the primary algorithm, the one access tokens are signed with: EdDSA (default) or
	// ES256. It is always kept in rotation, whether or not Algs lists it. Changing it takes
	// effect at once when the new algorithm already has a key; tokens signed before keep
	// verifying until their key leaves the JWKS.
	Alg Alg
	// Algs are the algorithms the ring keeps keys for, each on its own rotation schedule with
	// the same RotateEvery, PrePublish and retirement rules (default: EdDSA and ES256). Add
	// RS256 to serve relying parties that verify only RSA ID tokens. A node no longer signs with
	// nor rotates keys of an algorithm removed from its list; they stay published (another node
	// may still sign with them) until their RetireAt plus TTL+Leeway.
	Algs []Alg
	// RotateEvery is how long a key signs before its successor takes over (default 30 days).
	RotateEvery time.Duration
	// PrePublish is how long a new key sits in the JWKS before it signs (default 1 h). It must
	// exceed the JWKS cache lifetime of every relying party (the jwks.json Cache-Control
	// max-age, plus their own caching) and the interval at which nodes call Refresh, or tokens
	// signed by the new key will be refused by verifiers that have not seen it yet.
	PrePublish time.Duration
	// Leeway tolerates clock skew between nodes when checking exp, nbf and iat (default 30 s).
	Leeway time.Duration
	// Clock defaults to tutela.SystemClock.
	Clock tutela.Clock
}

func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Alg == "" {
		c.Alg = EdDSA
	}
	if len(c.Algs) == 0 {
		c.Algs = defaultAlgs
	}
	// The primary first, then the others in the order given, each once.
	algs := []Alg{c.Alg}
	for _, a := range c.Algs {
		if !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	c.Algs = algs
	if c.RotateEvery == 0 {
		c.RotateEvery = DefaultRotateEvery
	}
	if c.PrePublish == 0 {
		c.PrePublish = DefaultPrePublish
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.Clock == nil {
		c.Clock = tutela.SystemClock
	}
	c.Audience = append([]string(nil), c.Audience...)
	return c
}

// validate reports every problem at once.
func (c Config) validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if len(c.Audience) == 0 {
		errs = append(errs, errors.New("at least one audience is required"))
	}
	for _, a := range c.Audience {
		if a == "" {
			errs = append(errs, errors.New("audience must not be empty"))
		}
	}
	if c.TTL < time.Second || c.TTL > MaxTTL {
		errs = append(errs, fmt.Errorf("ttl %v must be between 1s and %v", c.TTL, MaxTTL))
	}
	if !c.Alg.valid() {
		errs = append(errs, fmt.Errorf("alg %q must be %s or %s", c.Alg, EdDSA, ES256))
	}
	for _, a := range c.Algs {
		if !a.supported() {
			errs = append(errs, fmt.Errorf("algs: %q must be %s, %s or %s", a, EdDSA, ES256, RS256))
		}
	}
	if c.PrePublish < 0 {
		errs = append(errs, fmt.Errorf("pre-publication period %v must be positive", c.PrePublish))
	}
	// A successor is created PrePublish before the current key's period ends; the period must
	// be long enough for that, and the hard cap (2×RotateEvery) must leave room for it.
	if c.RotateEvery < 2*c.PrePublish || c.RotateEvery < time.Hour {
		errs = append(errs, fmt.Errorf("rotation period %v must be at least 1h and twice the pre-publication period %v",
			c.RotateEvery, c.PrePublish))
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("leeway %v must be between 0 and %v", c.Leeway, MaxLeeway))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("token: invalid config: %w", err)
	}
	return nil
}

// Claims are the claims of an access token (RFC 9068 §2.2, RFC 7519 §4.1).
type Claims struct {
	Issuer       string    // iss: set by Issue
	Subject      string    // sub: the user or service account ID
	Audience     []string  // aud: each must be in Config.Audience
	Expiry       time.Time // exp: Issue sets now+TTL, or this value when earlier (a session ending sooner)
	IssuedAt     time.Time // iat: set by Issue
	NotBefore    time.Time // nbf: set by Issue, equal to iat
	ID           string    // jti: set by Issue, 128 random bits
	SessionID    string    // sid
	Tenant       string    // tenant ID
	TokenVersion int64     // tv: the user's token version; bumping it revokes outstanding tokens
	AMR          []string  // amr (RFC 8176): authentication methods, e.g. "pwd", "otp"
	AuthTime     time.Time // auth_time: when the user last authenticated
	ACR          string    // acr: authentication context class (urn:tutela:acr:pwd or urn:tutela:acr:mfa)
	Scope        string    // scope: space-separated
	// ClientID is the OpenID relying party the token was issued to (RFC 9068 client_id); ""
	// for tokens of Tutela's own sign-in and of service accounts.
	ClientID string
	// JKT binds the token to a DPoP key (RFC 9449 cnf.jkt): every use needs a proof signed by
	// the key with this JWK SHA-256 thumbprint.
	JKT string
}

// Service reports whether the token is a service account's (client credentials): those have
// a scope and no session; a user's token always names its session.
func (c *Claims) Service() bool { return c.SessionID == "" && c.Scope != "" }

// Reasons Verify refuses a token. Verify wraps them in a *tutela.Error with code
// EUNAUTHENTICATED and the generic message "invalid access token"; errors.Is finds them for
// logs and tests. Clients never see which one applied.
var (
	ErrMalformed    = errors.New("malformed token")
	ErrAlgorithm    = errors.New("algorithm not allowed")
	ErrUnknownKey   = errors.New("missing or unknown key ID")
	ErrKeyNotActive = errors.New("key outside its signing period")
	ErrBadSignature = errors.New("bad signature")
	ErrIssuer       = errors.New("wrong issuer")
	ErrAudience     = errors.New("wrong audience")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token not yet valid")
)

func unauthenticated(err error) error {
	return &tutela.Error{Code: tutela.EUNAUTHENTICATED, Message: "invalid access token", Err: err}
}
