package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"tutela"
)

// Retention says how long each kind of data outside the audit log is kept once it has served
// its purpose (ASVS 5.0 14.2.4, 14.2.7). Every duration must be positive. The audit log is not
// covered: `tutela audit prune` removes its bodies under audit.retention.
type Retention struct {
	// LoginHistory: sign-in attempts (IP, user agent), counted from the attempt.
	LoginHistory time.Duration
	// SecurityEvents: lockouts, resets, revocations (IP), counted from the event.
	SecurityEvents time.Duration
	// EndedSessions: revoked or expired sessions with their refresh tokens, counted from when
	// the session ended (revoked, idle timeout or absolute expiry, whichever came first). An
	// active session is never purged, however old.
	EndedSessions time.Duration
	// UsedTokens: one-time tokens (setup, reset, MFA sign-in challenges) counted from their use
	// or expiry, WebAuthn ceremonies and client-assertion jti records from their expiry.
	UsedTokens time.Duration
	// DeadJobs: jobs of the queue that gave up (sqlstore/jobs.go), counted from their death.
	// Their payload is already gone; their error and tenant are kept this long for operators.
	DeadJobs time.Duration
}

// PurgeCounts is how many rows PurgeExpired deleted from each table.
type PurgeCounts struct {
	LoginHistory        int64
	SecurityEvents      int64
	Sessions            int64
	RefreshTokens       int64
	UserTokens          int64
	WebAuthnCeremonies  int64
	ClientAssertionJTIs int64
	DeadJobs            int64
	DSRPackages         int64
	DPoPProofs          int64
	PushedRequests      int64
	AuthRequests        int64
	SpentChallenges     int64
	FileLinks           int64
}

// Total is the number of rows deleted from all tables.
func (c PurgeCounts) Total() int64 {
	return c.LoginHistory + c.SecurityEvents + c.Sessions + c.RefreshTokens + c.UserTokens +
		c.WebAuthnCeremonies + c.ClientAssertionJTIs + c.DeadJobs + c.DSRPackages + c.DPoPProofs + c.PushedRequests +
		c.AuthRequests + c.SpentChallenges + c.FileLinks
}

