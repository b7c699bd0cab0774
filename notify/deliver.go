package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"tutela"
	"tutela/egress"
	"tutela/jobs"
	"tutela/mail"
	"tutela/sqlstore"
	"tutela/webhooks"
)

// DeliveryTimeout bounds one webhook delivery: an endpoint that does not answer in time is
// tried again later rather than holding a worker.
const DeliveryTimeout = 10 * time.Second

// maxResponse bounds how much of an endpoint's answer is read (and discarded).
const maxResponse = 4 << 10

// Options tune delivery. The zero value is the production setting.
type Options struct {
	Log *slog.Logger
	// PrivateNetworks are non-public networks deliveries may connect to. For tests only (an
	// httptest server on loopback): in production every loopback, private, link-local, shared
	// or otherwise non-public address is refused, after DNS resolution (package egress), so a
	// tenant's webhook URL cannot reach the deployment's internal services. There is no
	// configuration setting for it.
	PrivateNetworks []netip.Prefix
	// timeout replaces DeliveryTimeout (tests: an endpoint that never answers).
	timeout time.Duration
}

// notifier runs the two job kinds.
type notifier struct {
	db      *sqlstore.DB
	mailer  mail.Sender
	hc      *http.Client
	log     *slog.Logger
	timeout time.Duration
}

// Register gives q the kinds Enqueue adds: JobMail (sent through mailer; nil mailer: e-mail is
// not configured, and the jobs end without sending) and JobWebhook (POSTed through client).
//
// client supplies TLS settings (nil: the system's roots); it must be nil or have a nil or
// *http.Transport transport. Whatever it sets, delivery connects directly (no proxy from the
// environment: a proxy would dial for us, out of the guard's sight), only to public addresses
// (Options.PrivateNetworks aside), follows no redirect (the endpoint's answer is its own, not
// wherever it points) and gives up after DeliveryTimeout.
func Register(q *jobs.Queue, db *sqlstore.DB, mailer mail.Sender, client *http.Client, opt Options) error {
	if opt.timeout <= 0 {
		opt.timeout = DeliveryTimeout
	}
	hc, err := guardedClient(client, opt.PrivateNetworks, opt.timeout)
	if err != nil {
		return err
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	n := &notifier{db: db, mailer: mailer, hc: hc, log: opt.Log, timeout: opt.timeout}
	q.Register(jobs.Kind{Name: JobMail, MaxAttempts: mailAttempts, Handle: n.sendMail})
	q.Register(jobs.Kind{Name: JobWebhook, MaxAttempts: webhookAttempts, Timeout: DeliveryTimeout + 20*time.Second,
		Handle: n.deliver})
	return nil
}

func guardedClient(client *http.Client, allow []netip.Prefix, timeout time.Duration) (*http.Client, error) {
	base := http.DefaultTransport.(*http.Transport)
	if client != nil && client.Transport != nil {
		t, ok := client.Transport.(*http.Transport)
		if !ok {
			return nil, errors.New("notify: the client's transport must be an *http.Transport (its dialer is replaced by the SSRF guard)")
		}
		base = t
	}
	t := base.Clone()
	t.Proxy = nil
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: egress.Control(allow)}
	t.DialContext = d.DialContext
	t.DialTLSContext = nil
	t.MaxResponseHeaderBytes = 16 << 10
	t.TLSHandshakeTimeout = timeout
	t.MaxIdleConnsPerHost = 4
	return &http.Client{Transport: t, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// failure is a failed job as the queue records and logs it: a fixed class, never an error's
// text (which may repeat the endpoint's URL, and so a token in it).
type failure struct{ class string }

func (e failure) Error() string { return e.class }
func (e failure) Class() string { return e.class }

// sendMail e-mails one user: the address is read when the job runs, so an address changed
// since the event is the one used, and a user deleted or disabled since gets nothing.
func (n *notifier) sendMail(ctx context.Context, tenantID string, raw []byte) error {
	var p mailPayload
	if err := json.Unmarshal(raw, &p); err != nil || !tutela.ValidID(p.UserID) {
		return failure{"notify mail: payload unreadable"}
	}
	if n.mailer == nil {
		n.log.Info("notification e-mail not sent: e-mail is not configured", "event_id", p.EventID, "type", p.Type)
		return nil
	}
	var u *tutela.User
	err := n.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		u, err = tx.Users(tenantID).Get(ctx, p.UserID)
		return err
	})
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		n.log.Info("notification e-mail not sent: the recipient is gone", "event_id", p.EventID, "user", p.UserID)
		return nil
	}
	if err != nil {
		return err
	}
	if u.Status != tutela.StatusActive || u.Email == "" {
		n.log.Info("notification e-mail not sent: the recipient is not active", "event_id", p.EventID, "user", p.UserID)
		return nil
	}
	return n.mailer.Send(ctx, mail.Message{To: u.Email, Subject: p.Subject, Text: p.Text})
}

