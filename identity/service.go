package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/identity/token"
	"tutela/jobs"
	"tutela/mail"
	"tutela/mfa"
	"tutela/password"
	"tutela/sqlstore"
)

// Config is sign-in behaviour.
type Config struct {
	SessionIdle     time.Duration // default 15 min; per-tenant override in the store
	SessionAbsolute time.Duration // default 12 h
	Throttle        ThrottlePolicy
	// BreachCheckAtLogin checks the password against the breach source at every sign-in;
	// a hit lets the user in but only to change their password.
	BreachCheckAtLogin bool
	Audience           string // access-token audience for Tutela's own API
	// Resources are the registered resource servers (auth.resources): a client may ask for an
	// access token restricted to one of them (RFC 8707 resource indicators).
	Resources []string
	// MFARoles are the roles whose holders must have a second factor (configured by
	// auth.mfa_roles, default super_admin and program_admin). A tenant can require it of all.
	MFARoles []string
	// MFAAllUsers requires a second factor of every user (auth.mfa_all_users, default true:
	// ASVS 6.3.2); MFARoles and the tenant setting then add nothing.
	MFAAllUsers bool
	// ResetCodeTTL is how long an e-mailed reset code works (auth.reset_code_ttl, default
	// DefaultResetCodeTTL).
	ResetCodeTTL time.Duration
	// CacheEntries bounds each authentication cache (default sqlstore.DefaultAuthCacheEntries).
	CacheEntries int
}

// Authentication context classes carried in the acr claim (RFC 9470 names the one a step-up
// asks for in acr_values).
const (
	ACRPassword = authz.ACRPassword
	ACRMFA      = authz.ACRMFA
)

// Deps are the service's collaborators. Breach, Mailer and Jobs may be nil; e-mail goes out
// only with both Mailer and Jobs.
type Deps struct {
	DB     *sqlstore.DB
	Hasher *password.Hasher
	Policy password.Policy
	Breach password.Checker
	Tokens *token.Ring
	MFA    *mfa.Service // nil: no second factors (tests of other features)
	Mailer mail.Sender
	// Jobs is the durable queue e-mail goes through; New registers the kinds it needs.
	Jobs *jobs.Queue
	// PublicURL is where users reach Tutela, for links in e-mails.
	PublicURL string
	Clock     tutela.Clock
	Log       *slog.Logger
}

// Service is sign-in, sessions and tokens.
type Service struct {
	Deps
	cfg Config
	now tutela.Clock
	db  *sqlstore.DB
	log *slog.Logger
	// cache holds authentication state this node read, valid under the store's epochs
	// (authcache.go, docs/caching.md).
	cache authCaches
}

// New returns the service.
func New(d Deps, cfg Config) *Service {
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 15 * time.Minute
	}
	if cfg.SessionAbsolute <= 0 {
		cfg.SessionAbsolute = 12 * time.Hour
	}
	if cfg.Throttle.Account.MaxFailures == 0 {
		cfg.Throttle = DefaultThrottlePolicy()
	}
	if cfg.Audience == "" {
		cfg.Audience = "tutela"
	}
	if cfg.ResetCodeTTL <= 0 {
		cfg.ResetCodeTTL = DefaultResetCodeTTL
	}
	if d.Clock == nil {
		d.Clock = tutela.SystemClock
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{Deps: d, cfg: cfg, now: d.Clock, db: d.DB, log: d.Log}
	if d.DB != nil {
		s.cache = newAuthCaches(d.DB, cfg.CacheEntries)
	}
	s.registerJobs()
	return s
}

// ensureSigner makes sure an access-token key can sign before a transaction that issues
// tokens begins. Rotation normally runs every minute; after a long pause, or on a node that
// never ran it, make a key now rather than fail the sign-in. It must run outside transactions:
// Rotate writes the new key in its own.
func (s *Service) ensureSigner(ctx context.Context) error {
	if s.Tokens.CanSign() {
		return nil
	}
	return s.Tokens.Rotate(ctx)
}

// SessionDefaults are the server's session timeouts, which a tenant's zero settings mean.
func (s *Service) SessionDefaults() (idle, absolute time.Duration) {
	return s.cfg.SessionIdle, s.cfg.SessionAbsolute
}

// Audience is the access-token audience of Tutela's own API.
func (s *Service) Audience() string { return s.cfg.Audience }

// LoginRequest is one password sign-in attempt.
type LoginRequest struct {
	Tenant    string // slug
	Email     string
	Password  tutela.Secret
	IP        string
	UserAgent string
}

// Grant is what a successful sign-in or refresh hands out. The secrets exist only here.
type Grant struct {
	User               *tutela.User
	Session            *sqlstore.Session
	SessionSecret      tutela.Secret
	AccessToken        tutela.Secret
	AccessExpiry       time.Time
	RefreshToken       tutela.Secret
	MustChangePassword bool
	// Audience of the access token; nil means Tutela's own API.
	Audience []string
	// NoRefresh: hand out no refresh token (a relying party that did not ask for
	// offline_access).
	NoRefresh bool
}

// ErrInvalidCredentials is the one answer to every failed sign-in: unknown tenant, unknown
// user, disabled user, no password yet, or wrong password (ASVS 6.3.8: no account enumeration).
var ErrInvalidCredentials = tutela.Errorf(tutela.EINVALIDCREDENTIALS, "invalid tenant, email or password")

// ThrottledError is the answer while a throttle key is locked. It carries Retry-After.
type ThrottledError struct{ Wait time.Duration }

func (e *ThrottledError) Error() string { return "too many sign-in attempts" }

// RetryAfter implements middleware.RetryAfterError.
func (e *ThrottledError) RetryAfter() time.Duration { return e.Wait }

// Unwrap makes ErrorCode see too_many_attempts.
func (e *ThrottledError) Unwrap() error {
	return tutela.Errorf(tutela.ETOOMANYATTEMPTS, "too many sign-in attempts; try again later")
}

const maxCredentialLen = 1024

// passwordUnchecked reports whether a Verify error means the password was not checked at all:
// the hasher was busy, or the pepper could not answer (its KMS down, or the pepper key the hash
// names is missing from the vault). No guess was made, so the attempt does not count towards a
// lockout; counting it would lock out every user whose hash names a lost pepper key.
func passwordUnchecked(err error) bool {
	return tutela.ErrorCode(err) == tutela.EUNAVAILABLE || errors.Is(err, password.ErrPepperUnavailable)
}

