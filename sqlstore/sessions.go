package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"tutela"
)

// Session is a server-side sign-in session.
type Session struct {
	ID             string        `json:"id"`
	TenantID       string        `json:"tenant_id"`
	UserID         string        `json:"user_id"`
	TokenVersion   int64         `json:"-"`
	AMR            []string      `json:"amr"`
	IP             string        `json:"ip"`
	UserAgent      string        `json:"user_agent"`
	CreatedAt      time.Time     `json:"created_at"`
	LastSeenAt     time.Time     `json:"last_seen_at"`
	IdleTimeout    time.Duration `json:"-"`
	AbsoluteExpiry time.Time     `json:"expires_at"`
	RevokedAt      *time.Time    `json:"-"`
	// StepUpAt is when the session last proved a second factor (nil: never).
	StepUpAt *time.Time `json:"-"`
	// ReauthAt is when the user last re-entered their password in this session (nil: never).
	ReauthAt *time.Time `json:"-"`
	// ClientID is the relying party a client session belongs to ("": a Tutela session of the
	// hosted pages or the /v1 API). A client session is made by an authorization-code exchange,
	// holds that client's refresh-token family, and ends with ParentID, the sign-in session it
	// came from (RevokeSessionByID and Users.RevokeSessions cascade).
	ClientID string `json:"client_id,omitempty"`
	ParentID string `json:"-"`
	// Scope is what the client was granted (space-separated).
	Scope string `json:"-"`
	// DPoPJKT binds the session's tokens to a DPoP key (RFC 9449): the JWK SHA-256 thumbprint.
	DPoPJKT string `json:"-"`
	// AuthTime of a client session is when the user last authenticated in its parent (sign-in
	// or step-up) before the code exchange; nil for other sessions, whose own times say it.
	AuthTime *time.Time `json:"-"`
}

// Active reports whether the session can still be used at now: not revoked, within its idle
// and absolute lifetimes.
func (s *Session) Active(now time.Time) bool { return s.EndReason(now) == "" }

// EndReason says why the session can no longer be used at now — "revoked_session", or
// "session_expired" (its absolute lifetime or its idle timeout has passed) — or "" while it is
// active. Every
// credential of the session (cookie, access token, refresh token) is checked with it, so they
// end alike and are audited alike.
func (s *Session) EndReason(now time.Time) string {
	switch {
	case s.RevokedAt != nil:
		return "revoked_session"
	case !now.Before(s.AbsoluteExpiry), !now.Before(s.LastSeenAt.Add(s.IdleTimeout)):
		return "session_expired"
	}
	return ""
}

// IP and user agent are sealed under the user's person key (migration 00018). The lookups made
// on every request (SessionBySecret, SessionByID) leave them unopened (""): only the listings a
// user or admin reads (Users.Session, Users.Sessions) pay for opening them.
const sessionCols = `id, tenant_id, user_id, token_version, amr, ip_sealed, user_agent_sealed, created_at, last_seen_at,
	idle_timeout_s, absolute_expires_at, revoked_at, step_up_at, reauth_at, client_id, parent_id, scope, dpop_jkt, auth_time`

// Fields the user's person key seals a session's IP and user agent under.
const (
	fieldSessionIP = "sessions.ip"
	fieldSessionUA = "sessions.user_agent"
)

type sealedSession struct{ ip, ua []byte }

func scanSession(row interface{ Scan(...any) error }) (*Session, error) {
	s, _, err := scanSessionSealed(row)
	return s, err
}

// openSession opens a scanned session's IP and user agent.
func (tx *Tx) openSession(ctx context.Context, s *Session, ss *sealedSession) (err error) {
	if s.IP, err = tx.openFor(ctx, s.TenantID, s.UserID, fieldSessionIP, s.ID, ss.ip); err != nil {
		return err
	}
	s.UserAgent, err = tx.openFor(ctx, s.TenantID, s.UserID, fieldSessionUA, s.ID, ss.ua)
	return err
}

func scanSessionSealed(row interface{ Scan(...any) error }) (*Session, *sealedSession, error) {
	var r sessionRow
	err := row.Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, tutela.Errorf(tutela.ENOTFOUND, "session not found")
	}
	if err != nil {
		return nil, nil, err
	}
	s, ss := r.session()
	return s, ss, nil
}

