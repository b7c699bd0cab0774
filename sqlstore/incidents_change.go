package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/incidents"
)

// IncidentChange is a partial update: nil fields stay as they are.
type IncidentChange struct {
	Title             *string
	Description       *string
	Severity          *incidents.Severity
	Status            *incidents.Status
	Frameworks        []string // nil: unchanged
	Owners            []string // nil: unchanged
	DataCategories    []string // nil: unchanged
	SubjectCategories []string // nil: unchanged
	Contact           *string
	Consequences      *string
	Measures          *string
}

var errIncidentClosed = tutela.Errorf(tutela.ECONFLICT, "the incident is closed: nothing about it changes any more")

// lockOpen loads the incident for a change, its row locked, refusing a closed one.
func (s Incidents) lockOpen(ctx context.Context, id string) (*incidentRow, error) {
	r, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if r.inc.Status == incidents.StatusClosed {
		return nil, errIncidentClosed
	}
	return r, nil
}

// Update applies c. A status change must be an allowed move (incidents.CanMove); closing a
// confirmed breach needs the authority's notification recorded under each of its frameworks.
// Status and severity changes go on the timeline; audited incident.updated (the fields changed,
// not their text) and incident.closed.
func (s Incidents) Update(ctx context.Context, id string, c IncidentChange) (*incidents.Incident, error) {
	r, err := s.lockOpen(ctx, id)
	if err != nil {
		return nil, err
	}
	inc := &r.inc
	var changed []string
	var entries []incidents.Entry
	who := incidentActor(ctx)
	if c.Title != nil {
		if err := incidents.CheckTitle(*c.Title); err != nil {
			return nil, err
		}
		inc.Title, changed = *c.Title, append(changed, "title")
	}
	for _, f := range []struct {
		name string
		in   *string
		dst  *string
	}{{"description", c.Description, &inc.Description}, {"consequences", c.Consequences, &inc.Consequences},
		{"measures", c.Measures, &inc.Measures}} {
		if f.in == nil {
			continue
		}
		if err := incidents.CheckText(f.name, *f.in, f.name == "description"); err != nil {
			return nil, err
		}
		*f.dst, changed = *f.in, append(changed, f.name)
	}
	if c.Contact != nil {
		if err := incidents.CheckLine("contact", *c.Contact, incidents.MaxContact, false); err != nil {
			return nil, err
		}
		inc.Contact, changed = *c.Contact, append(changed, "contact")
	}
	for _, f := range []struct {
		name string
		in   []string
		dst  *[]string
	}{{"data_categories", c.DataCategories, &inc.DataCategories}, {"subject_categories", c.SubjectCategories, &inc.SubjectCategories}} {
		if f.in == nil {
			continue
		}
		if err := incidents.CheckCategories(f.name, f.in); err != nil {
			return nil, err
		}
		*f.dst, changed = f.in, append(changed, f.name)
	}
	if c.Frameworks != nil {
		if err := incidents.CheckFrameworks(c.Frameworks); err != nil {
			return nil, err
		}
		inc.Frameworks, changed = c.Frameworks, append(changed, "frameworks")
	}
	if c.Owners != nil {
		if err := incidents.CheckOwners(c.Owners); err != nil {
			return nil, err
		}
		if err := s.tx.checkOwners(ctx, c.Owners); err != nil {
			return nil, err
		}
		inc.Owners, changed = c.Owners, append(changed, "owners")
	}
	if c.Severity != nil && *c.Severity != inc.Severity {
		if !c.Severity.Valid() {
			return nil, tutela.FieldErrorf("severity", "severity must be one of low, medium, high, critical")
		}
		entries = append(entries, incidents.Entry{Actor: who, Kind: incidents.KindSeverity,
			Text: fmt.Sprintf("Severity %s → %s", inc.Severity, *c.Severity)})
		inc.Severity, changed = *c.Severity, append(changed, "severity")
	}
	closing := false
	if c.Status != nil && *c.Status != inc.Status {
		if !c.Status.Valid() {
			return nil, tutela.FieldErrorf("status", "unknown status")
		}
		if !incidents.CanMove(inc.Status, *c.Status) {
			return nil, tutela.Errorf(tutela.ECONFLICT, "an incident cannot move from %s to %s", inc.Status, *c.Status)
		}
		if *c.Status == incidents.StatusClosed {
			if pending := pendingAuthorities(inc); len(pending) > 0 {
				return nil, tutela.Errorf(tutela.ECONFLICT, "record the authority's notification under %s before closing the breach",
					strings.Join(pending, ", "))
			}
			closing, inc.ClosedAt = true, s.tx.now
		}
		entries = append(entries, incidents.Entry{Actor: who, Kind: incidents.KindStatus,
			Text: fmt.Sprintf("Status %s → %s", inc.Status, *c.Status)})
		inc.Status, changed = *c.Status, append(changed, "status")
	}
	if len(changed) == 0 {
		return inc, nil
	}
	inc.UpdatedAt = s.tx.now
	if err := s.save(ctx, r); err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := s.appendEntry(ctx, inc.ID, e); err != nil {
			return nil, err
		}
	}
	action := "incident.updated"
	if closing {
		action = "incident.closed"
	}
	if err := s.tx.Record(ctx, action, "", "incident", inc.ID, "", map[string]any{"fields": changed,
		"status": string(inc.Status), "severity": string(inc.Severity)}); err != nil {
		return nil, err
	}
	return s.Get(ctx, inc.ID)
}

