package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"tutela"
)

// RefreshToken is a stored refresh token.
type RefreshToken struct {
	ID        string
	SessionID string
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// CreateRefreshToken stores a refresh token of the session's family.
func (tx *Tx) CreateRefreshToken(ctx context.Context, sessionID string, secretHash []byte, expires time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, tutela.NewID(), sessionID, secretHash, tx.now, expires.UTC())
	return err
}

// UseRefreshToken marks the refresh token as used and returns it. When it was already used,
// it returns the token with UsedAt set and marks nothing: the caller treats that as reuse.
func (tx *Tx) UseRefreshToken(ctx context.Context, secretHash []byte) (*RefreshToken, error) {
	var t RefreshToken
	// Conditional update: of two concurrent uses exactly one marks it (the other waits for its
	// row lock, then finds used_at set); the other sees reuse below.
	err := tx.queryRow(ctx, `UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL
		RETURNING id, session_id, expires_at`, tx.now, secretHash).Scan(&t.ID, &t.SessionID, &t.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return tx.usedRefreshToken(ctx, secretHash)
	}
	if err != nil {
		return nil, mapErr(err)
	}
	t.ExpiresAt = t.ExpiresAt.UTC()
	return &t, nil
}

// usedRefreshToken is UseRefreshToken's answer when nothing was marked: the token was used
// before (returned with UsedAt set, for the caller's reuse detection), or it is unknown.
func (tx *Tx) usedRefreshToken(ctx context.Context, secretHash []byte) (*RefreshToken, error) {
	t, err := tx.PeekRefreshToken(ctx, secretHash)
	if err != nil {
		return nil, err
	}
	if t.UsedAt == nil {
		u := tx.now // not markable a moment ago yet unmarked now: reuse all the same (fail closed)
		t.UsedAt = &u
	}
	return t, nil
}

// RefreshUse is a refresh token used by UseRefreshTokenSession, its session, and what a
// refresh reads next: the session's tenant and its user's credentials, as they were when the
// token was used.
type RefreshUse struct {
	Token   *RefreshToken
	Session *Session

	tx *Tx
	// next is the hash of the session's next refresh token; renewed says the statement that
	// used the token already stored it and touched the session (Renew).
	next    []byte
	renewed bool
	// Read with the token by PostgreSQL's statement when it marked the token (nil
	// otherwise: read when asked).
	tenant  *tutela.Tenant
	cred    *Credentials
	sealed  *sealedUser
	wrapped []byte // the user's person key as person_keys holds it (nil: none)
}

// Tenant is the session's tenant, as Tx.Tenant returns it (EWRONGREGION for a tenant of another
// data region).
func (u *RefreshUse) Tenant(ctx context.Context) (*tutela.Tenant, error) {
	if u.tenant == nil {
		return u.tx.Tenant(ctx, u.Session.TenantID)
	}
	return u.tenant, u.tx.servesRegion(ctx, u.tenant.ID, u.tenant)
}

// Credentials are the session user's, as Users.Credentials returns them (their e-mail and
// name opened; not found when their person key is gone).
func (u *RefreshUse) Credentials(ctx context.Context) (*Credentials, error) {
	if u.cred == nil {
		return u.tx.Users(u.Session.TenantID).Credentials(ctx, u.Session.UserID)
	}
	if u.wrapped != nil {
		if _, err := u.tx.openUserKey(ctx, u.cred.User.TenantID, u.cred.User.ID, u.wrapped); err != nil {
			return nil, fmt.Errorf("user %s: %w", u.cred.User.ID, err)
		}
	}
	// With the key opened above, open does not read it again; without one it reads, to find
	// none (errUserKeyGone) as Credentials would.
	if err := u.tx.Users(u.cred.User.TenantID).open(ctx, u.cred.User, u.sealed); err != nil {
		return nil, err
	}
	c := *u.cred
	return &c, nil
}

// Renew records activity on the session and stores its next refresh token (as RenewSession):
// the refresh's writes, once every check has passed. On PostgreSQL the statement that used the
// token made them already (UseRefreshTokenSession), and Renew writes nothing; so does a second
// call.
func (u *RefreshUse) Renew(ctx context.Context) error {
	if u.renewed {
		return nil
	}
	if err := u.tx.RenewSession(ctx, u.Session.ID, u.next, u.Session.AbsoluteExpiry); err != nil {
		return err
	}
	u.renewed = true
	return nil
}

