package sqlstore

import (
	"context"
	"database/sql"
)

// EndedSession is a relying party's session (Session.ClientID set) that a revocation just
// ended, for OpenID Back-Channel Logout: the client is told its user's sign-in is over.
type EndedSession struct {
	ID       string
	TenantID string
	UserID   string
	ClientID string
	ParentID string // the sign-in session it came from
	Reason   string
}

// ClientSessionHook is called inside the revoking transaction for each client session it
// ends. Its error rolls the revocation back, so the revocation and what the hook adds (a
// back-channel logout job) commit together or not at all.
type ClientSessionHook func(ctx context.Context, tx *Tx, s EndedSession) error

// OnClientSessionEnded sets the hook every revocation path calls for the client sessions it
// ends (RevokeSessionByID and its cascade, Users.RevokeSessions, RevokeTenantSessions): logout,
// revoking one session or all, password change or reset, refresh-token reuse, an admin's
// revocation and a tenant-wide sign-out alike. Set it once, before serving.
func (db *DB) OnClientSessionEnded(h ClientSessionHook) { db.clientSessionEnded = h }

// revokeSessions revokes the active sessions matching where ($1 is now, $2 the reason) and calls
// the client-session hook for the client sessions among them. It returns how many it revoked.
func (tx *Tx) revokeSessions(ctx context.Context, where, reason string, args ...any) (int64, error) {
	rows, err := tx.query(ctx, `UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE revoked_at IS NULL AND `+where+`
		RETURNING id, tenant_id, user_id, client_id, parent_id`, append([]any{tx.now, reason}, args...)...)
	if err != nil {
		return 0, err
	}
	var n int64
	var ended []EndedSession
	for rows.Next() {
		var s EndedSession
		var client, parent sql.NullString
		if err := rows.Scan(&s.ID, &s.TenantID, &s.UserID, &client, &parent); err != nil {
			rows.Close()
			return 0, err
		}
		n++
		if client.Valid && client.String != "" {
			s.ClientID, s.ParentID, s.Reason = client.String, parent.String, reason
			ended = append(ended, s)
		}
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if err := rows.Err(); err != nil {
		return 0, mapErr(err)
	}
	return n, tx.clientSessionsEnded(ctx, ended)
}

// clientSessionsEnded runs the hook for each ended client session (rows closed first: the hook
// uses the transaction).
func (tx *Tx) clientSessionsEnded(ctx context.Context, ended []EndedSession) error {
	if tx.db.clientSessionEnded == nil {
		return nil
	}
	for _, s := range ended {
		if err := tx.db.clientSessionEnded(ctx, tx, s); err != nil {
			return err
		}
	}
	return nil
}
