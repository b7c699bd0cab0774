package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"tutela"
	"tutela/identity"
	"tutela/jobs"
	"tutela/mail"
	"tutela/notify"
	"tutela/sqlstore"
	"tutela/syslog"
)

// Job kinds, one per sink: each alert is one job per sink, retried by the queue with its
// backoff (30 s doubling, at most an hour) for deliveryAttempts attempts (about a day).
const (
	JobWebhook = "monitor.webhook"
	JobSyslog  = "monitor.syslog"
	JobEmail   = "monitor.email"
)

var jobKinds = map[string]string{SinkWebhook: JobWebhook, SinkSyslog: JobSyslog, SinkEmail: JobEmail}

const deliveryAttempts = 30

// SDID is the syslog SD-ID of the alert element. 32473 is the private enterprise number RFC 5612
// reserves for documentation; a collector keys its parsing on the whole SD-ID.
const SDID = "tutela-alert@32473"

// Webhook is the webhook sink: alerts POSTed as JSON, signed like every Tutela webhook (notify:
// Tutela-Signature v1, HMAC-SHA256 over timestamp and body), so notify.Verify or
// notify.Receiver checks them.
type Webhook struct {
	URL    string
	Secret tutela.Secret
	// Client sends (nil: a client with the standard library's defaults and DeliveryTimeout).
	// The URL is the operator's, so unlike a tenant's webhook it may be on a private network
	// (a SIEM inside the perimeter). Redirects are never followed.
	Client *http.Client
}

// Email is the e-mail sink: each alert to each address, through the identity service's sealed
// "mail" job kind (the one that carries every other Tutela e-mail).
type Email struct {
	To []string
}

// Sinks are the configured destinations; nil ones are off.
type Sinks struct {
	Webhook *Webhook
	Syslog  *syslog.Client
	Email   *Email
}

// Register gives q the delivery job kinds for the sinks that are configured. A job of a sink
// not configured on the node that runs it (the configuration changed since it was queued) is
// dropped and logged. Jobs from E-mail needs identity's mail kind registered on q too.
func Register(q *jobs.Queue, db *sqlstore.DB, s Sinks, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &deliverer{q: q, db: db, s: s, log: log}
	q.Register(jobs.Kind{Name: JobWebhook, MaxAttempts: deliveryAttempts, Urgent: true,
		Timeout: notify.DeliveryTimeout + 20*time.Second, Handle: d.webhook})
	q.Register(jobs.Kind{Name: JobSyslog, MaxAttempts: deliveryAttempts, Urgent: true, Handle: d.syslog})
	q.Register(jobs.Kind{Name: JobEmail, MaxAttempts: deliveryAttempts, Urgent: true, Handle: d.email})
}

type deliverer struct {
	q   *jobs.Queue
	db  *sqlstore.DB
	s   Sinks
	log *slog.Logger
}

// failure is a failed delivery as the queue records it: a fixed class, no error text that
// could carry a URL's token.
type failure struct{ class string }

func (e failure) Error() string { return e.class }

func decode(raw []byte) (*Alert, error) {
	var a Alert
	if err := json.Unmarshal(raw, &a); err != nil || a.ID == "" || a.Rule == "" {
		return nil, failure{"monitor: alert payload unreadable"}
	}
	return &a, nil
}

func (d *deliverer) webhook(ctx context.Context, _ string, raw []byte) error {
	a, err := decode(raw)
	if err != nil {
		return err
	}
	w := d.s.Webhook
	if w == nil {
		d.log.Warn("alert not sent: the webhook sink is no longer configured", "alert_id", a.ID, "rule", a.Rule)
		return nil
	}
	hc := w.Client
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	status, err := notify.Post(ctx, hc, notify.DeliveryTimeout, w.URL, w.Secret.Bytes(), a.ID, raw, d.db.Now())
	if err != nil {
		d.log.Warn("alert webhook delivery failed; the queue retries", "alert_id", a.ID, "status", status)
	}
	return err
}

func (d *deliverer) syslog(ctx context.Context, _ string, raw []byte) error {
	a, err := decode(raw)
	if err != nil {
		return err
	}
	if d.s.Syslog == nil {
		d.log.Warn("alert not sent: the syslog sink is no longer configured", "alert_id", a.ID, "rule", a.Rule)
		return nil
	}
	if err := d.s.Syslog.Send(ctx, SyslogMessage(a)); err != nil {
		d.log.Warn("alert syslog delivery failed; the queue retries", "alert_id", a.ID, "err", err)
		return failure{"monitor: syslog delivery failed"}
	}
	return nil
}