// logUnchecked logs a password that could not be checked because its pepper key is missing: an
// operator must restore the password_pepper keyset (docs/keys.md). Outages are logged elsewhere.
func (s *Service) logUnchecked(err error, userID string) {
	if tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		s.log.Error("password not checked: the stored hash names a pepper key the vault does not hold; restore the "+
			"password_pepper keyset from the backup (the attempt was not counted)", "user_id", userID, "err", err)
	}
}

// Login signs a user in with a password.
func (s *Service) Login(ctx context.Context, req LoginRequest) (*Grant, error) {
	if req.Tenant == "" || len(req.Tenant) > 63 {
		return nil, tutela.FieldErrorf("tenant", "tenant is required")
	}
	if strings.TrimSpace(req.Email) == "" || len(req.Email) > 254 {
		return nil, tutela.FieldErrorf("email", "email is required")
	}
	if req.Password.IsZero() || len(req.Password.Bytes()) > maxCredentialLen {
		return nil, tutela.FieldErrorf("password", "password is required (at most %d bytes)", maxCredentialLen)
	}
	slug := strings.ToLower(strings.TrimSpace(req.Tenant))
	tg, err := s.checkTarget(ctx, req, slug, accountKey(slug, tutela.NormalizeEmail(req.Email)),
		func(tx *sqlstore.Tx, t *tutela.Tenant) (*sqlstore.Credentials, error) {
			return tx.Users(t.ID).CredentialsByEmail(ctx, req.Email)
		}, nil)
	if err != nil {
		return nil, err
	}
	tenant, cred, attempt := tg.tenant, tg.cred, tg.attempt
	tenantID, userID := tg.ids()

	// 3. Verify — against a dummy hash when there is nothing to verify against, so unknown and
	// known accounts cost the same — in a hashing slot held until the attempt is counted, after
	// checking the throttles again once the slot is held (slotFor).
	slot, err := s.slotFor(ctx, tg, req)
	if err != nil {
		return nil, err
	}
	defer slot.Release()
	reason := tg.refusal()
	if reason == "" && cred.PasswordHash == "" {
		reason = "no_password"
	}
	var ok, rehash bool
	if reason != "" {
		if err := slot.DummyVerify(ctx, req.Password.Reveal()); err != nil {
			return nil, err // nothing was tried, so nothing is counted
		}
	} else {
		ok, rehash, err = slot.Verify(ctx, req.Password.Reveal(), cred.PasswordHash)
		if err != nil && passwordUnchecked(err) {
			s.logUnchecked(err, cred.User.ID)
			return nil, err
		}
		if err != nil {
			s.log.Error("stored password hash unusable", "user_id", cred.User.ID, "err", err)
		}
		if !ok {
			reason = "wrong_password"
		}
	}
	if reason != "" {
		if err := s.recordFailure(ctx, tenantID, userID, attempt, req, reason); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	slot.Release() // a success needs the slot no longer, and a rehash takes one of its own

	// 4. Success. Nothing was counted for the attempt, so a server fault below never counts
	// against the user; the success transaction resets the counters unless a key was locked
	// since the check.
	must := cred.MustChangePassword
	if s.cfg.BreachCheckAtLogin && s.Breach != nil {
		if breached, err := s.Breach.Breached(ctx, req.Password.Reveal()); err == nil && breached {
			must = true
		}
	}
	var newHash string
	if rehash {
		if newHash, err = s.Hasher.Hash(ctx, req.Password.Reveal()); err != nil {
			return nil, err
		}
	}
	hasMFA := false
	if s.MFA != nil {
		if hasMFA, err = s.MFA.HasActiveFactor(ctx, tenant.ID, cred.User.ID); err != nil {
			return nil, err
		}
	}
	if err := s.ensureSigner(ctx); err != nil {
		return nil, err
	}
	// The password was right: the request's audit events carry this user's request data, also
	// when a second factor is still pending. The user's own sign-ins must go with their
	// erasure; someone holding a stolen password who fails the second factor leaves that
	// failure (auth.mfa) under the tenant's keyset as evidence.
	tutela.SetAuditPerson(ctx, tenant.ID, cred.User.ID)
	var g *Grant
	var challenge string
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		users := tx.Users(tenant.ID)
		if err := attempt.succeeded(ctx, tx); err != nil {
			return err
		}
		if newHash != "" {
			if err := users.RehashPassword(ctx, cred.User.ID, cred.PasswordHash, newHash); err != nil {
				return err
			}
		}
		if must && !cred.MustChangePassword {
			if err := users.SetMustChangePassword(ctx, cred.User.ID, true); err != nil {
				return err
			}
			if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tenant.ID, UserID: cred.User.ID,
				Kind: "breached_password_at_login", IP: req.IP}); err != nil {
				return err
			}
		}
		if hasMFA {
			// The password was right; the second factor completes the sign-in. The challenge
			// is single use, bound to this user, and short-lived.
			var err error
			challenge, _, err = users.CreateToken(ctx, cred.User.ID, sqlstore.TokenMFA, MFAChallengeTTL)
			if err != nil {
				return err
			}
			return tx.RecordLogin(ctx, &sqlstore.LoginRecord{TenantID: tenant.ID, UserID: cred.User.ID, IP: req.IP,
				UserAgent: req.UserAgent, Result: "mfa_pending", Reason: ""})
		}
		if err := users.RecordLoginSuccess(ctx, cred.User.ID); err != nil {
			return err
		}
		if err := tx.RecordLogin(ctx, &sqlstore.LoginRecord{TenantID: tenant.ID, UserID: cred.User.ID, IP: req.IP,
			UserAgent: req.UserAgent, Result: "success", Reason: ""}); err != nil {
			return err
		}
		var err error
		g, err = s.newSession(ctx, tx, cred.User, cred.TokenVersion, []string{"pwd"}, nil, req.IP, req.UserAgent)
		return err
	})
	if err != nil {
		return nil, s.throttledAttempt(ctx, err, tenantID, userID, req)
	}
	if hasMFA {
		methods, err := s.mfaMethods(ctx, tenant.ID, cred.User.ID)
		if err != nil {
			return nil, err
		}
		return nil, &MFARequiredError{Challenge: tutela.NewSecret(challenge), Methods: methods, ExpiresIn: MFAChallengeTTL}
	}
	g.MustChangePassword = must
	return g, nil
}

// signInTarget is the account a sign-in attempt aims at and the attempt's reservation on the
// throttles.
type signInTarget struct {
	tenant  *tutela.Tenant
	cred    *sqlstore.Credentials
	attempt *signInAttempt
}

