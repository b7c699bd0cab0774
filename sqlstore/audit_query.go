package sqlstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"tutela"
	"tutela/audit"
)

// AuditFilter selects events for AuditEvents. Empty fields match everything.
type AuditFilter struct {
	// TenantID scopes the read; "" means every tenant. The caller sets it from the principal,
	// never from the request, so a tenant auditor cannot read another tenant's events.
	TenantID   string
	ActorID    string
	Action     string
	TargetType string
	TargetID   string
	From, To   time.Time // From <= time < To
	Cursor     string    // from the previous page; "" for the first
	Limit      int       // default 50, at most 1000
}

// AuditRecord is one recorded event as read back.
type AuditRecord struct {
	// Index is the event's position in the Merkle log, -1 until the sequencer has run.
	Index     int64
	Event     audit.Event
	Canonical []byte
}

// AuditEvents lists recorded events newest first, their sealed source IP and user agent opened
// (auditseal.go). Canonical keeps the stored, sealed bytes. nextCursor is "" on the last page.
func (db *DB) AuditEvents(ctx context.Context, f AuditFilter) (recs []AuditRecord, nextCursor string, err error) {
	// These reads use the pool directly, not a Tx: an outage is still unavailable (503).
	defer func() { err = unavailable(err) }()
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.TenantID != "" {
		add("e.tenant_id = ?", f.TenantID)
	}
	// A store bound to a data region reads its region's tenants' events and the platform's
	// (tenant_id ''), never another region's (docs/residency.md): those are read at their region.
	if db.region != "" {
		add("(e.tenant_id = '' OR e.tenant_id IN (SELECT CAST(id AS TEXT) FROM tenants WHERE data_region = ?))", db.region)
	}
	if f.ActorID != "" {
		add("e.actor_id = ?", f.ActorID)
	}
	if f.Action != "" {
		add("e.action = ?", f.Action)
	}
	if f.TargetType != "" {
		add("e.target_type = ?", f.TargetType)
	}
	if f.TargetID != "" {
		add("e.target_id = ?", f.TargetID)
	}
	if !f.From.IsZero() {
		add("e.time >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		add("e.time < ?", f.To.UTC())
	}
	if f.Cursor != "" {
		pos, err := decodeAuditCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		add("e.pos < ?", pos)
	}
	q := `SELECT e.pos, COALESCE(l.idx, -1), e.canonical FROM audit_events e
		LEFT JOIN audit_log l ON l.event_id = e.id`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	q += fmt.Sprintf(" ORDER BY e.pos DESC LIMIT $%d", len(args)) // #nosec G202 -- only a placeholder number is formatted in; values are bound parameters
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var lastPos int64
	for rows.Next() {
		var r AuditRecord
		var pos int64
		if err := rows.Scan(&pos, &r.Index, &r.Canonical); err != nil {
			return nil, "", err
		}
		if len(recs) == limit {
			nextCursor = encodeAuditCursor(lastPos)
			break
		}
		if r.Event, err = DecodeAuditEvent(r.Canonical); err != nil {
			return nil, "", fmt.Errorf("audit event at pos %d: %w", pos, err)
		}
		recs = append(recs, r)
		lastPos = pos
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	rows.Close() // before opening: SQLite's read pool may have one connection
	return recs, nextCursor, db.openAuditEvents(ctx, recs)
}

// The cursor is the insertion position, base64url-wrapped so clients treat it as opaque.
func encodeAuditCursor(pos int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("p" + strconv.FormatInt(pos, 10)))
}

func decodeAuditCursor(s string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && len(b) > 1 && b[0] == 'p' {
		if pos, err := strconv.ParseInt(string(b[1:]), 10, 64); err == nil && pos > 0 {
			return pos, nil
		}
	}
	return 0, tutela.FieldErrorf("cursor", "invalid cursor")
}

// DecodeAuditEvent parses a canonical event encoding back into an Event. Numbers in Details
// come back as json.Number.
func DecodeAuditEvent(canonical []byte) (audit.Event, error) {
	var w struct {
		ID         string         `json:"id"`
		Time       string         `json:"time"`
		TenantID   string         `json:"tenant_id"`
		ActorType  string         `json:"actor_type"`
		ActorID    string         `json:"actor_id"`
		SourceIP   string         `json:"source_ip"`
		UserAgent  string         `json:"user_agent"`
		Action     string         `json:"action"`
		TargetType string         `json:"target_type"`
		TargetID   string         `json:"target_id"`
		Outcome    string         `json:"outcome"`
		RequestID  string         `json:"request_id"`
		Reason     string         `json:"reason"`
		Details    map[string]any `json:"details"`
	}
	dec := json.NewDecoder(strings.NewReader(string(canonical)))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return audit.Event{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return audit.Event{}, err
	}
	if len(w.Details) == 0 {
		w.Details = nil
	}
	return audit.Event{ID: w.ID, Time: t.UTC(), TenantID: w.TenantID, ActorType: w.ActorType,
		ActorID: w.ActorID, SourceIP: w.SourceIP, UserAgent: w.UserAgent, Action: w.Action,
		TargetType: w.TargetType, TargetID: w.TargetID, Outcome: w.Outcome, RequestID: w.RequestID,
		Reason: w.Reason, Details: w.Details}, nil
}