// SyslogMessage is the RFC 5424 form of an alert: facility authpriv, the rule's severity, MSGID
// "alert", the alert's fields as SD-PARAMs of SDID and a one-line summary as MSG.
func SyslogMessage(a *Alert) syslog.Message {
	p := []syslog.Param{{Name: "id", Value: a.ID}, {Name: "rule", Value: a.Rule}, {Name: "severity", Value: a.Severity},
		{Name: "action", Value: a.Action}, {Name: "count", Value: fmt.Sprint(a.Count)},
		{Name: "first", Value: a.FirstAt.UTC().Format(time.RFC3339Nano)}, {Name: "last", Value: a.LastAt.UTC().Format(time.RFC3339Nano)},
		{Name: "events", Value: strings.Join(a.EventIDs, ",")}}
	for _, kv := range [][2]string{{"tenant", a.TenantID}, {"actor_type", a.ActorType}, {"actor", a.ActorID},
		{"target_type", a.TargetType}, {"target", a.TargetID}, {"outcome", a.Outcome}} {
		if kv[1] != "" {
			p = append(p, syslog.Param{Name: kv[0], Value: kv[1]})
		}
	}
	return syslog.Message{Facility: syslog.FacilityAuthPriv, Severity: syslogSeverity(a.Severity), Time: a.CreatedAt,
		MsgID: "alert", Data: []syslog.Element{{ID: SDID, Params: p}}, Msg: summary(a)}
}

func syslogSeverity(s string) syslog.Severity {
	switch s {
	case SevCritical:
		return syslog.SevCritical
	case SevWarning:
		return syslog.SevWarning
	}
	return syslog.SevInfo
}

// summary is one line for people: IDs and counts only.
func summary(a *Alert) string {
	s := fmt.Sprintf("Tutela alert %s (%s): %d × %s", a.Rule, a.Severity, a.Count, a.Action)
	if a.TenantID != "" {
		s += " in tenant " + a.TenantID
	}
	if a.Count > 1 {
		s += fmt.Sprintf(" between %s and %s", a.FirstAt.UTC().Format(time.RFC3339), a.LastAt.UTC().Format(time.RFC3339))
	} else {
		s += " at " + a.FirstAt.UTC().Format(time.RFC3339)
	}
	return s
}

// email turns the alert into one sealed mail job per address, all queued in one transaction: a
// retry after a failure queues them all again or none was queued.
func (d *deliverer) email(ctx context.Context, _ string, raw []byte) error {
	a, err := decode(raw)
	if err != nil {
		return err
	}
	if d.s.Email == nil || len(d.s.Email.To) == 0 {
		d.log.Warn("alert not sent: the e-mail sink is no longer configured", "alert_id", a.ID, "rule", a.Rule)
		return nil
	}
	text := summary(a) + "\n\n" + emailText(a)
	var js []*sqlstore.Job
	for _, to := range d.s.Email.To {
		b, err := json.Marshal(mail.Message{To: to, Subject: "[Tutela " + a.Severity + "] " + a.Rule, Text: text})
		if err != nil {
			return err
		}
		j, err := d.q.Prepare(identity.JobMail, "", b)
		clear(b)
		if err != nil {
			return failure{"monitor: e-mail not prepared (is e-mail configured?)"}
		}
		js = append(js, j)
	}
	return d.db.Update(ctx, func(tx *sqlstore.Tx) error {
		for _, j := range js {
			if err := tx.EnqueueJob(ctx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

func emailText(a *Alert) string {
	var b strings.Builder
	for _, kv := range [][2]string{{"Alert", a.ID}, {"Rule", a.Rule}, {"Severity", a.Severity}, {"Tenant", a.TenantID},
		{"Action", a.Action}, {"Count", fmt.Sprint(a.Count)}, {"First", a.FirstAt.UTC().Format(time.RFC3339)},
		{"Last", a.LastAt.UTC().Format(time.RFC3339)}, {"Actor", a.ActorID}, {"Target", strings.Trim(a.TargetType+" "+a.TargetID, " ")},
		{"Outcome", a.Outcome}, {"Audit events", strings.Join(a.EventIDs, ", ")}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%-13s %s\n", kv[0]+":", kv[1])
		}
	}
	b.WriteString("\nThe audit events behind the alert are in Tutela's audit log (GET /v1/audit/events).\n")
	return b.String()
}
