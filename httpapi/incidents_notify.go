package httpapi

import (
	"context"
	"fmt"
	"time"

	"tutela/incidents"
	"tutela/notify"
	"tutela/sqlstore"
	"tutela/webhooks"
)

// SweepIncidents sends the breach-clock reminders that are due (sqlstore.SweepIncidents) to
// each incident's owners: an e-mail to each and the owners' tenant's webhooks subscribed to
// incident.reminder or incident.overdue, queued in the sweep's transaction (package notify), so
// a reminder is marked sent exactly when its notices are queued. Every node runs it each minute
// (cmd/tutela); each reminder goes out once.
func (s *Server) SweepIncidents(ctx context.Context) ([]sqlstore.IncidentReminder, error) {
	var due []sqlstore.IncidentReminder
	err := s.d.DB.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		if due, err = tx.SweepIncidents(ctx); err != nil {
			return err
		}
		for i := range due {
			d := &due[i]
			n := incidentNotice(&d.Incident, d.Reminder, tx.Now())
			byTenant := map[string][]string{}
			var order []string
			for _, o := range d.Owners {
				if _, ok := byTenant[o.TenantID]; !ok {
					order = append(order, o.TenantID)
				}
				byTenant[o.TenantID] = append(byTenant[o.TenantID], o.UserID)
			}
			for _, tenantID := range order {
				users := byTenant[tenantID]
				if len(users) > notify.MaxRecipients {
					users = users[:notify.MaxRecipients]
				}
				if err := notify.Enqueue(ctx, tx, notify.Event{TenantID: tenantID, Type: n.Type, Subject: n.Subject, Text: n.Text,
					Data: n.Data, UserIDs: users}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return due, err
}

// incidentNoticeType is a notice with its event type.
type incidentNoticeType struct {
	notice
	Type string
}

// incidentNotice says where the breach clock stands without anything people wrote about the
// incident (its title and texts may name the people concerned): the incident's ID, severity,
// the law, the deadline, the time left and where to act. Those reading it there are authorized
// as usual.
func incidentNotice(inc *incidents.Incident, rem incidents.Reminder, now time.Time) incidentNoticeType {
	url := "/v1/incidents/" + inc.ID
	f := incidents.Frameworks[rem.Framework]
	var n incidentNoticeType
	left := rem.Deadline.Sub(now).Round(time.Minute)
	if rem.Overdue {
		n.Type = webhooks.IncidentOverdue
		n.Subject = fmt.Sprintf("OVERDUE: breach notification to the authority (%s), incident %s", f.Name, inc.ID)
		n.Text = fmt.Sprintf("The deadline to notify %s of personal-data breach %s (severity %s) under %s passed at %s, "+
			"and no notification to the authority is recorded. Notify now, giving the reasons for the delay, then record it at %s/notifications. "+
			"The facts to send are at %s/notification.", f.Authority, inc.ID, inc.Severity, f.Citation, rem.Deadline.Format(time.RFC3339), url, url)
	} else {
		n.Type = webhooks.IncidentReminder
		n.Subject = fmt.Sprintf("Breach notification due in %s (%s), incident %s", left, f.Name, inc.ID)
		n.Text = fmt.Sprintf("Personal-data breach %s (severity %s) must be notified to %s under %s by %s (%s from now). "+
			"The facts to send are at %s/notification; record the notification at %s/notifications to stop these reminders.",
			inc.ID, inc.Severity, f.Authority, f.Citation, rem.Deadline.Format(time.RFC3339), left, url, url)
	}
	n.Data = map[string]any{"incident_id": inc.ID, "severity": string(inc.Severity), "framework": rem.Framework,
		"deadline": rem.Deadline.Format(time.RFC3339), "overdue": rem.Overdue, "url": url}
	return n
}