// ids are the tenant and user the attempt aimed at ("" for what was not found).
func (t *signInTarget) ids() (tenantID, userID string) {
	if t.tenant != nil {
		tenantID = t.tenant.ID
	}
	if t.cred != nil {
		userID = t.cred.User.ID
	}
	return tenantID, userID
}

// refusal is why the account cannot sign in whatever credential it shows ("" when it can).
func (t *signInTarget) refusal() string {
	switch {
	case t.tenant == nil:
		return "unknown_tenant"
	case t.tenant.Status != tutela.StatusActive:
		return "tenant_disabled"
	case t.cred == nil:
		return "unknown_user"
	case t.cred.User.Status != tutela.StatusActive:
		return "user_disabled"
	}
	return ""
}

// checkTarget begins every sign-in (password or passkey): 1. it looks up the tenant and,
// through find, the account (no credential work yet), so every attempt — throttled ones too —
// is recorded against the tenant and user it aimed at; 2. in the same read-only transaction it
// refuses a locked attempt before any credential work, identically for every account, checking
// the account key acct (accountOf's key once the account is known, when given), the
// source+account key and the source key. Nothing is counted yet: recordFailure counts a wrong
// attempt and the success transaction resets the counters, each refusing the attempt if a key
// was locked meanwhile (throttle.go). A locked attempt is recorded and returned as
// *ThrottledError.
func (s *Service) checkTarget(ctx context.Context, req LoginRequest, slug string, acct []byte,
	find func(*sqlstore.Tx, *tutela.Tenant) (*sqlstore.Credentials, error), accountOf func(*sqlstore.Credentials) []byte) (*signInTarget, error) {
	tg := &signInTarget{}
	err := s.db.View(ctx, func(tx *sqlstore.Tx) error {
		key := acct
		tg.tenant, tg.cred = nil, nil
		t, err := tx.TenantBySlug(ctx, slug)
		if err == nil {
			tg.tenant = t
			var c *sqlstore.Credentials
			if c, err = find(tx, t); err == nil {
				tg.cred = c
				if accountOf != nil {
					key = accountOf(c)
				}
			}
		}
		if err != nil && tutela.ErrorCode(err) != tutela.ENOTFOUND {
			return err
		}
		tg.attempt, err = checkSignIn(ctx, tx, key, pairKey(req.IP, key), ipKey(req.IP))
		return err
	})
	var throttled *ThrottledError
	if errors.As(err, &throttled) {
		tenantID, userID := tg.ids()
		s.recordAttempt(ctx, tenantID, userID, req, "throttled", "locked")
		return nil, throttled
	}
	if err != nil {
		return nil, err
	}
	return tg, nil
}

// slotFor takes a hashing slot for the sign-in tg and then checks its throttle keys again,
// refusing (and recording) the attempt with ThrottledError, without hashing, if one was locked
// while it waited for the slot. The caller verifies in the slot and holds it until a failure is
// counted (recordFailure), then releases it.
//
// This bounds the hashes a burst of guesses costs. checkTarget's check runs before the wait for
// a slot, so every guess queued when a key locks would otherwise be hashed, though answered
// too_many_attempts. Now a guess is hashed only if its key was unlocked once it held a slot, and
// it keeps the slot until failed has counted or refused it; so when the failure that locks a key
// commits, at most the other slots' holders (slots-1 per node) have been hashed and will be
// refused: a key costs at most its limit's worth of hashes plus slots-1 per node.
func (s *Service) slotFor(ctx context.Context, tg *signInTarget, req LoginRequest) (*password.Slot, error) {
	slot, err := s.Hasher.Acquire(ctx)
	if err != nil {
		return nil, err // nothing was tried, so nothing is counted
	}
	err = s.db.View(ctx, func(tx *sqlstore.Tx) error { return tg.attempt.check(ctx, tx) })
	if err == nil {
		return slot, nil
	}
	slot.Release()
	var throttled *ThrottledError
	if errors.As(err, &throttled) {
		tenantID, userID := tg.ids()
		s.recordAttempt(ctx, tenantID, userID, req, "throttled", "locked")
	}
	return nil, err
}

// recordFailure counts and records a sign-in attempt that failed its check, with the locks
// counting it set, or refuses it with ThrottledError if a key was locked since the check.
func (s *Service) recordFailure(ctx context.Context, tenantID, userID string, a *signInAttempt, req LoginRequest, reason string) error {
	return s.throttledAttempt(ctx, s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := s.failed(ctx, tx, a); err != nil {
			return err
		}
		if a.acct.locked {
			if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tenantID, UserID: userID,
				Kind: "account_locked", IP: req.IP, Details: a.acct.details}); err != nil {
				return err
			}
		}
		if a.ip.locked && tenantID != "" {
			if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tenantID, Kind: "ip_locked",
				IP: req.IP, Details: a.ip.details}); err != nil {
				return err
			}
		}
		if a.pair.locked && tenantID != "" {
			if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tenantID, UserID: userID,
				Kind: "source_locked", IP: req.IP, Details: a.pair.details}); err != nil {
				return err
			}
		}
		return tx.RecordLogin(ctx, &sqlstore.LoginRecord{TenantID: tenantID, UserID: userID, IP: req.IP,
			UserAgent: req.UserAgent, Result: "failure", Reason: reason})
	}), tenantID, userID, req)
}

func lockDetails(t *sqlstore.Throttle) string {
	b, _ := json.Marshal(map[string]any{"locked_until": t.LockedUntil, "locks": t.Locks})
	return string(b)
}

// recordAttempt logs a throttled attempt; failures to record are logged, not returned, so a
// flood against a locked key cannot turn into errors that differ by account.
func (s *Service) recordAttempt(ctx context.Context, tenantID, userID string, req LoginRequest, result, reason string) {
	err := s.db.GroupCommit(ctx, func(ctx context.Context, tx *sqlstore.Tx) error {
		return tx.RecordLogin(ctx, &sqlstore.LoginRecord{TenantID: tenantID, UserID: userID, IP: req.IP,
			UserAgent: req.UserAgent, Result: result, Reason: reason})
	})
	if err != nil {
		s.log.Warn("record login attempt", "err", err)
	}
}

