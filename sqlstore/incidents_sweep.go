package sqlstore

import (
	"context"
	"fmt"
	"time"
	"tutela/audit"

	"tutela"
	"tutela/authz"
	"tutela/incidents"
)

// IncidentOwner is a user to remind, with their tenant (e-mail goes through the tenant's
// notify path).
type IncidentOwner struct {
	TenantID string
	UserID   string
}

// IncidentReminder is one breach-clock reminder a sweep sent: the incident as it stands, the
// reminder point, and whom to tell.
type IncidentReminder struct {
	Incident incidents.Incident
	Reminder incidents.Reminder
	Owners   []IncidentOwner
}

// SweepIncidents sends the breach-clock reminders that are due, across the deployment. For each
// confirmed breach whose next reminder point has passed it takes the latest point due
// (incidents.Incident.DueReminder), records it on the timeline and in the audit log
// (incident.reminder, or incident.overdue at a deadline) and returns it with the owners to tell.
// Each incident's reminder is claimed by a conditional UPDATE on its reminder_seq, so nodes
// sweeping at once send it once; nothing is due for a breach whose authority notifications
// are all recorded, or for a closed incident.
func (tx *Tx) SweepIncidents(ctx context.Context) ([]IncidentReminder, error) {
	ids, err := tx.queryStrings(ctx, `SELECT id FROM incidents WHERE next_reminder_at IS NOT NULL AND next_reminder_at <= $1
		ORDER BY next_reminder_at, id LIMIT `+itoa(sweepBatch), tx.now)
	if err != nil {
		return nil, err
	}
	s := tx.Incidents()
	var out []IncidentReminder
	for _, id := range ids {
		r, err := s.get(ctx, id, "")
		if err != nil {
			return nil, err
		}
		due, ok := r.inc.DueReminder(r.remindedThrough, tx.now)
		through := r.remindedThrough
		if ok {
			through = due.At
		}
		var next any
		if t, more := r.inc.NextReminder(through); more {
			next = t
		}
		res, err := tx.exec(ctx, `UPDATE incidents SET reminded_through = $1, next_reminder_at = $2, reminder_seq = reminder_seq + 1
			WHERE id = $3 AND reminder_seq = $4`, nullTime(through), next, id, r.reminderSeq)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n != 1 || !ok {
			continue // another node sent it, or nothing was due after all (the schedule moved)
		}
		kind, action, text := incidents.KindReminder, "incident.reminder", fmt.Sprintf("Reminder: notify the authority under %s by %s (%s left)",
			due.Framework, due.Deadline.Format(time.RFC3339), due.Deadline.Sub(tx.now).Round(time.Minute)) // left now, not at the point: a late sweep (an outage) sends the latest point missed
		if due.Overdue {
			kind, action, text = incidents.KindOverdue, "incident.overdue", fmt.Sprintf("Overdue: the deadline under %s (%s) passed without the authority's notification recorded",
				due.Framework, due.Deadline.Format(time.RFC3339))
		}
		if err := s.appendEntry(ctx, id, incidents.Entry{At: tx.now, Actor: audit.ActorSystem, Kind: kind, Text: text}); err != nil {
			return nil, err
		}
		if err := tx.Record(ctx, action, "", "incident", id, "", map[string]any{"framework": due.Framework,
			"deadline": due.Deadline.Format(time.RFC3339), "point": due.At.Format(time.RFC3339)}); err != nil {
			return nil, err
		}
		owners, err := tx.incidentOwners(ctx, r.inc.Owners)
		if err != nil {
			return nil, err
		}
		full, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, IncidentReminder{Incident: *full, Reminder: due, Owners: owners})
	}
	return out, nil
}

// incidentOwners resolves the owners to remind: each owner who still qualifies as one (the rule
// of checkOwners, applied now: an owner whose super_admin grant was revoked or expired, or who was
// disabled, since being named no longer hears of the incident); with no owner qualifying, every
// active holder of an unexpired super_admin grant (someone must hear the clock).
func (tx *Tx) incidentOwners(ctx context.Context, ids []string) ([]IncidentOwner, error) {
	var out []IncidentOwner
	for _, id := range ids {
		o, err := tx.superAdmins(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, o...)
	}
	if len(out) > 0 {
		return out, nil
	}
	return tx.superAdmins(ctx, "")
}

// superAdmins returns the active users holding an unexpired platform super_admin grant, by
// tenant and ID; only user (when not empty) if they are one.
func (tx *Tx) superAdmins(ctx context.Context, user string) ([]IncidentOwner, error) {
	q := `SELECT DISTINCT CAST(u.tenant_id AS TEXT), CAST(u.id AS TEXT) FROM user_roles ur
		JOIN roles ro ON ro.id = ur.role_id JOIN users u ON u.tenant_id = ur.tenant_id AND u.id = ur.user_id
		WHERE ro.key = $1 AND ro.tenant_id IS NULL AND u.status = 'active' AND (ur.expires_at IS NULL OR ur.expires_at > $2)`
	args := []any{authz.RoleSuperAdmin, tx.now}
	if user != "" {
		if !tutela.ValidID(user) {
			return nil, nil
		}
		q += ` AND ur.user_id = $3`
		args = append(args, user)
	}
	rows, err := tx.query(ctx, q+` ORDER BY 1, 2`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []IncidentOwner
	for rows.Next() {
		var o IncidentOwner
		if err := rows.Scan(&o.TenantID, &o.UserID); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