// String lists the non-zero counts by table name ("login_history=3 sessions=1"). Logs carry it as
// one value: the log redactor would hide an attribute named refresh_tokens or user_tokens.
func (c PurgeCounts) String() string {
	var b strings.Builder
	for _, n := range []struct {
		table string
		rows  int64
	}{
		{"login_history", c.LoginHistory}, {"security_events", c.SecurityEvents},
		{"sessions", c.Sessions}, {"refresh_tokens", c.RefreshTokens}, {"user_tokens", c.UserTokens},
		{"webauthn_ceremonies", c.WebAuthnCeremonies}, {"client_assertion_jtis", c.ClientAssertionJTIs},
		{"jobs", c.DeadJobs}, {"dsr_packages", c.DSRPackages},
		{"oidc_dpop_proofs", c.DPoPProofs}, {"oidc_pushed_requests", c.PushedRequests},
		{"oidc_auth_requests", c.AuthRequests}, {"spent_challenges", c.SpentChallenges},
		{"file_links", c.FileLinks},
	} {
		if n.rows == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n.table + "=" + strconv.FormatInt(n.rows, 10))
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// ActionRetentionPurge is the action of the event that records a retention purge.
const ActionRetentionPurge = "retention.purge"

// purgeBatch bounds each DELETE, so a backlog (the first sweep after an upgrade) is removed in
// statements of predictable size rather than one that scans and locks millions of rows.
const purgeBatch = 10_000

// purgeBatchesPerSweep bounds one table's purge in one sweep (and so one transaction, which on
// SQLite holds the only writer): a larger backlog is finished by the next hourly sweeps.
const purgeBatchesPerSweep = 10

// sessionPurgeBatch bounds the session IDs handled at once; they become statement parameters
// (PostgreSQL allows 65535, SQLite 32766).
const sessionPurgeBatch = 1_000

// PurgeExpired deletes the rows that have outlived r as of now: sign-in history, security events,
// ended sessions with their refresh tokens, used or expired one-time tokens, expired WebAuthn
// ceremonies, expired client-assertion jtis, dead jobs, data-subject request packages whose link
// expired unused, and expired DPoP replay records and pushed authorization requests. Each table is purged in its own transaction, in
// batches of purgeBatch rows, and a transaction that deleted anything records one
// retention.purge audit event with the cutoff and per-table counts (never row contents); one
// table failing neither undoes nor stops the others, and the errors are joined.
//
// It is platform work: request metadata in ctx is dropped, so the purge is attributed to the
// system and, under PostgreSQL row-level security, covers every tenant. Every node may run it at
// once: PostgreSQL batches skip rows another purge has locked (FOR UPDATE SKIP LOCKED), SQLite
// runs writers one at a time, and a row already gone is simply not counted.
func (db *DB) PurgeExpired(ctx context.Context, now time.Time, r Retention) (PurgeCounts, error) {
	var c PurgeCounts
	for _, d := range []struct {
		key string
		d   time.Duration
	}{
		{"login_history", r.LoginHistory}, {"security_events", r.SecurityEvents},
		{"ended_sessions", r.EndedSessions}, {"used_tokens", r.UsedTokens}, {"dead_jobs", r.DeadJobs},
	} {
		if d.d <= 0 {
			return c, tutela.FieldErrorf(d.key, "retention must be positive")
		}
	}
	now = now.UTC().Truncate(time.Microsecond)
	if now.After(db.Now()) {
		// A cutoff computed from a clock ahead of the store's could reach sessions that are
		// still active.
		return c, tutela.FieldErrorf("now", "cannot purge from the future")
	}
	ctx = tutela.WithRequestMeta(ctx, nil)
	var errs []error
	run := func(table string, keep time.Duration, fn func(tx *Tx, cutoff time.Time) ([]tableCount, error)) {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("purge %s: %w", table, ctx.Err()))
			return
		}
		cutoff := now.Add(-keep)
		var counts []tableCount
		err := db.Update(ctx, func(tx *Tx) (err error) {
			if counts, err = fn(tx, cutoff); err != nil {
				return err
			}
			var total int64
			deleted := make([]any, 0, len(counts))
			for _, n := range counts {
				total += n.rows
				// A list rather than a map keyed by table: audit details redact keys that
				// look like credentials, such as refresh_tokens.
				deleted = append(deleted, map[string]any{"table": n.table, "rows": n.rows})
			}
			if total == 0 {
				return nil
			}
			return tx.Record(ctx, ActionRetentionPurge, "", "table", table, "", map[string]any{
				"cutoff": cutoff.Format(time.RFC3339Nano), "retention": keep.String(), "deleted": deleted})
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("purge %s: %w", table, err))
			return
		}
		for _, n := range counts {
			*n.sum += n.rows
		}
	}
	run("login_history", r.LoginHistory, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		n, err := tx.purgeRows(ctx, "login_history", "id", "tenant_id", "created_at < $1", cutoff)
		return []tableCount{{"login_history", n, &c.LoginHistory}}, err
	})
	run("security_events", r.SecurityEvents, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		n, err := tx.purgeRows(ctx, "security_events", "id", "tenant_id", "created_at < $1", cutoff)
		return []tableCount{{"security_events", n, &c.SecurityEvents}}, err
	})
	run("sessions", r.EndedSessions, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		s, rt, err := tx.purgeEndedSessions(ctx, cutoff)
		return []tableCount{{"sessions", s, &c.Sessions}, {"refresh_tokens", rt, &c.RefreshTokens}}, err
	})
	// A used one-time token is worthless once deleted: redemption looks for an unused row, so a
	// missing one fails exactly like a used one.
	run("user_tokens", r.UsedTokens, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		n, err := tx.purgeRows(ctx, "user_tokens", "id", "tenant_id", "(used_at < $1 OR expires_at < $1)", cutoff)
		return []tableCount{{"user_tokens", n, &c.UserTokens}}, err
	})
	run("webauthn_ceremonies", r.UsedTokens, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		n, err := tx.purgeRows(ctx, "webauthn_ceremonies", "challenge", "tenant_id", "expires_at < $1", cutoff)
		return []tableCount{{"webauthn_ceremonies", n, &c.WebAuthnCeremonies}}, err
	})
	// A jti must be remembered until its assertion expires (RFC 7523 §3 replay check); past the
	// cutoff, which is before now, the assertion's exp refuses it anyway.
	run("client_assertion_jtis", r.UsedTokens, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		n, err := tx.purgeRows(ctx, "client_assertion_jtis", "(service_account_id, jti)",
			"(SELECT sa.tenant_id FROM service_accounts sa WHERE sa.id = service_account_id)", "expires_at < $1", cutoff)
		return []tableCount{{"client_assertion_jtis", n, &c.ClientAssertionJTIs}}, err
	})
	// A download link past its expiry opens nothing (its token carries the expiry and the row
	// is checked again); its creation and every use are on the audit log.
	run("file_links", r.UsedTokens, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		n, err := tx.purgeRows(ctx, "file_links", "id", "tenant_id", "expires_at < $1", cutoff)
		return []tableCount{{"file_links", n, &c.FileLinks}}, err
	})
	// Only dead jobs: a pending one is work still owed, however old.
	run("jobs", r.DeadJobs, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		n, err := tx.purgeRows(ctx, "jobs", "id", "tenant_id", "state = 'dead' AND dead_at < $1", cutoff)
		return []tableCount{{"jobs", n, &c.DeadJobs}}, err
	})
	// Data-subject request packages whose one link expired unused (docs/dsr.md): deleted once
	// the link has expired, with a step on their request. Nothing is kept: a package that can
	// no longer be delivered is only a stale copy of the subject's data.
	run("dsr_packages", 0, func(tx *Tx, cutoff time.Time) ([]tableCount, error) {
		n, err := tx.PurgeExpiredDSRPackages(ctx, cutoff)
		return []tableCount{{"dsr_packages", n, &c.DSRPackages}}, err
	})
	// OpenID Provider replay records and pushed requests, once expired (oidc_dpop.go,
	// oidc_par.go): nothing in them is usable by then.
	run("oidc_dpop_proofs", 0, func(tx *Tx, _ time.Time) ([]tableCount, error) {
		n, err := tx.SweepDPoPProofs(ctx)
		return []tableCount{{"oidc_dpop_proofs", n, &c.DPoPProofs}}, err
	})
	run("oidc_pushed_requests", 0, func(tx *Tx, _ time.Time) ([]tableCount, error) {
		n, err := tx.SweepPushedRequests(ctx)
		return []tableCount{{"oidc_pushed_requests", n, &c.PushedRequests}}, err
	})
	// Authorization requests past their ten minutes: their codes can no longer be exchanged,
	// so a replay has nothing left to revoke.
	run("oidc_auth_requests", 0, func(tx *Tx, _ time.Time) ([]tableCount, error) {
		n, err := tx.SweepOIDCAuthRequests(ctx)
		return []tableCount{{"oidc_auth_requests", n, &c.AuthRequests}}, err
	})
	run("spent_challenges", 0, func(tx *Tx, _ time.Time) ([]tableCount, error) {
		res, err := tx.exec(ctx, `DELETE FROM spent_challenges WHERE expires_at <= $1`, tx.now)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		return []tableCount{{"spent_challenges", n, &c.SpentChallenges}}, err
	})
	return c, errors.Join(errs...)
}