// sessionRow receives sessionCols (dest) and makes the Session and its sealed data of them
// (session).
type sessionRow struct {
	s                                 Session
	ss                                sealedSession
	amr                               string
	idle                              int64
	revoked, stepUp, reauth, authTime sql.NullTime
	clientID, parentID, jkt           sql.NullString
}

func (r *sessionRow) dest() []any {
	s := &r.s
	return []any{&s.ID, &s.TenantID, &s.UserID, &s.TokenVersion, &r.amr, &r.ss.ip, &r.ss.ua, &s.CreatedAt,
		&s.LastSeenAt, &r.idle, &s.AbsoluteExpiry, &r.revoked, &r.stepUp, &r.reauth, &r.clientID, &r.parentID, &s.Scope, &r.jkt, &r.authTime}
}

func (r *sessionRow) session() (*Session, *sealedSession) {
	s, ss := r.s, r.ss
	s.AMR = strings.Fields(r.amr)
	s.IdleTimeout = time.Duration(r.idle) * time.Second
	s.CreatedAt, s.LastSeenAt, s.AbsoluteExpiry = s.CreatedAt.UTC(), s.LastSeenAt.UTC(), s.AbsoluteExpiry.UTC()
	s.RevokedAt = optTime(r.revoked)
	s.StepUpAt, s.ReauthAt = optTime(r.stepUp), optTime(r.reauth)
	s.ClientID, s.ParentID, s.DPoPJKT, s.AuthTime = r.clientID.String, r.parentID.String, r.jkt.String, optTime(r.authTime)
	return &s, &ss
}