// Unlock clears an account's lockout and every per-source counter for it (admin action).
func (s *Service) Unlock(ctx context.Context, tx *sqlstore.Tx, tenant *tutela.Tenant, user *tutela.User, by, ip string) error {
	if err := tx.ResetThrottlesFor(ctx, accountKey(tenant.Slug, tutela.NormalizeEmail(user.Email))); err != nil {
		return err
	}
	return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tenant.ID, UserID: user.ID, Kind: "account_unlocked",
		IP: ip, Details: mustJSON(map[string]string{"by": by})})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// newSecret returns 256 random bits, base64url.
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("tutela: random source failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// newSession creates a session, its first refresh token and an access token.
func (s *Service) newSession(ctx context.Context, tx *sqlstore.Tx, u *tutela.User, tv int64, amr []string, stepUpAt *time.Time, ip, ua string) (*Grant, error) {
	pol, err := tx.TenantSessionPolicy(ctx, u.TenantID)
	if err != nil {
		return nil, err
	}
	idle, abs := s.cfg.SessionIdle, s.cfg.SessionAbsolute
	if pol.Idle > 0 {
		idle = pol.Idle
	}
	if pol.Absolute > 0 {
		abs = pol.Absolute
	}
	sess := &sqlstore.Session{TenantID: u.TenantID, UserID: u.ID, TokenVersion: tv, AMR: amr, IP: ip, UserAgent: ua,
		IdleTimeout: idle, AbsoluteExpiry: tx.Now().Add(abs), StepUpAt: stepUpAt}
	secret := newSecret()
	if err := tx.CreateSession(ctx, sess, sqlstore.HashToken(secret)); err != nil {
		return nil, err
	}
	g := &Grant{User: u, Session: sess, SessionSecret: tutela.NewSecret(secret)}
	if err := s.issue(ctx, tx, g, tv); err != nil {
		return nil, err
	}
	return g, nil
}

// issue adds a fresh refresh token and access token for g.Session to g.
func (s *Service) issue(ctx context.Context, tx *sqlstore.Tx, g *Grant, tv int64) error {
	if !g.NoRefresh {
		rt := newSecret()
		if err := tx.CreateRefreshToken(ctx, g.Session.ID, sqlstore.HashToken(rt), g.Session.AbsoluteExpiry); err != nil {
			return err
		}
		g.RefreshToken = tutela.NewSecret(rt)
	}
	return s.signAccess(ctx, g, tv)
}

// signAccess signs g's access token for its session.
func (s *Service) signAccess(ctx context.Context, g *Grant, tv int64) error {
	// auth_time is the session's latest authentication event: its sign-in, or a later step-up
	// (RFC 9470: a token obtained after stepping up shows it), so a resource server can check
	// the freshness of the second factor from the token alone. A client session was made
	// later than that: it carries its parent's (AuthTime).
	authTime := g.Session.CreatedAt
	if g.Session.AuthTime != nil {
		authTime = *g.Session.AuthTime
	}
	if g.Session.StepUpAt != nil && g.Session.StepUpAt.After(authTime) {
		authTime = *g.Session.StepUpAt
	}
	aud := g.Audience
	if len(aud) == 0 {
		aud = []string{s.cfg.Audience}
	}
	claims := token.Claims{
		Subject: g.User.ID, Audience: aud, SessionID: g.Session.ID, Tenant: g.User.TenantID,
		TokenVersion: tv, AMR: g.Session.AMR, AuthTime: authTime, ACR: ACRPassword,
		ClientID: g.Session.ClientID, Scope: g.Session.Scope, JKT: g.Session.DPoPJKT,
	}
	for _, m := range g.Session.AMR {
		if authz.SecondFactorAMR(m) {
			claims.ACR = ACRMFA
		}
	}
	at, exp, err := s.Tokens.Issue(ctx, claims)
	if err != nil {
		return err
	}
	g.AccessToken, g.AccessExpiry = tutela.NewSecret(at), exp
	return nil
}

var errSession = tutela.Errorf(tutela.EUNAUTHENTICATED, "session expired or revoked; sign in again")

// AuthenticateSession resolves a session cookie value to a principal, enforcing the idle and
// absolute timeouts and the user's token version, and records activity.
func (s *Service) AuthenticateSession(ctx context.Context, secret string) (*tutela.Principal, error) {
	if len(secret) != 43 {
		return nil, refuse(errSession, "malformed")
	}
	key := sha256.Sum256([]byte(secret))
	if p := s.cachedCookie(key); p != nil {
		return p, nil
	}
	var p *tutela.Principal
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		sess, err := tx.SessionBySecret(ctx, key[:])
		if err != nil {
			return refuse(errSession, "unknown_session")
		}
		if reason := sess.EndReason(tx.Now()); reason != "" {
			return sessionRefused(errSession, reason, sess)
		}
		p, err = s.principal(ctx, tx, sess.TenantID, sess.UserID, sess.TokenVersion)
		if r := RefusalOf(err); r != nil {
			r.SessionID = sess.ID
		}
		if err != nil {
			return err
		}
		p.SessionID, p.AMR, p.AuthTime, p.ViaCookie, p.SessionExpiry = sess.ID, sess.AMR, sess.CreatedAt, true, sess.AbsoluteExpiry
		sessionTimes(p, sess)
		// Write last-seen at most once a minute: sliding expiry without a write per request.
		if tx.Now().Sub(sess.LastSeenAt) >= time.Minute {
			if err := tx.TouchSession(ctx, sess.ID); err != nil {
				return err
			}
			sess.LastSeenAt = tx.Now()
		}
		s.cache.cookies.Put(tx.CacheTicket(), key, sess.TenantID, *sess, time.Time{})
		return nil
	})
	return p, err
}

// cachedCookie is AuthenticateSession from the caches: nil unless the session and its user are
// cached, the session is live now, and its last-seen time needs no update yet (which goes
// through the database, once a minute as before).
func (s *Service) cachedCookie(key [sha256.Size]byte) *tutela.Principal {
	now := s.db.Now()
	sess, ok := s.cache.cookies.Get(key, now)
	if !ok || sess.EndReason(now) != "" || now.Sub(sess.LastSeenAt) >= time.Minute {
		return nil
	}
	p := s.cachedPrincipal(sess.TenantID, sess.UserID, sess.TokenVersion, now)
	if p == nil {
		return nil
	}
	p.SessionID, p.AMR, p.AuthTime, p.ViaCookie, p.SessionExpiry = sess.ID, sess.AMR, sess.CreatedAt, true, sess.AbsoluteExpiry
	sessionTimes(p, &sess)
	return p
}

// sessionTimes copies the session's last step-up and re-authentication to the principal.
func sessionTimes(p *tutela.Principal, sess *sqlstore.Session) {
	if sess.StepUpAt != nil {
		p.StepUpAt = *sess.StepUpAt
	}
	if sess.ReauthAt != nil {
		p.ReauthAt = *sess.ReauthAt
	}
}