// UseRefreshTokenSession is UseRefreshToken that also returns the token's session (as
// SessionByID reads it), and with it what the refresh reads next; nextHash is the hash of the
// session's next refresh token, which Renew stores.
//
// On PostgreSQL it is the refresh's one statement: it marks the token, reads its session,
// tenant, user and the user's person key, and already makes Renew's writes (the session
// touched, the next token stored). Those writes are optimistic: a refresh refused after this
// call must roll its transaction back (every refusal of identity's refresh does), or a session
// would be touched and keep a next token nobody was given. A token used before (or unknown)
// writes nothing there.
func (tx *Tx) UseRefreshTokenSession(ctx context.Context, secretHash, nextHash []byte) (*RefreshUse, error) {
	if tx.db.dialect != Postgres {
		// SQLite's RETURNING names only the updated table's columns: statements in process,
		// the tenant and credentials read when asked.
		t, err := tx.UseRefreshToken(ctx, secretHash)
		if err != nil {
			return nil, err
		}
		s, err := tx.SessionByID(ctx, t.SessionID)
		if err != nil {
			return nil, err
		}
		return &RefreshUse{Token: t, Session: s, tx: tx, next: nextHash}, nil
	}
	var t RefreshToken
	var sr sessionRow
	var tr tenantRow
	var ur userRow
	var c Credentials
	var hash sql.NullString
	var wrapped []byte
	// The token's row is found and marked by itself (the unique token_hash index), and
	// everything else is reached from that one row by key, in that order whatever the planner
	// knows of the tables: the session through a scalar subquery (at most one row: token_hash
	// is unique), the tenant, user and person key through LATERAL subqueries kept apart by
	// OFFSET 0 (not flattened, so not reordered). Joined freely, the planner started from the
	// users on small or unanalyzed tables — every user of the tenant scanned, the sessions and
	// the token probed once per user. The statements of the WITH all see the rows as they were
	// before it (the session's last_seen_at read is the old one), and write nothing when the
	// token was not marked. The joins are inner on purpose for users and tenants (sessions'
	// foreign keys keep both): a row missing returns nothing, the fallback below reads the token
	// (marked by this transaction) as reuse and the refusal rolls it all back (fail closed).
	// Only the person key may be missing (erased).
	err := tx.queryRow(ctx, `WITH used AS (
			UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL
			RETURNING id, session_id, expires_at),
		touched AS (UPDATE sessions SET last_seen_at = $1 WHERE id = (SELECT session_id FROM used) AND revoked_at IS NULL),
		next AS (INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
			SELECT $3, id, $4, $1, absolute_expires_at FROM sessions WHERE id = (SELECT session_id FROM used))
		SELECT `+prefixedSessionCols+`, used.id, used.session_id, used.expires_at, `+prefixedTenantCols+`, `+prefixedUserCols+`,
			u.password_hash, u.token_version, u.must_change_password, pk.wrapped
		FROM used
			CROSS JOIN LATERAL (SELECT * FROM sessions WHERE id = used.session_id OFFSET 0) s
			CROSS JOIN LATERAL (SELECT * FROM tenants WHERE id = s.tenant_id OFFSET 0) t
			CROSS JOIN LATERAL (SELECT * FROM users WHERE tenant_id = s.tenant_id AND id = s.user_id OFFSET 0) u
			LEFT JOIN LATERAL (SELECT wrapped FROM person_keys WHERE tenant_id = s.tenant_id AND person_id = s.user_id OFFSET 0) pk ON true`,
		tx.now, secretHash, tutela.NewID(), nextHash).
		Scan(slices.Concat(sr.dest(), []any{&t.ID, &t.SessionID, &t.ExpiresAt}, tr.dest(), ur.dest(),
			[]any{&hash, &c.TokenVersion, &c.MustChangePassword, &wrapped})...)
	if errors.Is(err, sql.ErrNoRows) {
		// Nothing marked: used before, or unknown (or marked with a session this transaction
		// cannot read, which the refusal rolls back). The rare paths take the statements they
		// need.
		used, err := tx.usedRefreshToken(ctx, secretHash)
		if err != nil {
			return nil, err
		}
		s, err := tx.SessionByID(ctx, used.SessionID)
		if err != nil {
			return nil, err
		}
		return &RefreshUse{Token: used, Session: s, tx: tx, next: nextHash}, nil
	}
	if err != nil {
		return nil, mapErr(err)
	}
	s, _ := sr.session()
	var sealed *sealedUser
	c.User, sealed = ur.user()
	t.ExpiresAt, c.PasswordHash = t.ExpiresAt.UTC(), hash.String
	return &RefreshUse{Token: &t, Session: s, tx: tx, next: nextHash, renewed: true,
		tenant: tr.tenant(), cred: &c, sealed: sealed, wrapped: wrapped}, nil
}

// prefixedSessionCols is sessionCols of the table aliased s (a constant, like every query
// text; TestPrefixedCols keeps the two lists equal).
const prefixedSessionCols = `s.id, s.tenant_id, s.user_id, s.token_version, s.amr, s.ip_sealed, s.user_agent_sealed,
	s.created_at, s.last_seen_at, s.idle_timeout_s, s.absolute_expires_at, s.revoked_at, s.step_up_at, s.reauth_at,
	s.client_id, s.parent_id, s.scope, s.dpop_jkt, s.auth_time`

// RenewSession records activity on the session (as TouchSession) and stores the next refresh
// token of its family (as CreateRefreshToken): a refresh's writes, on PostgreSQL in one
// statement.
func (tx *Tx) RenewSession(ctx context.Context, sessionID string, secretHash []byte, expires time.Time) error {
	if tx.db.dialect != Postgres {
		if err := tx.TouchSession(ctx, sessionID); err != nil {
			return err
		}
		return tx.CreateRefreshToken(ctx, sessionID, secretHash, expires)
	}
	_, err := tx.exec(ctx, `WITH touched AS (UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND revoked_at IS NULL)
		INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at) VALUES ($3, $2, $4, $1, $5)`,
		tx.now, sessionID, tutela.NewID(), secretHash, expires.UTC())
	return err
}