// CreateSession stores s (ID, CreatedAt and LastSeenAt are assigned) under the SHA-256 of the
// session secret. A user has at most MaxSessionsPerUser active sessions; when s would be one too
// many, the user's oldest active sessions are revoked (reason "session_limit") rather than the
// sign-in refused, so nobody can lock a user out by signing in as them often, and a
// "session_limit" security event names the sessions that ended.
func (tx *Tx) CreateSession(ctx context.Context, s *Session, secretHash []byte) error {
	if err := tx.lockUser(ctx, s.TenantID, s.UserID); err != nil {
		return err
	}
	// Active as in Session.Active: not revoked, within the absolute and the idle lifetime.
	// Newest first; everything after the newest limit-1 makes room for s. Sign-in sessions
	// count against MaxSessionsPerUser; a relying party's against MaxClientSessionsPerSignIn,
	// among its own sessions of the same sign-in only.
	scope, limit := `client_id IS NULL`, MaxSessionsPerUser
	if s.ClientID != "" {
		scope, limit = `client_id = $6 AND parent_id IS NULL`, MaxClientSessionsPerSignIn
		if s.ParentID != "" {
			scope = `client_id = $6 AND parent_id = $7`
		}
	}
	args := []any{s.TenantID, s.UserID, tx.now, math.MaxInt32, limit - 1}
	if s.ClientID != "" {
		args = append(args, s.ClientID)
		if s.ParentID != "" {
			args = append(args, s.ParentID)
		}
	}
	rows, err := tx.query(ctx, `SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL
		AND `+scope+` AND absolute_expires_at > $3 AND `+tx.idleEnds(">", "$3")+` ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5`,
		args...)
	if err != nil {
		return err
	}
	var evict []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		evict = append(evict, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	s.ID, s.CreatedAt, s.LastSeenAt = tutela.NewID(), tx.now, tx.now
	var stepUp any
	if s.StepUpAt != nil {
		stepUp = s.StepUpAt.UTC()
	}
	ip, err := tx.sealFor(ctx, s.TenantID, s.UserID, fieldSessionIP, s.ID, s.IP)
	if err != nil {
		return err
	}
	ua, err := tx.sealFor(ctx, s.TenantID, s.UserID, fieldSessionUA, s.ID, truncate(s.UserAgent, 512))
	if err != nil {
		return err
	}
	_, err = tx.exec(ctx, `INSERT INTO sessions (id, tenant_id, user_id, token_hash, token_version, amr, ip, user_agent,
		created_at, last_seen_at, idle_timeout_s, absolute_expires_at, step_up_at, ip_sealed, user_agent_sealed,
		client_id, parent_id, scope, dpop_jkt, auth_time)
		VALUES ($1,$2,$3,$4,$5,$6,'','',$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)`,
		s.ID, s.TenantID, s.UserID, secretHash, s.TokenVersion, strings.Join(s.AMR, " "),
		s.CreatedAt, s.LastSeenAt, int64(s.IdleTimeout/time.Second), s.AbsoluteExpiry.UTC(), stepUp, ip, ua,
		nullString(s.ClientID), nullString(s.ParentID), s.Scope, nullString(s.DPoPJKT), optTimeArg(s.AuthTime))
	if err != nil {
		return err
	}
	details := map[string]any{"user_id": s.UserID, "amr": strings.Join(s.AMR, " ")}
	if s.ClientID != "" {
		details["client_id"], details["parent_id"] = s.ClientID, s.ParentID
	}
	if len(evict) > 0 {
		for _, id := range evict {
			if err := tx.RevokeSessionByID(ctx, id, "session_limit"); err != nil {
				return err
			}
		}
		b, err := json.Marshal(map[string]any{"session_id": s.ID, "revoked_sessions": evict, "limit": limit})
		if err != nil {
			return err
		}
		if err := tx.RecordSecurityEvent(ctx, &SecurityEvent{TenantID: s.TenantID, UserID: s.UserID, Kind: "session_limit",
			IP: s.IP, Details: string(b)}); err != nil {
			return err
		}
		details["revoked_sessions"] = len(evict)
	}
	// The request data of a sign-in is the user's, whoever the actor (anonymous until then).
	return tx.Record(withAuditPerson(ctx, s.TenantID, s.UserID), "session.create", s.TenantID, "session", s.ID, "", details)
}

// idleEnds compares the moment a session's idle timeout ends with the time parameter param
// (op is "<" or ">"), in the store's dialect.
func (tx *Tx) idleEnds(op, param string) string {
	if tx.db.dialect == SQLite {
		return `julianday(last_seen_at) + idle_timeout_s / 86400.0 ` + op + ` julianday(` + param + `)`
	}
	return `last_seen_at + idle_timeout_s * INTERVAL '1 second' ` + op + ` ` + param
}

// SessionBySecret returns the session whose secret hashes to secretHash, whatever its state;
// callers check Active and the token version.
func (tx *Tx) SessionBySecret(ctx context.Context, secretHash []byte) (*Session, error) {
	return scanSession(tx.queryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token_hash = $1`, secretHash))
}

// Session returns one of the user's sessions by its public ID.
func (r Users) Session(ctx context.Context, userID, id string) (*Session, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(userID) || !tutela.ValidID(r.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "session not found")
	}
	s, ss, err := scanSessionSealed(r.tx.queryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND id = $3`,
		r.tenantID, userID, id))
	if err != nil {
		return nil, err
	}
	return s, r.tx.openSession(ctx, s, ss)
}