// principal loads the user's roles after checking the user is active and tv is current.
func (s *Service) principal(ctx context.Context, tx *sqlstore.Tx, tenantID, userID string, tv int64) (*tutela.Principal, error) {
	if p := s.cachedPrincipal(tenantID, userID, tv, tx.Now()); p != nil {
		return p, nil
	}
	refused := func(reason string) error {
		return &Refusal{Reason: reason, TenantID: tenantID, TargetType: "user", TargetID: userID, Err: errSession}
	}
	// The tenant first: one of another data region is refused (wrong_region) before any of its
	// users' data is read, and not as a refused credential, which would write for it.
	t, terr := tx.Tenant(ctx, tenantID)
	if tutela.ErrorCode(terr) == tutela.EWRONGREGION {
		return nil, terr
	}
	st, err := tx.Users(tenantID).AuthState(ctx, userID)
	if err != nil {
		return nil, refused("unknown_user")
	}
	if st.TokenVersion != tv {
		return nil, refused("revoked") // password changed, signed out everywhere, or disabled since
	}
	if st.Status != tutela.StatusActive {
		return nil, refused("user_inactive")
	}
	if terr != nil || t.Status != tutela.StatusActive {
		return nil, refused("tenant_inactive")
	}
	roles, err := tx.Users(tenantID).Roles(ctx, userID)
	if err != nil {
		return nil, err
	}
	p := &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: tenantID, UserID: userID, Roles: roles,
		MustChangePassword: st.MustChangePassword}
	if s.MFA != nil {
		required := s.cfg.MFAAllUsers
		for _, r := range roles {
			required = required || slices.Contains(s.cfg.MFARoles, r)
		}
		if !required {
			if required, err = tx.TenantRequiresMFA(ctx, tenantID); err != nil {
				return nil, err
			}
		}
		if required {
			has, err := tx.MFA(tenantID).HasActiveFactor(ctx, userID)
			if err != nil {
				return nil, err
			}
			p.MustEnrollMFA = !has
		}
	}
	return p, s.rememberPrincipal(ctx, tx, p, tv)
}

// AuthenticateBearer verifies an access token and checks it against the user's current token
// version and the session's state, so revocation takes effect at once, not at token expiry.
// A DPoP-bound token (cnf.jkt) is refused here: it needs its proof (AuthenticateDPoP).
func (s *Service) AuthenticateBearer(ctx context.Context, tok string) (*tutela.Principal, error) {
	return s.authenticateAccess(ctx, tok, "", false)
}

// AuthenticateBearerAnyAudience is AuthenticateBearer for a token issued to Tutela or to any
// registered resource server. Only the decision API uses it: a resource server asks it about
// the token its caller presented, which is not a token for the rest of Tutela's API.
func (s *Service) AuthenticateBearerAnyAudience(ctx context.Context, tok string) (*tutela.Principal, error) {
	return s.authenticateAccess(ctx, tok, "", true)
}

// audiences are every audience this service issues tokens for: its own API and the resources.
// Tokens for the userinfo endpoint of the OpenID Provider are not among them: the decision
// API and introspection at /v1 answer about tokens for Tutela and resource servers only.
func (s *Service) audiences() []string {
	return slices.DeleteFunc(s.Tokens.Audiences(), func(a string) bool { return a == UserinfoAudience })
}

// UserinfoAudience is the audience of the access tokens the OpenID Provider gives relying
// parties: its userinfo endpoint and introspection accept them; Tutela's own /v1 API and the
// registered resource servers do not, so an application signing a user in gets no more than
// the claims its scopes name. The key ring must list it (token.Config.Audience).
const UserinfoAudience = "urn:tutela:userinfo"

// audienceFor is the audience of a token asked for resource (RFC 8707): Tutela's own API when
// resource is empty, else a registered resource server, exactly as registered.
func (s *Service) audienceFor(resource string) ([]string, error) {
	if resource == "" {
		return []string{s.cfg.Audience}, nil
	}
	if !slices.Contains(s.cfg.Resources, resource) {
		return nil, ErrInvalidTarget
	}
	return []string{resource}, nil
}

// ErrInvalidTarget answers a resource that is not a registered resource server (RFC 8707 §2:
// invalid_target).
var ErrInvalidTarget = tutela.FieldErrorf("resource", "resource is not a registered resource server (auth.resources)")