// pendingAuthorities are the frameworks of a confirmed breach whose authority notification is
// not recorded.
func pendingAuthorities(inc *incidents.Incident) []string {
	var out []string
	if !inc.PersonalDataBreach {
		return nil
	}
	for _, c := range inc.Clocks(time.Time{}) {
		if c.NotifiedAt.IsZero() {
			out = append(out, c.Framework)
		}
	}
	return out
}

// save writes the incident's fields and its next reminder.
func (s Incidents) save(ctx context.Context, r *incidentRow) error {
	inc := &r.inc
	var next any
	if t, ok := inc.NextReminder(r.remindedThrough); ok {
		next = t
	}
	_, err := s.tx.exec(ctx, `UPDATE incidents SET title = $1, description = $2, severity = $3, status = $4,
		personal_data_breach = $5, confirmed_at = $6, frameworks = $7, owners = $8, data_categories = $9,
		subject_categories = $10, contact = $11, consequences = $12, measures = $13, updated_at = $14, closed_at = $15,
		next_reminder_at = $16, reminder_seq = reminder_seq + 1 WHERE id = $17`,
		inc.Title, inc.Description, string(inc.Severity), string(inc.Status), inc.PersonalDataBreach, nullTime(inc.ConfirmedAt),
		jsonList(inc.Frameworks), jsonList(inc.Owners), jsonList(inc.DataCategories), jsonList(inc.SubjectCategories),
		inc.Contact, inc.Consequences, inc.Measures, inc.UpdatedAt, nullTime(inc.ClosedAt), next, inc.ID)
	return err
}

// ConfirmBreach marks the incident a personal-data breach, aware at awareAt (zero: now), which
// starts the breach clock of each of its frameworks. awareAt may be earlier than now (the
// controller knew before anyone recorded it: the clock runs from then) but not before the
// incident was detected, nor in the future. Confirming twice is a conflict: the time the clock
// started is not rewritten. Audited incident.breach_confirmed.
func (s Incidents) ConfirmBreach(ctx context.Context, id string, awareAt time.Time) (*incidents.Incident, error) {
	r, err := s.lockOpen(ctx, id)
	if err != nil {
		return nil, err
	}
	inc := &r.inc
	if inc.PersonalDataBreach {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the incident is already a confirmed personal-data breach (aware at %s)",
			inc.ConfirmedAt.Format(time.RFC3339))
	}
	if awareAt.IsZero() {
		awareAt = s.tx.now
	}
	awareAt = awareAt.UTC()
	if awareAt.After(s.tx.now) {
		return nil, tutela.FieldErrorf("aware_at", "aware_at cannot be in the future")
	}
	if awareAt.Before(inc.DetectedAt) {
		return nil, tutela.FieldErrorf("aware_at", "aware_at cannot be before the incident was detected (%s)",
			inc.DetectedAt.Format(time.RFC3339))
	}
	inc.PersonalDataBreach, inc.ConfirmedAt, inc.UpdatedAt = true, awareAt, s.tx.now
	if err := s.save(ctx, r); err != nil {
		return nil, err
	}
	var deadlines []string
	for _, c := range inc.Clocks(s.tx.now) {
		deadlines = append(deadlines, fmt.Sprintf("%s by %s", c.Citation, c.Deadline.Format(time.RFC3339)))
	}
	if err := s.appendEntry(ctx, inc.ID, incidents.Entry{Actor: incidentActor(ctx), Kind: incidents.KindConfirmed,
		Text: "Confirmed as a personal-data breach, aware at " + awareAt.Format(time.RFC3339) + "; notify the authority: " +
			strings.Join(deadlines, "; ")}); err != nil {
		return nil, err
	}
	if err := s.tx.Record(ctx, "incident.breach_confirmed", "", "incident", inc.ID, "", map[string]any{
		"aware_at": awareAt.Format(time.RFC3339), "frameworks": inc.Frameworks}); err != nil {
		return nil, err
	}
	return s.Get(ctx, inc.ID)
}

