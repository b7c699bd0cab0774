package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"tutela"
)

// LockMonitor is the advisory lock key held by the node evaluating monitoring rules.
const LockMonitor int64 = 0x7475_7465_6c61_0035 // "tutela" + migration 00035

// MonitorEvent is one sequenced audit event as the rules engine sees it: the indexed columns
// and the details, never the sealed source IP or user agent.
type MonitorEvent struct {
	Index      int64
	ID         string
	Time       time.Time
	TenantID   string
	ActorType  string
	ActorID    string
	Action     string
	TargetType string
	TargetID   string
	Outcome    string
	Details    map[string]any
}

// WindowEvent is one event inside a threshold window.
type WindowEvent struct {
	ID   string    `json:"id"`
	Time time.Time `json:"t"`
}

// MonitorWindow is a threshold rule's state for one tenant ("" for platform events).
type MonitorWindow struct {
	Rule       string
	TenantID   string
	Events     []WindowEvent
	QuietUntil time.Time // zero: not quiet
}

// TryMonitorLock takes the monitoring lock for this transaction if no other node holds it
// (PostgreSQL advisory lock); false means another node is evaluating and this one skips the
// round. SQLite serialises writers already.
func (tx *Tx) TryMonitorLock(ctx context.Context) (bool, error) {
	if tx.db.dialect != Postgres {
		return true, nil
	}
	var got bool
	if err := tx.queryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, LockMonitor).Scan(&got); err != nil {
		return false, mapErr(err)
	}
	return got, nil
}

// MonitorCursor returns the index of the next audit log entry to evaluate. The first call on a
// store creates the cursor at the current end of the log (ok false): monitoring starts with
// what happens from now on, not with alerts about the whole history.
func (tx *Tx) MonitorCursor(ctx context.Context) (next int64, existed bool, err error) {
	err = tx.queryRow(ctx, `SELECT next_idx FROM monitor_cursor WHERE id = 1`).Scan(&next)
	if err == nil {
		return next, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, mapErr(err)
	}
	if next, err = auditSize(ctx, tx.tx); err != nil {
		return 0, false, err
	}
	return next, false, tx.SetMonitorCursor(ctx, next)
}

// SetMonitorCursor records that every entry below next has been evaluated. It never moves the
// cursor back.
func (tx *Tx) SetMonitorCursor(ctx context.Context, next int64) error {
	if next < 0 {
		return tutela.Errorf(tutela.EINVALID, "monitor cursor must not be negative")
	}
	_, err := tx.exec(ctx, `INSERT INTO monitor_cursor (id, next_idx, updated_at) VALUES (1, $1, $2)
		ON CONFLICT (id) DO UPDATE SET next_idx = CASE WHEN excluded.next_idx > monitor_cursor.next_idx
			THEN excluded.next_idx ELSE monitor_cursor.next_idx END, updated_at = excluded.updated_at`, next, tx.now)
	return mapErr(err)
}

// monitorEventsQuery reads up to $2 entries from index $1 with their bodies' columns.
func monitorEventsQuery(d Dialect) string {
	return `SELECT l.idx, l.event_id, l.time, e.tenant_id, e.actor_type, e.actor_id, e.action,
			e.target_type, e.target_id, e.outcome, e.canonical
		FROM audit_log l ` + auditBodyJoin(d) + `
		WHERE l.idx >= $1 ORDER BY l.idx LIMIT $2`
}

// MonitorEvents returns up to limit sequenced events with index >= from, in log order. An
// entry whose body was pruned (retention) is returned with only its index and ID.
func (tx *Tx) MonitorEvents(ctx context.Context, from int64, limit int) ([]MonitorEvent, error) {
	rows, err := tx.query(ctx, monitorEventsQuery(tx.db.dialect), from, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []MonitorEvent
	for rows.Next() {
		var (
			e                                          MonitorEvent
			tenant, actorT, actor, action, tt, tid, oc sql.NullString
			canonical                                  []byte
		)
		if err := rows.Scan(&e.Index, &e.ID, &e.Time, &tenant, &actorT, &actor, &action, &tt, &tid, &oc, &canonical); err != nil {
			return nil, mapErr(err)
		}
		e.Time = e.Time.UTC()
		e.TenantID, e.ActorType, e.ActorID, e.Action = tenant.String, actorT.String, actor.String, action.String
		e.TargetType, e.TargetID, e.Outcome = tt.String, tid.String, oc.String
		if len(canonical) > 0 {
			// Details only; the sealed members stay sealed (they are not needed to match).
			var body struct {
				Details map[string]any `json:"details"`
			}
			if err := json.Unmarshal(canonical, &body); err != nil {
				return nil, fmt.Errorf("monitor: audit entry %d: %w", e.Index, err)
			}
			e.Details = body.Details
		}
		out = append(out, e)
	}
	return out, mapErr(rows.Err())
}

// MonitorWindow returns the stored window of rule for tenantID; an empty one if none is stored.
func (tx *Tx) MonitorWindow(ctx context.Context, rule, tenantID string) (*MonitorWindow, error) {
	w := &MonitorWindow{Rule: rule, TenantID: tenantID}
	var (
		events string
		quiet  sql.NullTime
	)
	err := tx.queryRow(ctx, `SELECT events, quiet_until FROM monitor_windows WHERE rule = $1 AND tenant_id = $2`,
		rule, tenantID).Scan(&events, &quiet)
	if errors.Is(err, sql.ErrNoRows) {
		return w, nil
	}
	if err != nil {
		return nil, mapErr(err)
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, fmt.Errorf("monitor: window %s: %w", rule, err)
	}
	if quiet.Valid {
		w.QuietUntil = quiet.Time.UTC()
	}
	return w, nil
}

// SaveMonitorWindow stores w, replacing the rule's window for its tenant.
func (tx *Tx) SaveMonitorWindow(ctx context.Context, w *MonitorWindow) error {
	events := w.Events
	if events == nil {
		events = []WindowEvent{}
	}
	b, err := json.Marshal(events)
	if err != nil {
		return err
	}
	var quiet any
	if !w.QuietUntil.IsZero() {
		quiet = w.QuietUntil.UTC()
	}
	_, err = tx.exec(ctx, `INSERT INTO monitor_windows (rule, tenant_id, events, quiet_until, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (rule, tenant_id) DO UPDATE SET events = excluded.events, quiet_until = excluded.quiet_until,
			updated_at = excluded.updated_at`, w.Rule, w.TenantID, string(b), quiet, tx.now)
	return mapErr(err)
}