// bearerPrincipal loads the principal a verified access token stands for, checking the user
// (or service account), the tenant and the session are still active.
func (s *Service) bearerPrincipal(ctx context.Context, c *token.Claims) (*tutela.Principal, error) {
	if c.Service() {
		return s.serviceAccountPrincipal(ctx, c, true)
	}
	if p := s.cachedBearer(c); p != nil {
		return p, nil
	}
	var p *tutela.Principal
	err := s.db.View(ctx, func(tx *sqlstore.Tx) error {
		var err error
		if p, err = s.principal(ctx, tx, c.Tenant, c.Subject, c.TokenVersion); err != nil {
			if r := RefusalOf(err); r != nil {
				r.SessionID = c.SessionID
			}
			return err
		}
		if c.SessionID != "" {
			// The token is genuine, so its claims name the account and session.
			refused := func(reason string) error {
				return &Refusal{Reason: reason, TenantID: c.Tenant, TargetType: "user", TargetID: c.Subject,
					SessionID: c.SessionID, Err: errSession}
			}
			sess, err := tx.Users(c.Tenant).Session(ctx, c.Subject, c.SessionID)
			if err != nil {
				return refused("unknown_session")
			}
			// Idle too: a session nobody refreshed or used by cookie for its idle timeout stops
			// its access tokens, not only its cookie (ASVS 7.3.1).
			if reason := sess.EndReason(tx.Now()); reason != "" {
				return refused(reason)
			}
			sessionTimes(p, sess)
			s.cache.sessions.Put(tx.CacheTicket(), sessionRef{c.Tenant, c.Subject, c.SessionID}, c.Tenant, *sess, time.Time{})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.SessionID, p.AMR, p.AuthTime = c.SessionID, c.AMR, c.AuthTime
	return p, nil
}

// cachedBearer is bearerPrincipal from the caches: nil unless the user (and the session the
// token names) passed the checks under the current epochs and the session is live now.
func (s *Service) cachedBearer(c *token.Claims) *tutela.Principal {
	now := s.db.Now()
	p := s.cachedPrincipal(c.Tenant, c.Subject, c.TokenVersion, now)
	if p == nil {
		return nil
	}
	if c.SessionID != "" {
		sess, ok := s.cachedSession(c.Tenant, c.Subject, c.SessionID, now)
		if !ok {
			return nil
		}
		sessionTimes(p, sess)
	}
	p.SessionID, p.AMR, p.AuthTime = c.SessionID, c.AMR, c.AuthTime
	return p
}

var errRefresh = tutela.Errorf(tutela.EUNAUTHENTICATED, "refresh token is invalid or expired; sign in again")

// errRestricted refuses a token for another service to a user who must first change their
// password or enrol a second factor.
var errRestricted = tutela.Errorf(tutela.EFORBIDDEN, "change your password or enrol a second factor first")

// Refresh exchanges a refresh token for a new one and a new access token (rotation). A refresh
// token presented a second time means it was stolen or replayed: the whole family and its
// session are revoked and a refresh_reuse_detected security event is recorded (RFC 9700 §4.14.2).
// The token a session revocation marked (sign-out, an admin's revocation) is refused as a
// revoked session instead: it was never rotated, so presenting it is no replay.
// The new access token is for resource (RFC 8707 §2.2): a registered resource server, or
// Tutela's own API when empty. An unregistered resource is ErrInvalidTarget and uses nothing up.
func (s *Service) Refresh(ctx context.Context, refresh tutela.Secret, resource, ip, ua string) (*Grant, error) {
	aud, err := s.audienceFor(resource)
	if err != nil {
		return nil, err
	}
	return s.refresh(ctx, refreshRequest{token: refresh, resource: resource, audience: aud, ip: ip})
}

// refreshRequest is one refresh-token exchange: at /v1/auth/refresh (clientID "": the token
// must be of a Tutela session) or at a tenant's OpenID Provider token endpoint (the token must
// be of that client's session, and of its DPoP key when the session is bound to one).
type refreshRequest struct {
	token             tutela.Secret
	resource, ip      string
	audience          []string
	clientID, dpopJKT string
	tenantID          string // the provider's tenant: a token of another tenant is unknown there
}

func (s *Service) refresh(ctx context.Context, req refreshRequest) (*Grant, error) {
	refresh, resource, aud, ip := req.token, req.resource, req.audience, req.ip
	if len(refresh.Bytes()) != 43 {
		s.recordAuthFailure(ctx, authFailureEvent(ctx, "auth.refresh", "", "", map[string]any{"reason": "malformed"}))
		return nil, errRefresh
	}
	if err := s.ensureSigner(ctx); err != nil {
		return nil, err
	}
	var g *Grant
	var reuse error
	// Why the token was refused, and whose session it was: the refusal rolls the transaction
	// back, so its auth.refresh event (ASVS 5.0 16.3.1) is written after, in its own.
	var refused *Refusal
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		refused = nil
		// Update may run this again (a keyset made outside the transaction): a run that named
		// the token's user must not leave them named for a run that refuses the token.
		tutela.SetAuditPerson(ctx, "", "")
		// Rotation (RFC 9700 §4.14.2): the session's next refresh token. On PostgreSQL the
		// statement that uses this one stores it, optimistically: every refusal below rolls
		// the transaction back (a reuse marks nothing and stores nothing).
		next := newSecret()
		use, err := tx.UseRefreshTokenSession(ctx, sqlstore.HashToken(refresh.Reveal()), sqlstore.HashToken(next))
		if err != nil || (req.tenantID != "" && use.Session.TenantID != req.tenantID) {
			refused = refuse(errRefresh, "unknown_token")
			return errRefresh
		}
		rt, sess := use.Token, use.Session
		// A refresh token works only for the client it was issued to (RFC 9700 §4.14: a token
		// of another client, or of a Tutela session at a relying party's token endpoint, and
		// the other way round), and a DPoP-bound one only with a proof by its key (RFC 9449
		// §5). Refused before reuse is looked at: a client holding another's token must not
		// be able to end that session.
		if sess.ClientID != req.clientID {
			refused = sessionRefused(errRefresh, "wrong_client", sess)
			return errRefresh
		}
		if sess.DPoPJKT != "" && sess.DPoPJKT != req.dpopJKT {
			refused = sessionRefused(errRefresh, "dpop_key_mismatch", sess)
			return errRefresh
		}
		// A tenant of another data region is refused before its session is revoked, audited
		// or refreshed: the transaction rolls back, the token stays as it was.
		tenant, tenantErr := use.Tenant(ctx)
		if tutela.ErrorCode(tenantErr) == tutela.EWRONGREGION {
			return tenantErr
		}
		// Reuse is a token presented again after its rotation. Revoking a session marks its
		// unused token at the revocation's time: that one, presented by a client that was signed
		// out elsewhere, is refused below as a revoked session, not raised as reuse (a critical
		// alert in the monitoring rules).
		markedByRevocation := rt.UsedAt != nil && sess.RevokedAt != nil && rt.UsedAt.Equal(*sess.RevokedAt)
		if rt.UsedAt != nil && !markedByRevocation {
			if err := tx.RevokeSessionByID(ctx, sess.ID, "refresh_reuse"); err != nil {
				return err
			}
			reuse = errRefresh
			if err := tx.Audit(ctx, authFailureEvent(ctx, "auth.refresh", sess.TenantID, sess.UserID,
				map[string]any{"reason": "reused", "session_id": sess.ID})); err != nil {
				return err
			}
			return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: sess.TenantID, UserID: sess.UserID,
				Kind: "refresh_reuse_detected", IP: ip, Details: mustJSON(map[string]string{"session_id": sess.ID})})
		}
		now := tx.Now()
		switch {
		case !now.Before(rt.ExpiresAt):
			refused = sessionRefused(errRefresh, "expired", sess)
		case sess.EndReason(now) != "":
			refused = sessionRefused(errRefresh, sess.EndReason(now), sess)
		}
		if refused != nil {
			return errRefresh
		}
		cred, err := use.Credentials(ctx)
		switch {
		case err != nil:
			refused = sessionRefused(errRefresh, "unknown_user", sess)
		case cred.TokenVersion != sess.TokenVersion:
			refused = sessionRefused(errRefresh, "revoked", sess)
		case cred.User.Status != tutela.StatusActive:
			refused = sessionRefused(errRefresh, "user_inactive", sess)
		default:
			if tenantErr != nil || tenant.Status != tutela.StatusActive {
				refused = sessionRefused(errRefresh, "tenant_inactive", sess)
			}
		}
		if refused != nil {
			return errRefresh
		}
		if resource != "" {
			// A user who must first change their password or enrol a second factor may use
			// Tutela only to do that: no token for another service until then (ASVS 2.3.1).
			p, err := s.principal(ctx, tx, sess.TenantID, sess.UserID, sess.TokenVersion)
			if err != nil {
				return err
			}
			if p.MustChangePassword || p.MustEnrollMFA {
				return errRestricted
			}
		}
		tutela.SetAuditPerson(ctx, sess.TenantID, sess.UserID) // a valid refresh token: its user's request
		// The session's activity and its next refresh token (written already on PostgreSQL).
		if err := use.Renew(ctx); err != nil {
			return err
		}
		sess.LastSeenAt = now
		g = &Grant{User: cred.User, Session: sess, Audience: aud, RefreshToken: tutela.NewSecret(next)}
		return s.signAccess(ctx, g, sess.TokenVersion)
	})
	if err != nil {
		if refused != nil {
			details := map[string]any{"reason": refused.Reason}
			if refused.SessionID != "" {
				details["session_id"] = refused.SessionID
			}
			s.recordAuthFailure(ctx, authFailureEvent(ctx, "auth.refresh", refused.TenantID, refused.TargetID, details))
		}
		return nil, err
	}
	if reuse != nil {
		return nil, reuse
	}
	return g, nil
}

