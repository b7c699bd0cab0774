package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"tutela"
)

// AuditShipCursor is how far the audit log has been shipped to one destination (migration
// 00037): Next is the first index not yet acknowledged, CheckpointSize the size of the last
// checkpoint the destination accepted. Failures, RetryAt and LastError describe the current run
// of failed attempts (reset by the next success).
type AuditShipCursor struct {
	Destination    string
	Next           int64
	CheckpointSize int64
	Failures       int
	RetryAt        time.Time // zero: due now
	LastError      string
	ShippedAt      time.Time
	LeaseOwner     string
	LeaseUntil     time.Time
	// Due reports, for a claimed cursor, whether its backoff has passed at the claim's time.
	Due bool
}

// ClaimAuditShip takes (or renews) owner's lease on destination's cursor until now+lease, creating
// the cursor at index 0 the first time. One node ships to a destination at a time: while another
// owner's lease runs, it returns ok=false. A lease that lapsed (its node died) is taken over, and
// the cursor resumes where the last acknowledged batch ended.
func (tx *Tx) ClaimAuditShip(ctx context.Context, destination, owner string, lease time.Duration) (cur AuditShipCursor, ok bool, err error) {
	if destination == "" || owner == "" || lease <= 0 {
		return cur, false, tutela.Errorf(tutela.EINVALID, "audit ship claim needs a destination, an owner and a lease")
	}
	if _, err := tx.exec(ctx, `INSERT INTO audit_ship_cursors (destination, created_at) VALUES ($1, $2)
		ON CONFLICT (destination) DO NOTHING`, destination, tx.now); err != nil {
		return cur, false, err
	}
	res, err := tx.exec(ctx, `UPDATE audit_ship_cursors SET lease_owner = $2, lease_until = $3
		WHERE destination = $1 AND (lease_owner = '' OR lease_owner = $2 OR lease_until IS NULL OR lease_until < $4)`,
		destination, owner, tx.now.Add(lease), tx.now)
	if err != nil {
		return cur, false, err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return cur, false, err
	}
	cur, err = tx.auditShipCursor(ctx, destination)
	cur.Due = cur.RetryAt.IsZero() || !cur.RetryAt.After(tx.now)
	return cur, err == nil, err
}

func (tx *Tx) auditShipCursor(ctx context.Context, destination string) (AuditShipCursor, error) {
	rows, err := tx.query(ctx, auditShipSelect+` WHERE destination = $1`, destination)
	if err != nil {
		return AuditShipCursor{}, err
	}
	cs, err := scanAuditShip(rows)
	if err != nil {
		return AuditShipCursor{}, err
	}
	if len(cs) == 0 {
		return AuditShipCursor{}, tutela.Errorf(tutela.ENOTFOUND, "no audit ship cursor %q", destination)
	}
	return cs[0], nil
}

const auditShipSelect = `SELECT destination, next_index, checkpoint_size, failures, retry_at, last_error, shipped_at,
	lease_owner, lease_until FROM audit_ship_cursors`

func scanAuditShip(rows *sql.Rows) ([]AuditShipCursor, error) {
	defer rows.Close()
	var out []AuditShipCursor
	for rows.Next() {
		var (
			c                     AuditShipCursor
			retry, shipped, lease sql.NullTime
		)
		if err := rows.Scan(&c.Destination, &c.Next, &c.CheckpointSize, &c.Failures, &retry, &c.LastError, &shipped,
			&c.LeaseOwner, &lease); err != nil {
			return nil, err
		}
		c.RetryAt, c.ShippedAt, c.LeaseUntil = retry.Time.UTC(), shipped.Time.UTC(), lease.Time.UTC()
		if !retry.Valid {
			c.RetryAt = time.Time{}
		}
		if !shipped.Valid {
			c.ShippedAt = time.Time{}
		}
		if !lease.Valid {
			c.LeaseUntil = time.Time{}
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// errShipLost: the cursor is not where the caller left it, or its lease is another's.
func errShipLost(destination string) error {
	return tutela.Errorf(tutela.ECONFLICT, "audit ship cursor %q moved or its lease was taken over", destination)
}

// AdvanceAuditShip records that destination acknowledged the log up to next (exclusive) under a
// checkpoint of size checkpointSize, and clears the failures. It applies only if owner still
// holds the lease and the cursor is still at from, so two nodes (one whose lease lapsed
// mid-send) can never both move it: the loser gets conflict and its batch, if it arrived, is a
// duplicate the receiver drops by index.
func (tx *Tx) AdvanceAuditShip(ctx context.Context, destination, owner string, from, next, checkpointSize int64) error {
	if next < 0 || checkpointSize < 0 {
		return tutela.Errorf(tutela.EINVALID, "audit ship cursor cannot be negative")
	}
	res, err := tx.exec(ctx, `UPDATE audit_ship_cursors SET next_index = $4, checkpoint_size = $5, failures = 0,
		retry_at = NULL, last_error = '', shipped_at = $6
		WHERE destination = $1 AND lease_owner = $2 AND next_index = $3`,
		destination, owner, from, next, checkpointSize, tx.now)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if err != nil {
			return err
		}
		return errShipLost(destination)
	}
	return nil
}

// FailAuditShip records a failed attempt (cause is what an operator reads: never a secret) and
// when to try again. It returns the cause recorded before, so the caller can audit a new kind of
// failure once rather than every retry.
func (tx *Tx) FailAuditShip(ctx context.Context, destination, owner, cause string, retryAt time.Time) (previous string, err error) {
	cur, err := tx.auditShipCursor(ctx, destination)
	if err != nil {
		return "", err
	}
	if cur.LeaseOwner != owner {
		return "", errShipLost(destination)
	}
	if _, err := tx.exec(ctx, `UPDATE audit_ship_cursors SET failures = failures + 1, retry_at = $3, last_error = $4
		WHERE destination = $1 AND lease_owner = $2`, destination, owner, retryAt.UTC().Truncate(time.Microsecond), truncate(cause, 500)); err != nil {
		return "", err
	}
	return cur.LastError, nil
}

// ReleaseAuditShip gives up owner's lease (a node stopping), so another node takes over at once.
func (tx *Tx) ReleaseAuditShip(ctx context.Context, destination, owner string) error {
	_, err := tx.exec(ctx, `UPDATE audit_ship_cursors SET lease_owner = '', lease_until = NULL
		WHERE destination = $1 AND lease_owner = $2`, destination, owner)
	return err
}

// AuditShipCursors lists every destination's cursor, by name.
func (db *DB) AuditShipCursors(ctx context.Context) (_ []AuditShipCursor, err error) {
	defer func() { err = unavailable(err) }()
	rows, err := db.read.QueryContext(ctx, auditShipSelect+` ORDER BY destination`)
	if err != nil {
		return nil, err
	}
	return scanAuditShip(rows)
}