// tableCount is what one table's purge deleted, and the PurgeCounts field it adds to once the
// transaction has committed.
type tableCount struct {
	table string
	rows  int64
	sum   *int64
}

// skipLocked makes a PostgreSQL batch take only rows no other transaction holds, so concurrent
// purges split the work instead of queueing on (or deadlocking over) the same rows.
func (tx *Tx) skipLocked() string {
	if tx.db.dialect == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// purgeRows deletes the rows of table matching where ($1 is cutoff) in batches of purgeBatch,
// each picked by its key, until a batch comes up short or purgeBatchesPerSweep have run. tenant
// is the expression naming a row's tenant: a store bound to a data region purges its region's
// tenants' rows (and rows of no tenant) only.
func (tx *Tx) purgeRows(ctx context.Context, table, key, tenant, where string, cutoff time.Time) (int64, error) {
	scope, args := tx.regionScope(tenant, true, cutoff, purgeBatch)
	if table == "jobs" {
		scope, args = tx.regionScopeText(tenant, true, cutoff, purgeBatch)
	}
	q := `DELETE FROM ` + table + ` WHERE ` + key + ` IN (SELECT ` + strings.Trim(key, "()") + ` FROM ` + table +
		` WHERE ` + where + scope + ` LIMIT $2` + tx.skipLocked() + `)`
	var total int64
	for range purgeBatchesPerSweep {
		res, err := tx.exec(ctx, q, args...)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < purgeBatch || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
	return total, nil
}

// purgeEndedSessions deletes sessions that ended before cutoff, by revocation, idle timeout or
// absolute expiry, with their refresh tokens. Each condition compares a moment that has passed
// with a cutoff before now, so a session still usable now never matches. The refresh tokens go
// explicitly, before their session, so they are counted; the foreign key would cascade anyway.
func (tx *Tx) purgeEndedSessions(ctx context.Context, cutoff time.Time) (sessions, refresh int64, err error) {
	scope, args := tx.regionScope("tenant_id", false, cutoff, sessionPurgeBatch)
	pick := `SELECT id FROM sessions WHERE (revoked_at < $1 OR absolute_expires_at < $1 OR ` + tx.idleEnds("<", "$1") + `)` +
		scope + ` LIMIT $2` + tx.skipLocked()
	for {
		ids, err := tx.sessionIDs(ctx, pick, args...)
		if err != nil || len(ids) == 0 {
			return sessions, refresh, err
		}
		in := placeholders(len(ids))
		res, err := tx.exec(ctx, `DELETE FROM refresh_tokens WHERE session_id IN (`+in+`)`, ids...)
		if err != nil {
			return sessions, refresh, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return sessions, refresh, err
		}
		refresh += n
		if res, err = tx.exec(ctx, `DELETE FROM sessions WHERE id IN (`+in+`)`, ids...); err != nil {
			return sessions, refresh, err
		}
		if n, err = res.RowsAffected(); err != nil {
			return sessions, refresh, err
		}
		sessions += n
		if len(ids) < sessionPurgeBatch || ctx.Err() != nil {
			return sessions, refresh, ctx.Err()
		}
	}
}

func (tx *Tx) sessionIDs(ctx context.Context, q string, args ...any) ([]any, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// placeholders returns "$1,$2,…,$n".
func placeholders(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		b.WriteString("$" + strconv.Itoa(i))
	}
	return b.String()
}
