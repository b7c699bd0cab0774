package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"tutela"
	"tutela/audit"
)

// Throttle is one brute-force counter (an account, an IP, or an IP+account pair).
type Throttle struct {
	Key         []byte
	Kind        string
	Subject     []byte // the account key a pair counter belongs to, so an unlock clears its pairs
	Failures    int
	WindowStart time.Time
	Locks       int
	LockedUntil time.Time // zero when not locked
	// Contrib counts the failures this (pair) counter has added to its account's counter in
	// the account's window starting at ContribWindow.
	Contrib       int
	ContribWindow time.Time
	UpdatedAt     time.Time
}

func scanThrottle(row interface{ Scan(...any) error }) (*Throttle, error) {
	var t Throttle
	var locked, cw sql.NullTime
	if err := row.Scan(&t.Key, &t.Kind, &t.Subject, &t.Failures, &t.WindowStart, &t.Locks, &locked, &t.UpdatedAt,
		&t.Contrib, &cw); err != nil {
		return nil, err
	}
	if cw.Valid {
		t.ContribWindow = cw.Time.UTC()
	}
	t.WindowStart, t.UpdatedAt = t.WindowStart.UTC(), t.UpdatedAt.UTC()
	if locked.Valid {
		t.LockedUntil = locked.Time.UTC()
	}
	return &t, nil
}

const throttleCols = `key, kind, subject, failures, window_start, locks, locked_until, updated_at, contrib, contrib_window`

