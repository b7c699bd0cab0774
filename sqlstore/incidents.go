package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/incidents"
)

// Incidents is the deployment's security incidents (migration 00036). Its methods act for the
// platform; a tenant reads through TenantIncidents. Every change locks the incident's row,
// appends to its timeline and is audited (tenant "", target "incident") in its transaction.
type Incidents struct{ tx *Tx }

// Incidents returns the incident store.
func (tx *Tx) Incidents() Incidents { return Incidents{tx: tx} }

var errNoIncident = tutela.Errorf(tutela.ENOTFOUND, "incident not found")

const incidentCols = `id, title, description, severity, status, personal_data_breach, detected_at, confirmed_at,
	frameworks, owners, data_categories, subject_categories, contact, consequences, measures, created_by, created_at,
	updated_at, closed_at, reminded_through, reminder_seq`

// incidentRow is an incident with the breach clock's bookkeeping.
type incidentRow struct {
	inc             incidents.Incident
	remindedThrough time.Time
	reminderSeq     int64
}

// CreateIncident opens an incident (incidents.Open calls it): req is validated, the linked
// events looked up (platform-wide) and put on the timeline at their own times, each scoped to
// its event's tenant; the owners must be active users. Audited incident.opened.
func (tx *Tx) CreateIncident(ctx context.Context, req incidents.OpenRequest) (*incidents.Incident, error) {
	now := tx.now
	if err := req.Validate(now); err != nil {
		return nil, err
	}
	if len(req.Owners) == 0 && tutela.ValidID(req.Actor) {
		req.Owners = []string{req.Actor}
	}
	if err := tx.checkOwners(ctx, req.Owners); err != nil {
		return nil, err
	}
	var entries []incidents.Entry
	detected := req.DetectedAt
	for _, ref := range req.Events {
		e, err := tx.incidentEvent(ctx, ref)
		if err != nil {
			return nil, err
		}
		if req.DetectedAt.IsZero() && (detected.IsZero() || e.At.Before(detected)) {
			detected = e.At // detected when its earliest event happened
		}
		entries = append(entries, e)
	}
	if detected.IsZero() {
		detected = now
	}
	inc := &incidents.Incident{ID: tutela.NewID(), Title: req.Title, Description: req.Description, Severity: req.Severity,
		Status: incidents.StatusOpen, DetectedAt: detected.UTC(), Frameworks: req.Frameworks, Owners: nonNil(req.Owners),
		DataCategories: []string{}, SubjectCategories: []string{}, CreatedBy: req.Actor, CreatedAt: now, UpdatedAt: now}
	if _, err := tx.exec(ctx, `INSERT INTO incidents (id, title, description, severity, status, detected_at, frameworks, owners,
		data_categories, subject_categories, created_by, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`,
		inc.ID, inc.Title, inc.Description, string(inc.Severity), string(inc.Status), inc.DetectedAt, jsonList(inc.Frameworks),
		jsonList(inc.Owners), "[]", "[]", inc.CreatedBy, now, now); err != nil {
		return nil, err
	}
	s := tx.Incidents()
	if err := s.appendEntry(ctx, inc.ID, incidents.Entry{At: now, Actor: req.Actor, Kind: incidents.KindOpened,
		Text: "Incident opened: " + inc.Title + " (" + string(inc.Severity) + ")"}); err != nil {
		return nil, err
	}
	for _, e := range entries {
		e.Actor = req.Actor
		if err := s.appendEntry(ctx, inc.ID, e); err != nil {
			return nil, err
		}
	}
	if err := tx.Record(ctx, "incident.opened", "", "incident", inc.ID, "", map[string]any{
		"severity": string(inc.Severity), "frameworks": inc.Frameworks, "events": len(req.Events), "opened_by": req.Actor}); err != nil {
		return nil, err
	}
	return s.Get(ctx, inc.ID)
}