// Logout revokes the principal's session.
func (s *Service) Logout(ctx context.Context, p *tutela.Principal) error {
	if p.SessionID == "" {
		return nil
	}
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, p.SessionID, "logout") })
}

// ChangePassword sets a new password after checking the current one. The token version goes
// up, ending every session and token (this one too); the caller gets a fresh session.
func (s *Service) ChangePassword(ctx context.Context, p *tutela.Principal, current, next tutela.Secret, ip, ua string) (*Grant, error) {
	var cred *sqlstore.Credentials
	var tenant *tutela.Tenant
	var history []string
	err := s.db.View(ctx, func(tx *sqlstore.Tx) error {
		var err error
		if cred, err = tx.Users(p.TenantID).Credentials(ctx, p.UserID); err != nil {
			return err
		}
		if tenant, err = tx.Tenant(ctx, p.TenantID); err != nil {
			return err
		}
		history, err = tx.Users(p.TenantID).PasswordHistory(ctx, p.UserID, s.Policy.History)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.checkCurrentPassword(ctx, cred, current, ip, "auth.password_change"); err != nil {
		if tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS {
			return nil, tutela.FieldErrorf("current_password", "current password is wrong")
		}
		return nil, err
	}
	hash, err := s.checkAndHash(ctx, next, cred.User, tenant, append([]string{cred.PasswordHash}, history...))
	if err != nil {
		return nil, err
	}
	if s.Policy.History > 0 && s.Hasher.Outdated(ctx, cred.PasswordHash) {
		// The current password was just verified: its history entry is stored in today's form
		// (peppered, current parameters) rather than as the legacy hash it replaces, so the
		// history does not keep hashes a database dump alone could attack (ASVS 4.0.3 2.4.5).
		if cred.PasswordHash, err = s.Hasher.Hash(ctx, current.Reveal()); err != nil {
			return nil, err
		}
	}
	if err := s.ensureSigner(ctx); err != nil {
		return nil, err
	}
	notice, err := s.PrepareChange(cred.User, ChangePasswordChanged)
	if err != nil {
		return nil, err
	}
	var g *Grant
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		tv, err := s.setPassword(ctx, tx, cred, hash, "password_changed", ip, notice)
		if err != nil {
			return err
		}
		// The new session was established by the password alone: it does not inherit the old
		// session's second factor, so its tokens never look like a fresh MFA sign-in.
		g, err = s.newSession(ctx, tx, cred.User, tv, []string{"pwd"}, nil, ip, ua)
		return err
	})
	return g, err
}

// checkAndHash applies the password policy with the account's context and history.
func (s *Service) checkAndHash(ctx context.Context, pw tutela.Secret, u *tutela.User, t *tutela.Tenant, previous []string) (string, error) {
	policy := s.Policy
	var rules string
	if err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) { rules, err = tx.TenantPasswordComposition(ctx, t.ID); return err }); err != nil {
		return "", err
	}
	if rules != "" {
		var c password.Composition
		if err := json.Unmarshal([]byte(rules), &c); err != nil {
			return "", tutela.Wrap(err, "tenant password rules unreadable")
		}
		policy.Composition = &c // the tenant's optional composition rule set
	}
	err := policy.Check(ctx, pw.Reveal(), password.Context{Email: u.Email, Name: u.DisplayName, Tenant: t.Slug,
		PreviousHashes: previous, Hasher: s.Hasher, Breach: s.Breach})
	if err != nil {
		var te *tutela.Error
		if errors.As(err, &te) && te.Field == "password" {
			return "", &tutela.Error{Code: te.Code, Field: "new_password", Message: te.Message, Err: te.Err}
		}
		return "", err
	}
	return s.Hasher.Hash(ctx, pw.Reveal())
}

// setPassword stores hash, keeps the old one in the history, clears must-change, bumps the
// token version (revoking every session), records the security event and queues notice, the
// e-mail telling the user (nil for none).
func (s *Service) setPassword(ctx context.Context, tx *sqlstore.Tx, cred *sqlstore.Credentials, hash, kind, ip string, notice *Notice) (int64, error) {
	users := tx.Users(cred.User.TenantID)
	if cred.PasswordHash != "" {
		if err := users.AddPasswordHistory(ctx, cred.User.ID, cred.PasswordHash, s.Policy.History); err != nil {
			return 0, err
		}
	}
	if err := users.SetPasswordHash(ctx, cred.User.ID, hash); err != nil {
		return 0, err
	}
	if err := users.SetMustChangePassword(ctx, cred.User.ID, false); err != nil {
		return 0, err
	}
	if _, err := users.RevokeSessions(ctx, cred.User.ID, "", "", kind); err != nil {
		return 0, err
	}
	if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: cred.User.TenantID, UserID: cred.User.ID,
		Kind: kind, IP: ip}); err != nil {
		return 0, err
	}
	if err := notice.Enqueue(ctx, tx); err != nil {
		return 0, err
	}
	_, tv, err := users.PasswordHash(ctx, cred.User.ID)
	return tv, err
}