// Sessions lists the user's sessions that are not revoked, newest first.
func (r Users) Sessions(ctx context.Context, userID string) ([]*Session, error) {
	rows, err := r.tx.query(ctx, `SELECT `+sessionCols+` FROM sessions WHERE tenant_id = $1 AND user_id = $2
		AND revoked_at IS NULL AND absolute_expires_at > $3 ORDER BY created_at DESC LIMIT 500`, r.tenantID, userID, r.tx.now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Session
	var sealed []*sealedSession
	for rows.Next() {
		s, ss, err := scanSessionSealed(rows)
		if err != nil {
			return nil, err
		}
		out, sealed = append(out, s), append(sealed, ss)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for i, s := range out {
		if err := r.tx.openSession(ctx, s, sealed[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TouchSession records activity, extending the idle timeout.
func (tx *Tx) TouchSession(ctx context.Context, id string) error {
	_, err := tx.exec(ctx, `UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND revoked_at IS NULL`, tx.now, id)
	return err
}

// RevokeSessions revokes the user's sessions: the one with id (and its client sessions) when id
// is set, otherwise all of them except keepID and its client sessions. It returns how many it
// revoked.
func (r Users) RevokeSessions(ctx context.Context, userID, id, keepID, reason string) (int64, error) {
	q := `tenant_id = $3 AND user_id = $4`
	args := []any{r.tenantID, userID}
	switch {
	case id != "":
		if !tutela.ValidID(id) {
			return 0, nil
		}
		// A client session ends with the sign-in session it came from.
		q += ` AND (id = $5 OR parent_id = $5)`
		args = append(args, id)
	case keepID != "":
		// The kept session's client sessions are kept with it: "sign out everywhere else"
		// must not sign this browser out of the applications it signed in to.
		q += ` AND id <> $5 AND (parent_id IS NULL OR parent_id <> $5)`
		args = append(args, keepID)
	}
	n, err := r.tx.revokeSessions(ctx, q, reason, args...)
	if err != nil || n == 0 {
		return n, err
	}
	return n, r.tx.Record(ctx, "session.revoke", r.tenantID, "user", userID, "", map[string]any{"reason": reason, "sessions": n, "session_id": id})
}

// BumpTokenVersion increments the user's token version, which invalidates every session,
// refresh token and access token issued before, and returns the new version.
func (r Users) BumpTokenVersion(ctx context.Context, userID string) (int64, error) {
	var v int64
	err := r.tx.queryRow(ctx, `UPDATE users SET token_version = token_version + 1, updated_at = $1
		WHERE tenant_id = $2 AND id = $3 RETURNING token_version`, r.tx.now, r.tenantID, userID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return 0, err
	}
	return v, r.tx.Record(ctx, "user.token_version_bump", r.tenantID, "user", userID, "", nil)
}

// RevokeSessionByID revokes one session and every refresh token of its family.
func (tx *Tx) RevokeSessionByID(ctx context.Context, id, reason string) error {
	var tenantID, userID string
	var clientID, parentID sql.NullString
	// The family's refresh tokens first, then the session: a refresh locks its token, then its
	// session (UseRefreshTokenSession), and the opposite order here deadlocked the two on
	// PostgreSQL (one aborted after deadlock_timeout). A token the refresh adds after this
	// statement belongs to a session revoked below, which every use checks. Only an active
	// session's tokens are marked (read, not locked): the refresh tells a token marked at its
	// session's revocation from a reused one by the two times being equal, so a session revoked
	// earlier (its tokens left unmarked) must not get tokens marked at another time.
	if _, err := tx.exec(ctx, `UPDATE refresh_tokens SET used_at = $1 WHERE session_id = $2 AND used_at IS NULL
		AND EXISTS (SELECT 1 FROM sessions WHERE id = $2 AND revoked_at IS NULL)`, tx.now, id); err != nil {
		return err
	}
	err := tx.queryRow(ctx, `UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL
		RETURNING tenant_id, user_id, client_id, parent_id`, tx.now, reason, id).Scan(&tenantID, &userID, &clientID, &parentID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // already revoked
	}
	if err != nil {
		return mapErr(err)
	}
	if clientID.String != "" {
		if err := tx.clientSessionsEnded(ctx, []EndedSession{{ID: id, TenantID: tenantID, UserID: userID,
			ClientID: clientID.String, ParentID: parentID.String, Reason: reason}}); err != nil {
			return err
		}
	}
	if err := tx.Record(ctx, "session.revoke", tenantID, "session", id, "", map[string]any{"reason": reason, "user_id": userID}); err != nil {
		return err
	}
	// The client sessions that came from it end with it (relying parties' sign-ins are bounded
	// by the Tutela session).
	children, err := tx.childSessions(ctx, id)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := tx.RevokeSessionByID(ctx, c, reason); err != nil {
			return err
		}
	}
	return nil
}

// childSessions are the active client sessions made from the sign-in session id.
func (tx *Tx) childSessions(ctx context.Context, id string) ([]string, error) {
	rows, err := tx.query(ctx, `SELECT id FROM sessions WHERE parent_id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// SessionByID returns a session by its ID, whatever its state.
func (tx *Tx) SessionByID(ctx context.Context, id string) (*Session, error) {
	if !tutela.ValidID(id) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "session not found")
	}
	return scanSession(tx.queryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
}

// RevokeTenantSessions signs every user of the tenant out: each token version goes up (so
// every access and refresh token dies too) and every session is revoked. It returns how many
// sessions it ended.
func (tx *Tx) RevokeTenantSessions(ctx context.Context, tenantID, reason string) (int64, error) {
	if _, err := tx.exec(ctx, `UPDATE users SET token_version = token_version + 1, updated_at = $1 WHERE tenant_id = $2`,
		tx.now, tenantID); err != nil {
		return 0, err
	}
	n, err := tx.revokeSessions(ctx, `tenant_id = $3`, reason, tenantID)
	if err != nil {
		return 0, err
	}
	return n, tx.Record(ctx, "tenant.sessions_revoked", tenantID, "tenant", tenantID, "", map[string]any{"reason": reason, "sessions": n})
}

// StepUp records that the session proved a second factor now, adding the method to its amr.
func (tx *Tx) StepUp(ctx context.Context, sessionID, method string) error {
	sess, err := tx.SessionByID(ctx, sessionID)
	if err != nil {
		return err
	}
	amr := sess.AMR
	if !slices.Contains(amr, method) {
		amr = append(amr, method)
	}
	if _, err := tx.exec(ctx, `UPDATE sessions SET step_up_at = $1, amr = $2 WHERE id = $3 AND revoked_at IS NULL`,
		tx.now, strings.Join(amr, " "), sessionID); err != nil {
		return err
	}
	return tx.Record(ctx, "session.step_up", sess.TenantID, "session", sessionID, "", map[string]any{"method": method})
}

// RenewSessionSecret replaces an active session's secret (stored as its SHA-256): the old
// cookie stops working, the session and its tokens go on.
func (tx *Tx) RenewSessionSecret(ctx context.Context, sessionID string, secretHash []byte) error {
	return tx.updateActiveSession(ctx, sessionID, "session.renew_secret", `token_hash = $1`, secretHash)
}

// Reauthenticated records that the session's user re-entered their password now.
func (tx *Tx) Reauthenticated(ctx context.Context, sessionID string) error {
	return tx.updateActiveSession(ctx, sessionID, "session.reauthenticate", `reauth_at = $1`, tx.now)
}

// updateActiveSession sets one column ($1) of an unrevoked session and records action, in one
// statement that also returns the tenant for the audit record.
func (tx *Tx) updateActiveSession(ctx context.Context, sessionID, action, set string, value any) error {
	var tenantID string
	err := tx.queryRow(ctx, `UPDATE sessions SET `+set+` WHERE id = $2 AND revoked_at IS NULL RETURNING tenant_id`,
		value, sessionID).Scan(&tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return tutela.Errorf(tutela.ENOTFOUND, "session not found")
	}
	if err != nil {
		return err
	}
	return tx.Record(ctx, action, tenantID, "session", sessionID, "", nil)
}

// TenantRequiresMFA reports whether the tenant requires a second factor of every user.
func (tx *Tx) TenantRequiresMFA(ctx context.Context, tenantID string) (bool, error) {
	var all bool
	err := tx.queryRow(ctx, `SELECT mfa_required_all FROM tenants WHERE id = $1`, tenantID).Scan(&all)
	if errors.Is(err, sql.ErrNoRows) {
		return false, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return all, err
}

// SetTenantRequiresMFA sets the tenant's "every user needs MFA" option.
func (tx *Tx) SetTenantRequiresMFA(ctx context.Context, tenantID string, all bool) error {
	res, err := tx.exec(ctx, `UPDATE tenants SET mfa_required_all = $1 WHERE id = $2`, all, tenantID)
	if err := affectedOne(res, err, "tenant not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "tenant.mfa_policy", tenantID, "tenant", tenantID, "", map[string]any{"all_users": all})
}

// TenantRequiresPrivateKeyJWT reports whether the tenant's service accounts may only use
// private_key_jwt (no shared secrets).
func (tx *Tx) TenantRequiresPrivateKeyJWT(ctx context.Context, tenantID string) (bool, error) {
	var v bool
	err := tx.queryRow(ctx, `SELECT require_private_key_jwt FROM tenants WHERE id = $1`, tenantID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return v, err
}

// SetTenantRequiresPrivateKeyJWT sets that policy.
func (tx *Tx) SetTenantRequiresPrivateKeyJWT(ctx context.Context, tenantID string, v bool) error {
	res, err := tx.exec(ctx, `UPDATE tenants SET require_private_key_jwt = $1 WHERE id = $2`, v, tenantID)
	if err := affectedOne(res, err, "tenant not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "tenant.client_auth_policy", tenantID, "tenant", tenantID, "", map[string]any{"require_private_key_jwt": v})
}