// AddNote appends a person's note to the timeline; tenantID, when set (an affected tenant),
// shows it only to that tenant, otherwise every affected tenant sees it. Audited
// incident.note_added (without the text).
func (s Incidents) AddNote(ctx context.Context, id, text, tenantID string, at time.Time) (*incidents.Incident, error) {
	r, err := s.lockOpen(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := incidents.CheckText("text", text, true); err != nil {
		return nil, err
	}
	if tenantID != "" && !slices.ContainsFunc(r.inc.Tenants, func(a incidents.AffectedTenant) bool { return a.TenantID == tenantID }) {
		return nil, tutela.FieldErrorf("tenant_id", "tenant_id must be one of the affected tenants")
	}
	if at.IsZero() {
		at = s.tx.now
	}
	if at.After(s.tx.now) {
		return nil, tutela.FieldErrorf("at", "at cannot be in the future")
	}
	if err := s.appendEntry(ctx, id, incidents.Entry{At: at, Actor: incidentActor(ctx), Kind: incidents.KindNote, Text: text,
		TenantID: tenantID}); err != nil {
		return nil, err
	}
	if _, err := s.tx.exec(ctx, `UPDATE incidents SET updated_at = $1 WHERE id = $2`, s.tx.now, id); err != nil {
		return nil, err
	}
	if err := s.tx.Record(ctx, "incident.note_added", "", "incident", id, "", map[string]any{"tenant_id": tenantID}); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// AffectedChange adds a tenant to an incident, or updates its counts, and adds subjects of it.
type AffectedChange struct {
	TenantID       string
	SubjectsApprox *int
	RecordsApprox  *int
	SubjectIDs     []string // subjects of the tenant known to be concerned (added; never removed)
}

// SetAffected records that the incident affects a tenant, with approximate counts and the IDs
// of subjects concerned (each must be a subject of that tenant). The timeline gets an entry
// scoped to the tenant; audited incident.affected with the counts, never the subject IDs.
func (s Incidents) SetAffected(ctx context.Context, id string, c AffectedChange) (*incidents.Incident, error) {
	r, err := s.lockOpen(ctx, id)
	if err != nil {
		return nil, err
	}
	if !tutela.ValidID(c.TenantID) {
		return nil, tutela.FieldErrorf("tenant_id", "tenant_id must be a tenant's ID")
	}
	if _, err := s.tx.Tenant(ctx, c.TenantID); err != nil {
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, tutela.FieldErrorf("tenant_id", "no such tenant")
		}
		return nil, err
	}
	for _, n := range []struct {
		name string
		v    *int
	}{{"subjects_approx", c.SubjectsApprox}, {"records_approx", c.RecordsApprox}} {
		if n.v != nil && (*n.v < 0 || *n.v > incidents.MaxCount) {
			return nil, tutela.FieldErrorf(n.name, "%s must be 0 to %d", n.name, incidents.MaxCount)
		}
	}
	if len(c.SubjectIDs) > incidents.MaxSubjectsCall {
		return nil, tutela.FieldErrorf("subject_ids", "at most %d subject IDs per call", incidents.MaxSubjectsCall)
	}
	var existing *incidents.AffectedTenant
	for i := range r.inc.Tenants {
		if r.inc.Tenants[i].TenantID == c.TenantID {
			existing = &r.inc.Tenants[i]
		}
	}
	if existing == nil {
		if len(r.inc.Tenants) >= incidents.MaxTenants {
			return nil, tutela.Errorf(tutela.ECONFLICT, "an incident affects at most %d tenants", incidents.MaxTenants)
		}
		if _, err := s.tx.exec(ctx, `INSERT INTO incident_tenants (incident_id, tenant_id, added_at) VALUES ($1,$2,$3)`,
			id, c.TenantID, s.tx.now); err != nil {
			return nil, err
		}
		r.inc.Tenants = append(r.inc.Tenants, incidents.AffectedTenant{TenantID: c.TenantID})
		existing = &r.inc.Tenants[len(r.inc.Tenants)-1]
	}
	if c.SubjectsApprox != nil {
		existing.SubjectsApprox = *c.SubjectsApprox
	}
	if c.RecordsApprox != nil {
		existing.RecordsApprox = *c.RecordsApprox
	}
	if _, err := s.tx.exec(ctx, `UPDATE incident_tenants SET subjects_approx = $1, records_approx = $2 WHERE incident_id = $3
		AND tenant_id = $4`, existing.SubjectsApprox, existing.RecordsApprox, id, c.TenantID); err != nil {
		return nil, err
	}
	added := 0
	for _, sid := range c.SubjectIDs {
		if !tutela.ValidID(sid) {
			return nil, tutela.FieldErrorf("subject_ids", "a subject ID is malformed")
		}
		n, err := s.tx.count(ctx, `SELECT count(*) FROM subjects WHERE tenant_id = $1 AND id = $2`, c.TenantID, sid)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, tutela.FieldErrorf("subject_ids", "subject %s is not a subject of tenant %s", sid, c.TenantID)
		}
		if slices.Contains(existing.SubjectIDs, sid) {
			continue
		}
		if _, err := s.tx.exec(ctx, `INSERT INTO incident_subjects (incident_id, tenant_id, subject_id, added_at) VALUES ($1,$2,$3,$4)`,
			id, c.TenantID, sid, s.tx.now); err != nil {
			return nil, err
		}
		existing.SubjectIDs = append(existing.SubjectIDs, sid)
		added++
	}
	if err := s.appendEntry(ctx, id, incidents.Entry{Actor: incidentActor(ctx), Kind: incidents.KindAffected, TenantID: c.TenantID,
		Text: fmt.Sprintf("Tenant affected: about %d subjects and %d records; %d subjects listed (%d added)",
			existing.SubjectsApprox, existing.RecordsApprox, len(existing.SubjectIDs), added)}); err != nil {
		return nil, err
	}
	// A tenant added after the authority was notified tenant by tenant restarts the reminders
	// until its own notification is recorded: save recomputes the next one.
	r.inc.UpdatedAt = s.tx.now
	if err := s.save(ctx, r); err != nil {
		return nil, err
	}
	if err := s.tx.Record(ctx, "incident.affected", "", "incident", id, "", map[string]any{"tenant_id": c.TenantID,
		"subjects_approx": existing.SubjectsApprox, "records_approx": existing.RecordsApprox, "subjects_added": added}); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// RecordNotification records a notification made (incidents.Notification.Check). One to the
// authority under a framework stops that framework's reminders. Audited incident.notified.
func (s Incidents) RecordNotification(ctx context.Context, id string, n *incidents.Notification) (*incidents.Incident, error) {
	r, err := s.lockOpen(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := n.Check(&r.inc, s.tx.now); err != nil {
		return nil, err
	}
	n.ID, n.RecordedBy, n.RecordedAt, n.MadeAt = tutela.NewID(), incidentActor(ctx), s.tx.now, n.MadeAt.UTC()
	if _, err := s.tx.exec(ctx, `INSERT INTO incident_notifications (id, incident_id, recipient, framework, tenant_id,
		recipient_name, made_at, reference, subjects_notified, recorded_by, recorded_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
		n.ID, id, string(n.Recipient), n.Framework, nullString(n.TenantID), n.To, n.MadeAt, n.Reference, n.SubjectsNotified,
		n.RecordedBy, n.RecordedAt); err != nil {
		return nil, err
	}
	r.inc.Notifications = append(r.inc.Notifications, *n)
	r.inc.UpdatedAt = s.tx.now
	if err := s.save(ctx, r); err != nil {
		return nil, err
	}
	text := fmt.Sprintf("Notified %s (%s, %s) at %s", n.To, n.Recipient, n.Framework, n.MadeAt.Format(time.RFC3339))
	if n.Reference != "" {
		text += ", reference " + n.Reference
	}
	if err := s.appendEntry(ctx, id, incidents.Entry{Actor: n.RecordedBy, Kind: incidents.KindNotification, Text: text,
		TenantID: n.TenantID}); err != nil {
		return nil, err
	}
	if err := s.tx.Record(ctx, "incident.notified", "", "incident", id, "", map[string]any{"recipient": string(n.Recipient),
		"framework": n.Framework, "tenant_id": n.TenantID, "made_at": n.MadeAt.Format(time.RFC3339)}); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}