// incidentEvent looks up a security or audit event for the timeline: its kind (action) and
// time, and the tenant it belongs to — never its details, which may hold addresses.
func (tx *Tx) incidentEvent(ctx context.Context, ref incidents.EventRef) (incidents.Entry, error) {
	if ref.Kind == "" {
		ref.Kind = incidents.AuditEvent
		if tutela.ValidID(ref.ID) {
			n, err := tx.count(ctx, `SELECT count(*) FROM security_events WHERE id = $1`, ref.ID)
			if err != nil {
				return incidents.Entry{}, err
			}
			if n > 0 {
				ref.Kind = incidents.SecurityEvent
			}
		}
	}
	e := incidents.Entry{Kind: string(ref.Kind), Ref: ref.ID}
	var tenant sql.NullString
	var kind string
	var err error
	switch ref.Kind {
	case incidents.SecurityEvent:
		if !tutela.ValidID(ref.ID) {
			return e, tutela.FieldErrorf("event_ids", "security event %s not found", ref.ID)
		}
		err = tx.queryRow(ctx, `SELECT CAST(tenant_id AS TEXT), kind, created_at FROM security_events WHERE id = $1`, ref.ID).
			Scan(&tenant, &kind, &e.At)
	default:
		err = tx.queryRow(ctx, `SELECT tenant_id, action, time FROM audit_events WHERE id = $1`, ref.ID).Scan(&tenant, &kind, &e.At)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return e, tutela.FieldErrorf("event_ids", "no security or audit event %s", ref.ID)
	}
	if err != nil {
		return e, err
	}
	if ref.Kind == incidents.SecurityEvent {
		e.Text = "Security event: " + kind
	} else {
		e.Text = "Audit event: " + kind
	}
	e.At, e.TenantID = e.At.UTC(), tenant.String
	return e, nil
}

// checkOwners refuses an owner who is not an active user holding an unexpired super_admin
// grant: owners are told to act on the platform's incident pages, which only the platform
// reads, and a tenant's user must not learn of other tenants' incidents through reminders.
func (tx *Tx) checkOwners(ctx context.Context, ids []string) error {
	for _, id := range ids {
		holders, err := tx.superAdmins(ctx, id)
		if err != nil {
			return err
		}
		if len(holders) == 0 {
			return tutela.FieldErrorf("owners", "owner %s is not an active super-admin", id)
		}
	}
	return nil
}

// Get returns the incident with everything: affected tenants and their subject IDs, timeline
// (by time, then order of entry) and notifications.
func (s Incidents) Get(ctx context.Context, id string) (*incidents.Incident, error) {
	r, err := s.get(ctx, id, "")
	if err != nil {
		return nil, err
	}
	return &r.inc, nil
}

func (s Incidents) get(ctx context.Context, id, lock string) (*incidentRow, error) {
	if !tutela.ValidID(id) {
		return nil, errNoIncident
	}
	r, err := scanIncident(s.tx.queryRow(ctx, `SELECT `+incidentCols+` FROM incidents WHERE id = $1`+s.tx.lockClause(lock), id))
	if err != nil {
		return nil, err
	}
	if err := s.loadDetails(ctx, &r.inc); err != nil {
		return nil, err
	}
	return r, nil
}

