package identity

import (
	"context"
	"crypto/sha256"
	"slices"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// The identity service's caches of authentication state (docs/caching.md). Each holds only
// what a successful check read; every refusal reads the database again, so refusal reasons and
// their audit events are exactly those of the uncached path. Timestamps are cached, never
// verdicts: expiry, idle timeout and step-up freshness are judged at each use with the clock.
type authCaches struct {
	// principals: (tenant, user) → what principal read about the user and their tenant.
	principals *sqlstore.AuthCache[userRef, principalEntry]
	// sessions: (tenant, user, session) → the session, for access tokens naming it.
	sessions *sqlstore.AuthCache[sessionRef, sqlstore.Session]
	// cookies: SHA-256 of a session cookie's secret → its session (no plaintext kept).
	cookies *sqlstore.AuthCache[[sha256.Size]byte, sqlstore.Session]
	// accounts: (tenant, service account) → the account and its tenant's status.
	accounts *sqlstore.AuthCache[userRef, accountEntry]
	// clients: client ID → the account whose secret was last checked right, with that secret's
	// SHA-256, compared in constant time with the one presented.
	clients *sqlstore.AuthCache[string, clientEntry]
}

type userRef struct{ tenant, id string }

type sessionRef struct{ tenant, user, session string }

// principalEntry is a user who passed principal at token version tv.
type principalEntry struct {
	tv                        int64
	roles                     []string
	mustChange, mustEnrollMFA bool
}

type accountEntry struct {
	sa           sqlstore.ServiceAccount
	tenantActive bool
}

type clientEntry struct {
	sa           sqlstore.ServiceAccount
	tenantActive bool
	pkOnly       bool
	secret       [sha256.Size]byte
	secretUntil  time.Time // zero: the secret does not expire
}

func newAuthCaches(db *sqlstore.DB, entries int) authCaches {
	w := db.AuthEpochs()
	return authCaches{
		principals: sqlstore.NewAuthCache[userRef, principalEntry](w, entries),
		sessions:   sqlstore.NewAuthCache[sessionRef, sqlstore.Session](w, entries),
		cookies:    sqlstore.NewAuthCache[[sha256.Size]byte, sqlstore.Session](w, entries),
		accounts:   sqlstore.NewAuthCache[userRef, accountEntry](w, entries),
		clients:    sqlstore.NewAuthCache[string, clientEntry](w, entries),
	}
}

// cachedPrincipal is principal from the cache: nil unless the user passed it at token version
// tv under the current epochs (anything else, refusals included, reads the database).
func (s *Service) cachedPrincipal(tenantID, userID string, tv int64, now time.Time) *tutela.Principal {
	e, ok := s.cache.principals.Get(userRef{tenantID, userID}, now)
	if !ok || e.tv != tv {
		return nil
	}
	return &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: tenantID, UserID: userID, Roles: slices.Clone(e.roles),
		MustChangePassword: e.mustChange, MustEnrollMFA: e.mustEnrollMFA}
}

// rememberPrincipal caches p, which principal just built in tx at token version tv.
func (s *Service) rememberPrincipal(ctx context.Context, tx *sqlstore.Tx, p *tutela.Principal, tv int64) error {
	t := tx.CacheTicket()
	if !t.Caching() {
		return nil
	}
	until, err := tx.Users(p.TenantID).NextRoleExpiry(ctx, p.UserID)
	if err != nil {
		return err
	}
	s.cache.principals.Put(t, userRef{p.TenantID, p.UserID}, p.TenantID, principalEntry{tv: tv, roles: slices.Clone(p.Roles),
		mustChange: p.MustChangePassword, mustEnrollMFA: p.MustEnrollMFA}, until)
	return nil
}

// cachedSession returns the cached session of an access token if it is still live at now.
func (s *Service) cachedSession(tenantID, userID, sessionID string, now time.Time) (*sqlstore.Session, bool) {
	sess, ok := s.cache.sessions.Get(sessionRef{tenantID, userID, sessionID}, now)
	if !ok || sess.EndReason(now) != "" {
		return nil, false // ended, or idle here but maybe used on another node: ask the database
	}
	return &sess, true
}
