// Package notify tells a tenant's people and systems about events (an approval requested or
// decided, a referral confirmed): an e-mail to each named user and a signed POST to each of the
// tenant's webhooks subscribed to the event's type. Both go through the durable queue (package
// jobs): Enqueue adds the jobs in the caller's transaction, so they exist exactly when the change
// that causes them commits, and are delivered at least once even if the node stops first.
//
// The payloads hold IDs, the event and its texts, no personal data (Event says what may go in),
// so they are not sealed and can be queued inside a transaction; the e-mail job looks the
// recipient's address up when it runs, the webhook job opens the endpoint's secret when it runs.
//
// A tenant in simulation (tenants.mode) sends nothing outward: webhook deliveries are dropped,
// logged and audited as simulated. E-mail to the tenant's own users still goes: they are its
// staff, and a simulation is for them to try the workflows.
package notify

import (
	"context"
	"encoding/json"
	"slices"
	"time"
	"unicode/utf8"

	"tutela"
	"tutela/sqlstore"
	"tutela/webhooks"
)

// Job kinds.
const (
	// JobMail e-mails one user about one event.
	JobMail = "notify.mail"
	// JobWebhook delivers one event to one webhook endpoint.
	JobWebhook = "notify.webhook"
)

// Attempts before a job is dead: with the queue's backoff (30 s doubling, at most an hour),
// about four hours of retries.
const (
	mailAttempts    = 8
	webhookAttempts = 8
)

// Limits on an event.
const (
	MaxSubjectBytes = 200
	MaxTextBytes    = 16 << 10
	MaxDataBytes    = 16 << 10
	MaxRecipients   = 100
)

// Event is something a tenant's people and systems are told about. No personal data in Subject,
// Text or Data: IDs, actions, states, links.
type Event struct {
	TenantID string
	Type     string         // "approval.requested", "approval.approved", ... (webhooks.EventTypes)
	Subject  string         // e-mail subject
	Text     string         // e-mail body (plain text)
	Data     map[string]any // the webhook payload's "data"
	UserIDs  []string       // e-mail recipients: users of the tenant, addresses looked up when the job runs
}

// Body is the JSON document a webhook endpoint receives. ID is the event's: the same for every
// endpoint and every retry, so a receiver can drop a duplicate (delivery is at least once).
type Body struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	TenantID  string         `json:"tenant_id"`
	CreatedAt time.Time      `json:"created_at"`
	Data      map[string]any `json:"data"`
}

// mailPayload is an e-mail job's payload: the recipient's user ID, not their address.
type mailPayload struct {
	UserID  string `json:"user_id"`
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// webhookPayload is a delivery job's payload. The body is fixed when the event is queued, so
// every retry sends the same bytes (only the timestamp and signature are new).
type webhookPayload struct {
	WebhookID string `json:"webhook_id"`
	EventID   string `json:"event_id"`
	Type      string `json:"type"`
	// Simulated is set when the tenant was in simulation as the event happened: the event is
	// never sent, even if the tenant is promoted before the job runs.
	Simulated bool            `json:"simulated,omitempty"`
	Body      json.RawMessage `json:"body"`
}

// Enqueue adds, in tx, one e-mail job per recipient and one webhook delivery job per tenant
// webhook subscribed to ev.Type (or "*"): sent exactly when tx commits, durably.
//
// The job kinds must be registered (Register) on the nodes that run the queue; enqueuing does
// not need them, nor the vault. An unknown event type, a malformed recipient ID or oversized
// texts are refused (EINVALID): they are the caller's bug, and nothing is queued.
func Enqueue(ctx context.Context, tx *sqlstore.Tx, ev Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	eventID := tutela.NewID()
	for _, uid := range recipients(ev.UserIDs) {
		b, err := json.Marshal(mailPayload{UserID: uid, EventID: eventID, Type: ev.Type, Subject: ev.Subject, Text: ev.Text})
		if err != nil {
			return err
		}
		if err := tx.EnqueueJob(ctx, &sqlstore.Job{Kind: JobMail, TenantID: ev.TenantID, Payload: b, MaxAttempts: mailAttempts}); err != nil {
			return err
		}
	}
	st := tx.Webhooks(ev.TenantID)
	ids, err := st.Subscribers(ctx, ev.Type)
	if err != nil || len(ids) == 0 {
		return err
	}
	simulated, err := st.Simulated(ctx)
	if err != nil {
		return err
	}
	data := ev.Data
	if data == nil {
		data = map[string]any{}
	}
	body, err := json.Marshal(Body{ID: eventID, Type: ev.Type, TenantID: ev.TenantID, CreatedAt: tx.Now(), Data: data})
	if err != nil {
		return tutela.FieldErrorf("data", "event data is not JSON: %v", err)
	}
	for _, id := range ids {
		b, err := json.Marshal(webhookPayload{WebhookID: id, EventID: eventID, Type: ev.Type, Simulated: simulated, Body: body})
		if err != nil {
			return err
		}
		if err := tx.EnqueueJob(ctx, &sqlstore.Job{Kind: JobWebhook, TenantID: ev.TenantID, Payload: b, MaxAttempts: webhookAttempts}); err != nil {
			return err
		}
	}
	return nil
}

func (ev *Event) validate() error {
	switch {
	case !tutela.ValidID(ev.TenantID):
		return tutela.FieldErrorf("tenant_id", "notify: the event needs its tenant's ID")
	case !webhooks.KnownEvent(ev.Type):
		return tutela.FieldErrorf("type", "notify: unknown event type %q (webhooks.EventTypes)", ev.Type)
	case len(ev.UserIDs) > MaxRecipients:
		return tutela.FieldErrorf("user_ids", "notify: at most %d recipients per event", MaxRecipients)
	}
	for _, id := range ev.UserIDs {
		if !tutela.ValidID(id) {
			return tutela.FieldErrorf("user_ids", "notify: a recipient is not a user ID")
		}
	}
	if len(ev.UserIDs) > 0 && (ev.Subject == "" || len(ev.Subject) > MaxSubjectBytes || !tutela.ValidText(ev.Subject)) {
		return tutela.FieldErrorf("subject", "notify: the e-mail subject must be 1 to %d bytes of text on one line", MaxSubjectBytes)
	}
	if len(ev.Text) > MaxTextBytes || !utf8.ValidString(ev.Text) {
		return tutela.FieldErrorf("text", "notify: the e-mail text must be at most %d bytes of UTF-8", MaxTextBytes)
	}
	if ev.Data != nil {
		b, err := json.Marshal(ev.Data)
		if err != nil {
			return tutela.FieldErrorf("data", "notify: the event data is not JSON")
		}
		if len(b) > MaxDataBytes {
			return tutela.FieldErrorf("data", "notify: the event data is larger than %d bytes", MaxDataBytes)
		}
	}
	return nil
}

// recipients is ids without repeats, in their order: one e-mail per person and event.
func recipients(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