func (s Incidents) loadDetails(ctx context.Context, inc *incidents.Incident) error {
	inc.Tenants = []incidents.AffectedTenant{}
	rows, err := s.tx.query(ctx, `SELECT CAST(tenant_id AS TEXT), subjects_approx, records_approx FROM incident_tenants
		WHERE incident_id = $1 ORDER BY added_at, tenant_id`, inc.ID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var a incidents.AffectedTenant
		if err := rows.Scan(&a.TenantID, &a.SubjectsApprox, &a.RecordsApprox); err != nil {
			rows.Close()
			return err
		}
		inc.Tenants = append(inc.Tenants, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range inc.Tenants {
		a := &inc.Tenants[i]
		srows, err := s.tx.query(ctx, `SELECT CAST(subject_id AS TEXT) FROM incident_subjects WHERE incident_id = $1 AND tenant_id = $2
			ORDER BY subject_id`, inc.ID, a.TenantID)
		if err != nil {
			return err
		}
		for srows.Next() {
			var sid string
			if err := srows.Scan(&sid); err != nil {
				srows.Close()
				return err
			}
			a.SubjectIDs = append(a.SubjectIDs, sid)
		}
		srows.Close()
		if err := srows.Err(); err != nil {
			return err
		}
		a.SubjectsListed = len(a.SubjectIDs)
	}
	inc.Timeline = []incidents.Entry{}
	trows, err := s.tx.query(ctx, `SELECT id, at, actor, kind, text, CAST(tenant_id AS TEXT), ref FROM incident_timeline
		WHERE incident_id = $1 ORDER BY seq`, inc.ID)
	if err != nil {
		return err
	}
	for trows.Next() {
		var e incidents.Entry
		var tenant sql.NullString
		if err := trows.Scan(&e.ID, &e.At, &e.Actor, &e.Kind, &e.Text, &tenant, &e.Ref); err != nil {
			trows.Close()
			return err
		}
		e.At, e.TenantID = e.At.UTC(), tenant.String
		inc.Timeline = append(inc.Timeline, e)
	}
	trows.Close()
	if err := trows.Err(); err != nil {
		return err
	}
	// Chronological; entries made at one instant keep the order they were written in.
	sort.SliceStable(inc.Timeline, func(i, j int) bool { return inc.Timeline[i].At.Before(inc.Timeline[j].At) })
	inc.Notifications = []incidents.Notification{}
	nrows, err := s.tx.query(ctx, `SELECT id, recipient, framework, CAST(tenant_id AS TEXT), recipient_name, made_at, reference,
		subjects_notified, recorded_by, recorded_at FROM incident_notifications WHERE incident_id = $1 ORDER BY made_at, id`, inc.ID)
	if err != nil {
		return err
	}
	defer nrows.Close()
	for nrows.Next() {
		var n incidents.Notification
		var tenant sql.NullString
		var recipient string
		if err := nrows.Scan(&n.ID, &recipient, &n.Framework, &tenant, &n.To, &n.MadeAt, &n.Reference, &n.SubjectsNotified,
			&n.RecordedBy, &n.RecordedAt); err != nil {
			return err
		}
		n.Recipient, n.TenantID, n.MadeAt, n.RecordedAt = incidents.Recipient(recipient), tenant.String, n.MadeAt.UTC(), n.RecordedAt.UTC()
		inc.Notifications = append(inc.Notifications, n)
	}
	return nrows.Err()
}

// IncidentFilter narrows a listing.
type IncidentFilter struct {
	Status   incidents.Status // "" any
	Breaches bool             // only confirmed personal-data breaches
	Cursor   string           // the last ID of the previous page
	Limit    int              // 1–200, default 50
}

// List returns incidents newest first, without their timelines, notifications or subject IDs
// (Get has them). tenantID, when set, keeps those affecting that tenant, each in the tenant's
// view.
func (s Incidents) List(ctx context.Context, tenantID string, f IncidentFilter) ([]incidents.Incident, string, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Limit > 200 {
		return nil, "", tutela.FieldErrorf("limit", "limit must be 1 to 200")
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, "", tutela.FieldErrorf("status", "unknown status")
	}
	q := `SELECT ` + incidentCols + ` FROM incidents i WHERE 1 = 1`
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + itoa(len(args)) }
	if tenantID != "" {
		if !tutela.ValidID(tenantID) {
			return []incidents.Incident{}, "", nil
		}
		q += ` AND EXISTS (SELECT 1 FROM incident_tenants it WHERE it.incident_id = i.id AND it.tenant_id = ` + arg(tenantID) + `)`
	}
	if f.Status != "" {
		q += ` AND status = ` + arg(string(f.Status))
	}
	if f.Breaches {
		q += ` AND personal_data_breach`
	}
	if f.Cursor != "" {
		if !tutela.ValidID(f.Cursor) {
			return nil, "", tutela.FieldErrorf("cursor", "malformed cursor")
		}
		// The cursor must be an incident of this listing: positioning a tenant's page after
		// another tenant's incident would tell the tenant where it stands in time (and that it
		// exists). Unknown and out-of-scope cursors are refused alike.
		cq, cargs := `SELECT count(*) FROM incidents i WHERE i.id = $1`, []any{f.Cursor}
		if tenantID != "" {
			cq += ` AND EXISTS (SELECT 1 FROM incident_tenants it WHERE it.incident_id = i.id AND it.tenant_id = $2)`
			cargs = append(cargs, tenantID)
		}
		n, err := s.tx.count(ctx, cq, cargs...)
		if err != nil {
			return nil, "", err
		}
		if n == 0 {
			return nil, "", tutela.FieldErrorf("cursor", "the cursor is not an incident of this listing")
		}
		c := arg(f.Cursor)
		q += ` AND (created_at, id) < (SELECT created_at, id FROM incidents WHERE id = ` + c + `)`
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + itoa(f.Limit+1)
	rows, err := s.tx.query(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	out := []incidents.Incident{}
	for rows.Next() {
		r, err := scanIncident(rows)
		if err != nil {
			rows.Close()
			return nil, "", err
		}
		out = append(out, r.inc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > f.Limit {
		out, next = out[:f.Limit], out[f.Limit-1].ID
	}
	for i := range out {
		if err := s.loadDetails(ctx, &out[i]); err != nil {
			return nil, "", err
		}
		if tenantID != "" {
			out[i] = *out[i].ForTenant(tenantID, false)
		}
		for j := range out[i].Tenants {
			out[i].Tenants[j].SubjectIDs = nil
		}
		out[i].Timeline, out[i].Notifications = nil, nil
	}
	return out, next, nil
}

// ForTenant returns the incident as tenantID's readers see it (incidents.Incident.ForTenant),
// or not found when it does not affect the tenant: another tenant's incident is absent, as
// an unknown one.
func (s Incidents) ForTenant(ctx context.Context, tenantID, id string, withSubjects bool) (*incidents.Incident, error) {
	inc, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(inc.Tenants, func(a incidents.AffectedTenant) bool { return a.TenantID == tenantID }) {
		return nil, errNoIncident
	}
	return inc.ForTenant(tenantID, withSubjects), nil
}

// appendEntry adds a timeline entry (append-only: there is no update or delete). Callers hold
// the incident's row, so seq is the next one.
func (s Incidents) appendEntry(ctx context.Context, incidentID string, e incidents.Entry) error {
	seq, err := s.tx.count(ctx, `SELECT COALESCE(MAX(seq), 0) FROM incident_timeline WHERE incident_id = $1`, incidentID)
	if err != nil {
		return err
	}
	if e.At.IsZero() {
		e.At = s.tx.now
	}
	_, err = s.tx.exec(ctx, `INSERT INTO incident_timeline (id, incident_id, seq, at, actor, kind, text, tenant_id, ref)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`, tutela.NewID(), incidentID, seq+1, e.At.UTC(), e.Actor, e.Kind, e.Text, nullString(e.TenantID), e.Ref)
	return err
}

// actor is who makes a change: the request's principal, else the system.
func incidentActor(ctx context.Context) string {
	if m := tutela.RequestMetaFrom(ctx); m != nil && m.Principal != nil {
		return m.Principal.UserID
	}
	return audit.ActorSystem
}

func scanIncident(row interface{ Scan(...any) error }) (*incidentRow, error) {
	var r incidentRow
	inc := &r.inc
	var severity, status, frameworks, owners, dataCats, subjCats string
	var confirmed, closed, reminded sql.NullTime
	err := row.Scan(&inc.ID, &inc.Title, &inc.Description, &severity, &status, &inc.PersonalDataBreach, &inc.DetectedAt,
		&confirmed, &frameworks, &owners, &dataCats, &subjCats, &inc.Contact, &inc.Consequences, &inc.Measures,
		&inc.CreatedBy, &inc.CreatedAt, &inc.UpdatedAt, &closed, &reminded, &r.reminderSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoIncident
	}
	if err != nil {
		return nil, err
	}
	inc.Severity, inc.Status = incidents.Severity(severity), incidents.Status(status)
	for _, l := range []struct {
		raw string
		dst *[]string
	}{{frameworks, &inc.Frameworks}, {owners, &inc.Owners}, {dataCats, &inc.DataCategories}, {subjCats, &inc.SubjectCategories}} {
		if err := json.Unmarshal([]byte(l.raw), l.dst); err != nil {
			return nil, err
		}
		*l.dst = nonNil(*l.dst)
	}
	inc.DetectedAt, inc.CreatedAt, inc.UpdatedAt = inc.DetectedAt.UTC(), inc.CreatedAt.UTC(), inc.UpdatedAt.UTC()
	if confirmed.Valid {
		inc.ConfirmedAt = confirmed.Time.UTC()
	}
	if closed.Valid {
		inc.ClosedAt = closed.Time.UTC()
	}
	if reminded.Valid {
		r.remindedThrough = reminded.Time.UTC()
	}
	return &r, nil
}