// RevokeAll signs the user out everywhere: token version up, every session revoked.
func (s *Service) RevokeAll(ctx context.Context, tx *sqlstore.Tx, tenantID, userID, reason, ip string) error {
	users := tx.Users(tenantID)
	if _, err := users.BumpTokenVersion(ctx, userID); err != nil {
		return err
	}
	if _, err := users.RevokeSessions(ctx, userID, "", "", reason); err != nil {
		return err
	}
	return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tenantID, UserID: userID, Kind: "sessions_revoked",
		IP: ip, Details: mustJSON(map[string]string{"reason": reason})})
}

// ResetPassword redeems a one-time reset or setup token for a new password. The token is
// peeked, the password checked and hashed outside any transaction, then the token consumed
// atomically with the change: a rejected password leaves the token usable, and a token can
// never set two passwords. Every session of the user ends.
func (s *Service) ResetPassword(ctx context.Context, tok string, next tutela.Secret, ip string) error {
	return s.redeem(ctx, tok, sqlstore.TokenReset, next, ip)
}

// SetupPassword redeems the bootstrap setup token.
func (s *Service) SetupPassword(ctx context.Context, tok string, next tutela.Secret, ip string) error {
	return s.redeem(ctx, tok, sqlstore.TokenSetup, next, ip)
}

func (s *Service) redeem(ctx context.Context, tok, purpose string, next tutela.Secret, ip string) error {
	var (
		cred    *sqlstore.Credentials
		tenant  *tutela.Tenant
		history []string
	)
	// A code that is not redeemed is an auth.reset or auth.setup failure (ASVS 5.0 16.3.1),
	// with the user only when the code was genuine; never the code. A password the policy
	// refuses is no failed authentication: the code stays usable.
	action := "auth.reset"
	if purpose == sqlstore.TokenSetup {
		action = "auth.setup"
	}
	refused := func(tenantID, userID string) {
		s.recordAuthFailure(ctx, authFailureEvent(ctx, action, tenantID, userID, map[string]any{"reason": "invalid_code"}))
	}
	peeked := false
	err := s.db.View(ctx, func(tx *sqlstore.Tx) error {
		ot, err := tx.PeekToken(ctx, tok, purpose)
		if err != nil {
			return err
		}
		peeked = true
		// The tenant first: a node of another data region answers wrong_region before it reads
		// the user (docs/residency.md), and the code stays usable at the tenant's own region.
		if tenant, err = tx.Tenant(ctx, ot.TenantID); err != nil {
			return err
		}
		if cred, err = tx.Users(ot.TenantID).Credentials(ctx, ot.UserID); err != nil {
			return err
		}
		history, err = tx.Users(ot.TenantID).PasswordHistory(ctx, ot.UserID, s.Policy.History)
		return err
	})
	if err != nil {
		if !peeked && tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
			refused("", "") // unknown, expired or spent: the code names no one
		}
		return err
	}
	prev := history
	if cred.PasswordHash != "" {
		prev = append([]string{cred.PasswordHash}, history...)
	}
	hash, err := s.checkAndHash(ctx, next, cred.User, tenant, prev)
	if err != nil {
		return err
	}
	// A reset is told to the user; a first password set up with the bootstrap token changes
	// nothing anyone had.
	var notice *Notice
	if purpose == sqlstore.TokenReset {
		if notice, err = s.PrepareChange(cred.User, ChangePasswordReset); err != nil {
			return err
		}
	}
	// A genuine code identifies its user: the request's events carry their request data, unless
	// it turns out spent meanwhile (a failed attempt: the tenant's keyset).
	undo := asAuditPerson(ctx, cred.User.TenantID, cred.User.ID)
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		spent, err := tx.ConsumeToken(ctx, tok, purpose)
		if err != nil {
			return err
		}
		if spent.UserID != cred.User.ID {
			return tutela.Errorf(tutela.EUNAUTHENTICATED, "token is invalid or expired")
		}
		kind := "password_reset"
		if purpose == sqlstore.TokenSetup {
			kind = "password_set_up"
		}
		_, err = s.setPassword(ctx, tx, cred, hash, kind, ip, notice)
		return err
	})
	if tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
		// Spent or expired since the peek (a concurrent redemption): the code was this user's.
		undo()
		refused(cred.User.TenantID, cred.User.ID)
	}
	return err
}

// serviceAccountPrincipal resolves a client-credentials token: the account must still exist,
// be active and unexpired, and its tenant active, so disabling either takes effect at once.
// byHolder says the account itself is calling, so its IP allowlist applies to the request's
// address; when a resource server introspects the token, that address is the resource
// server's and says nothing about where the token is used.
func (s *Service) serviceAccountPrincipal(ctx context.Context, c *token.Claims, byHolder bool) (*tutela.Principal, error) {
	m := tutela.RequestMetaFrom(ctx)
	if e, ok := s.cache.accounts.Get(userRef{c.Tenant, c.Subject}, s.db.Now()); ok &&
		ClientUnusable(&e.sa, s.now(), e.tenantActive) == "" && (!byHolder || m == nil || e.sa.AllowsIP(m.IP)) {
		return &tutela.Principal{Kind: tutela.PrincipalServiceAccount, TenantID: e.sa.TenantID, UserID: e.sa.ID, AMR: c.AMR}, nil
	}
	var sa *sqlstore.ServiceAccount
	var tenantActive bool
	var ticket sqlstore.AuthTicket
	err := s.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if sa, err = tx.ServiceAccount(ctx, c.Tenant, c.Subject); err != nil {
			return err
		}
		tenantActive, err = TenantActive(ctx, tx, sa.TenantID)
		ticket = tx.CacheTicket()
		return err
	})
	if tutela.ErrorCode(err) == tutela.EWRONGREGION {
		return nil, err
	}
	if err != nil {
		return nil, &Refusal{Reason: "unknown_client", TenantID: c.Tenant, Err: errSession}
	}
	if reason := ClientUnusable(sa, s.now(), tenantActive); reason != "" {
		return nil, RefuseClient(errSession, reason, sa)
	}
	if byHolder && m != nil && !sa.AllowsIP(m.IP) {
		return nil, RefuseClient(errSession, "ip_not_allowed", sa)
	}
	s.cache.accounts.Put(ticket, userRef{sa.TenantID, sa.ID}, sa.TenantID, accountEntry{sa: *sa, tenantActive: tenantActive}, time.Time{})
	return &tutela.Principal{Kind: tutela.PrincipalServiceAccount, TenantID: sa.TenantID, UserID: sa.ID, AMR: c.AMR}, nil
}