// Throttles returns the counters that exist among keys, in the order of keys, without locking
// them. One query, whatever the number of keys.
func (tx *Tx) Throttles(ctx context.Context, keys ...[]byte) ([]*Throttle, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	rows, err := tx.query(ctx, `SELECT `+throttleCols+` FROM auth_throttle WHERE key IN (`+placeholders(len(keys))+`)`,
		bytesArgs(keys)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var found []*Throttle
	for rows.Next() {
		t, err := scanThrottle(rows)
		if err != nil {
			return nil, err
		}
		found = append(found, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []*Throttle
	for _, k := range keys {
		for _, t := range found {
			if bytes.Equal(t.Key, k) {
				out = append(out, t)
				break
			}
		}
	}
	return out, nil
}

func bytesArgs(bs [][]byte) []any {
	args := make([]any, len(bs))
	for i, b := range bs {
		args[i] = b
	}
	return args
}

// LockThrottle returns the counter for key, creating it if needed, locked for update until the
// transaction ends, so concurrent attempts on several nodes are all counted and a check made on
// the counter still holds when the transaction commits.
//
// It is one upsert: on PostgreSQL ON CONFLICT DO UPDATE locks the existing row, and if a
// concurrent transaction deletes that row (ResetThrottles after a successful sign-in) it inserts
// a fresh one instead, where INSERT … DO NOTHING followed by SELECT … FOR UPDATE would find no
// row. SQLite runs one write transaction at a time, which locks as much.
func (tx *Tx) LockThrottle(ctx context.Context, key []byte, kind string, subject []byte) (*Throttle, error) {
	return scanThrottle(tx.queryRow(ctx, `INSERT INTO auth_throttle (key, kind, subject, failures, window_start, locks, updated_at)
		VALUES ($1, $2, $3, 0, $4, 0, $4) ON CONFLICT (key) DO UPDATE SET kind = auth_throttle.kind
		RETURNING `+throttleCols, key, kind, subject, tx.now))
}

// SaveThrottle writes back a counter obtained from LockThrottle.
func (tx *Tx) SaveThrottle(ctx context.Context, t *Throttle) error {
	var locked any
	if !t.LockedUntil.IsZero() {
		locked = t.LockedUntil.UTC()
	}
	var cw any
	if !t.ContribWindow.IsZero() {
		cw = t.ContribWindow.UTC()
	}
	_, err := tx.exec(ctx, `UPDATE auth_throttle SET failures = $1, window_start = $2, locks = $3, locked_until = $4,
		updated_at = $5, contrib = $6, contrib_window = $7 WHERE key = $8`,
		t.Failures, t.WindowStart.UTC(), t.Locks, locked, tx.now, t.Contrib, cw, t.Key)
	return err
}

// ResetThrottles deletes the counters for keys (a successful sign-in, an admin unlock).
func (tx *Tx) ResetThrottles(ctx context.Context, keys ...[]byte) error {
	for _, k := range keys {
		if _, err := tx.exec(ctx, `DELETE FROM auth_throttle WHERE key = $1`, k); err != nil {
			return err
		}
	}
	return nil
}

// ClearThrottles deletes the counters for keys, as a successful sign-in does, locking each
// existing row as it deletes it, and returns the latest lock among them that lasts past the
// transaction's time (zero if none does). When it is not zero the caller must roll the
// transaction back: the rows were deleted, lock and all.
//
// One DELETE … RETURNING per key, in the order of keys, rather than one statement for all of
// them: a single DELETE … WHERE key IN (…) locks the rows in the order it scans them, which is
// no order a caller chooses, so it could take the account row while a concurrent failure holds
// the pair row and waits for the account's (a deadlock on PostgreSQL). Callers pass keys in the
// order every transaction locks throttle rows (pair, account, IP: identity/throttle.go).
// DELETE … RETURNING rather than a read and then a delete: on PostgreSQL the DELETE waits for a
// concurrent failure holding the row and then sees (and returns) the lock that failure set, and
// a row inserted after its snapshot is not deleted, so a lock is never erased unseen.
func (tx *Tx) ClearThrottles(ctx context.Context, keys ...[]byte) (time.Time, error) {
	var until time.Time
	for _, k := range keys {
		var locked sql.NullTime
		err := tx.queryRow(ctx, `DELETE FROM auth_throttle WHERE key = $1 RETURNING locked_until`, k).Scan(&locked)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return until, err
		}
		if locked.Valid && locked.Time.After(tx.now) && locked.Time.After(until) {
			until = locked.Time.UTC()
		}
	}
	return until, nil
}

// ResetThrottlesFor deletes the counter of an account key and of every IP+account pair that
// belongs to it (an admin unlock): the pairs first, then the account, the order in which a
// sign-in locks them, so that an unlock and a concurrent sign-in cannot deadlock on PostgreSQL
// (one DELETE … WHERE key = $1 OR subject = $1 would lock them in scan order).
func (tx *Tx) ResetThrottlesFor(ctx context.Context, accountKey []byte) error {
	if _, err := tx.exec(ctx, `DELETE FROM auth_throttle WHERE subject = $1`, accountKey); err != nil {
		return err
	}
	_, err := tx.exec(ctx, `DELETE FROM auth_throttle WHERE key = $1`, accountKey)
	return err
}

// LoginRecord is one sign-in attempt.
type LoginRecord struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	Result    string    `json:"result"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
}

func nullID(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// RecordLogin appends to login_history.
func (tx *Tx) RecordLogin(ctx context.Context, r *LoginRecord) error {
	r.ID, r.CreatedAt = tutela.NewID(), tx.now
	// IP and user agent are sealed: under the user's person key when the attempt names a
	// user, else under the tenant's (or, with no tenant, the platform's) personal_data keyset.
	ip, err := tx.sealFor(ctx, r.TenantID, r.UserID, fieldLoginIP, r.ID, r.IP)
	if err != nil {
		return err
	}
	ua, err := tx.sealFor(ctx, r.TenantID, r.UserID, fieldLoginUA, r.ID, truncate(r.UserAgent, 512))
	if err != nil {
		return err
	}
	_, err = tx.exec(ctx, `INSERT INTO login_history (id, tenant_id, user_id, ip, user_agent, result, reason, created_at,
		ip_sealed, user_agent_sealed) VALUES ($1, $2, $3, '', '', $4, $5, $6, $7, $8)`, r.ID, nullID(r.TenantID), nullID(r.UserID),
		r.Result, r.Reason, r.CreatedAt, ip, ua)
	if err != nil {
		return err
	}
	outcome := map[string]string{"success": audit.OutcomeSuccess, "throttled": audit.OutcomeDenied}[r.Result]
	if outcome == "" {
		outcome = audit.OutcomeFailure
	}
	return tx.Record(ctx, "auth.login", r.TenantID, "user", r.UserID, outcome, map[string]any{"reason": r.Reason})
}

// LoginHistory returns the tenant's sign-in attempts, newest first; userID "" means all users.
func (tx *Tx) LoginHistory(ctx context.Context, tenantID, userID string, limit int) ([]*LoginRecord, error) {
	q := `SELECT id, tenant_id, user_id, ip_sealed, user_agent_sealed, result, reason, created_at FROM login_history WHERE tenant_id = $1`
	args := []any{tenantID}
	if userID != "" {
		q += ` AND user_id = $2`
		args = append(args, userID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + itoa(clampLimit(limit))
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*LoginRecord
	var sealed [][2][]byte
	for rows.Next() {
		var r LoginRecord
		var tid, uid sql.NullString
		var ip, ua []byte
		if err := rows.Scan(&r.ID, &tid, &uid, &ip, &ua, &r.Result, &r.Reason, &r.CreatedAt); err != nil {
			return nil, err
		}
		r.TenantID, r.UserID, r.CreatedAt = tid.String, uid.String, r.CreatedAt.UTC()
		out, sealed = append(out, &r), append(sealed, [2][]byte{ip, ua})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for i, r := range out {
		if r.IP, err = tx.openFor(ctx, r.TenantID, r.UserID, fieldLoginIP, r.ID, sealed[i][0]); err != nil {
			return nil, err
		}
		if r.UserAgent, err = tx.openFor(ctx, r.TenantID, r.UserID, fieldLoginUA, r.ID, sealed[i][1]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Fields login_history's and security_events' sealed columns are bound to.
const (
	fieldLoginIP    = "login_history.ip"
	fieldLoginUA    = "login_history.user_agent"
	fieldSecEventIP = "security_events.ip"
)

// SecurityEvent is a security-relevant occurrence for the tenant's security staff.
type SecurityEvent struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	Kind      string    `json:"kind"`
	IP        string    `json:"ip"`
	Details   string    `json:"details"`
	CreatedAt time.Time `json:"created_at"`
}

// RecordSecurityEvent appends a security event.
func (tx *Tx) RecordSecurityEvent(ctx context.Context, e *SecurityEvent) error {
	e.ID, e.CreatedAt = tutela.NewID(), tx.now
	if e.Details == "" {
		e.Details = "{}"
	}
	ip, err := tx.sealFor(ctx, e.TenantID, e.UserID, fieldSecEventIP, e.ID, e.IP)
	if err != nil {
		return err
	}
	_, err = tx.exec(ctx, `INSERT INTO security_events (id, tenant_id, user_id, kind, ip, details, created_at, ip_sealed)
		VALUES ($1, $2, $3, $4, '', $5, $6, $7)`, e.ID, nullID(e.TenantID), nullID(e.UserID), e.Kind, e.Details, e.CreatedAt, ip)
	if err != nil {
		return err
	}
	return tx.Record(ctx, "security."+e.Kind, e.TenantID, "user", e.UserID, "", map[string]any{"security_event_id": e.ID})
}

// SecurityEvents returns the tenant's security events, newest first.
func (tx *Tx) SecurityEvents(ctx context.Context, tenantID string, limit int) ([]*SecurityEvent, error) {
	rows, err := tx.query(ctx, `SELECT id, tenant_id, user_id, kind, ip_sealed, details, created_at FROM security_events
		WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT `+itoa(clampLimit(limit)), tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*SecurityEvent
	var sealed [][]byte
	for rows.Next() {
		var e SecurityEvent
		var tid, uid sql.NullString
		var ip []byte
		if err := rows.Scan(&e.ID, &tid, &uid, &e.Kind, &ip, &e.Details, &e.CreatedAt); err != nil {
			return nil, err
		}
		e.TenantID, e.UserID, e.CreatedAt = tid.String, uid.String, e.CreatedAt.UTC()
		out, sealed = append(out, &e), append(sealed, ip)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for i, e := range out {
		if e.IP, err = tx.openFor(ctx, e.TenantID, e.UserID, fieldSecEventIP, e.ID, sealed[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PasswordHistory returns the user's previous password hashes, newest first.
func (r Users) PasswordHistory(ctx context.Context, userID string, n int) ([]string, error) {
	rows, err := r.tx.query(ctx, `SELECT hash FROM password_history WHERE tenant_id = $1 AND user_id = $2
		ORDER BY created_at DESC LIMIT `+itoa(max(n, 0)), r.tenantID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// AddPasswordHistory remembers a hash the user has had and forgets all but the newest keep
// (the policy's history length): old hashes are kept no longer than they serve.
func (r Users) AddPasswordHistory(ctx context.Context, userID, hash string, keep int) error {
	if keep <= 0 {
		_, err := r.tx.exec(ctx, `DELETE FROM password_history WHERE tenant_id = $1 AND user_id = $2`, r.tenantID, userID)
		return err
	}
	if _, err := r.tx.exec(ctx, `INSERT INTO password_history (tenant_id, user_id, hash, created_at) VALUES ($1, $2, $3, $4)`,
		r.tenantID, userID, hash, r.tx.now); err != nil {
		return err
	}
	_, err := r.tx.exec(ctx, `DELETE FROM password_history WHERE tenant_id = $1 AND user_id = $2 AND created_at <
		(SELECT created_at FROM password_history WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT 1 OFFSET `+
		itoa(keep-1)+`)`, r.tenantID, userID)
	return err
}

func itoa(n int) string { return strconv.Itoa(n) }