// deliver POSTs one event to one endpoint. 2xx is done; anything else (another status, a
// redirect, a refused address, no answer in time) fails the attempt, and the queue retries it
// after its backoff until the kind's attempts are spent. An endpoint deleted or disabled since
// the event gets nothing; a tenant in simulation sends nothing.
func (n *notifier) deliver(ctx context.Context, tenantID string, raw []byte) error {
	var p webhookPayload
	if err := json.Unmarshal(raw, &p); err != nil || !tutela.ValidID(p.WebhookID) || len(p.Body) == 0 {
		return failure{"webhook: payload unreadable"}
	}
	var d *sqlstore.WebhookDelivery
	err := n.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		d, err = tx.Webhooks(tenantID).Delivery(ctx, p.WebhookID)
		return err
	})
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		n.log.Info("webhook delivery dropped: the webhook was deleted", "webhook", p.WebhookID, "event_id", p.EventID)
		return nil
	}
	if err != nil {
		return failure{"webhook: endpoint unreadable (" + tutela.ErrorCode(err) + ")"}
	}
	defer clear(d.Secret.Bytes())
	log := n.log.With("webhook", p.WebhookID, "origin", webhooks.Origin(d.Webhook.URL), "event_id", p.EventID, "type", p.Type)
	if d.Webhook.Status != webhooks.StatusActive {
		log.Info("webhook delivery dropped: the webhook is disabled")
		return nil
	}
	attempt := sqlstore.WebhookAttempt{EventID: p.EventID, EventType: p.Type}
	if p.Simulated || d.Simulated {
		log.Info("webhook delivery dropped: the tenant is in simulation")
		attempt.Outcome, attempt.Status = sqlstore.DeliverySimulated, sqlstore.DeliverySimulated
		n.record(ctx, tenantID, p.WebhookID, attempt, log)
		return nil
	}
	if err := webhooks.ValidURL(d.Webhook.URL); err != nil {
		// Create refuses such URLs; one in the store anyway is not sent the event.
		attempt.Outcome, attempt.Status = sqlstore.DeliveryFailed, "refused: not an https URL"
		n.record(ctx, tenantID, p.WebhookID, attempt, log)
		return failure{"webhook: " + attempt.Status}
	}
	status, err := n.post(ctx, d.Webhook.URL, d.Secret.Bytes(), p.EventID, p.Body)
	attempt.Status, attempt.Outcome = status, sqlstore.DeliveryDone
	if err != nil {
		attempt.Outcome = sqlstore.DeliveryFailed
	}
	n.record(ctx, tenantID, p.WebhookID, attempt, log)
	return err
}

// record notes the attempt on the endpoint and in the audit log. Failing that is logged and not
// the delivery's failure: a delivered event must not be sent again for want of a note.
func (n *notifier) record(ctx context.Context, tenantID, id string, a sqlstore.WebhookAttempt, log *slog.Logger) {
	rec := context.WithoutCancel(ctx)
	if err := n.db.Update(rec, func(tx *sqlstore.Tx) error { return tx.Webhooks(tenantID).RecordDelivery(rec, id, a) }); err != nil {
		log.Error("webhook delivery not recorded", "outcome", a.Outcome, "status", a.Status, "code", tutela.ErrorCode(err))
	}
}

// post sends one signed attempt and returns the status to note ("200", or why there was none)
// and, unless the endpoint answered 2xx, the failure.
func (n *notifier) post(ctx context.Context, target string, secret []byte, eventID string, body []byte) (string, error) {
	return Post(ctx, n.hc, n.timeout, target, secret, eventID, body, n.db.Now())
}

// Post sends one signed delivery of body to target through hc, as every Tutela webhook is sent:
// headers Tutela-Webhook-Id (eventID), Tutela-Timestamp (now) and Tutela-Signature (v1 over
// both). It returns the status to note ("200", or why there was none) and, unless the endpoint
// answered 2xx within timeout, the failure: a fixed class, never the error's text (which may
// repeat the URL, and a token in it). Other packages that deliver signed events (monitor) use it
// so that one receiver-side Verify fits them all.
func Post(ctx context.Context, hc *http.Client, timeout time.Duration, target string, secret []byte, eventID string,
	body []byte, now time.Time) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return "refused: not a URL", failure{"webhook: request not built"}
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tutela-Webhooks/"+tutela.Version)
	req.Header.Set(HeaderID, eventID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, sign(secret, ts, body))
	res, err := hc.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, egress.ErrNonPublic):
			return "refused: not a public address", failure{"webhook: refused: the endpoint's address is not public"}
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
			return "timeout", failure{"webhook: the endpoint did not answer in time"}
		}
		return "unreachable", failure{"webhook: the endpoint could not be reached"}
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxResponse))
	status := strconv.Itoa(res.StatusCode)
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return status, failure{fmt.Sprintf("webhook: the endpoint answered %d", res.StatusCode)}
	}
	return status, nil
}
