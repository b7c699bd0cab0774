package notify_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/jobs"
	"tutela/notify"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/webhooks"
)

func eachDialect(t *testing.T, fn func(t *testing.T, d sqlstore.Dialect)) {
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

var requested = notify.Event{Type: webhooks.ApprovalRequested, Subject: "Approval requested",
	Text: "Request 0190a1b2 waits for your decision.", Data: map[string]any{"request_id": "0190a1b2", "action": "role.grant"}}

// An event reaches a subscribed endpoint through the queue, once the enqueuing transaction
// commits: the body is the documented document, the headers carry the event's ID, the time and
// a signature that verifies with the secret the endpoint was given.
func TestDelivery_SignedPostThroughQueue(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, loopback)
		w, secret := e.webhook(t, "/hook", webhooks.ApprovalRequested)
		// Rolled back: nothing is queued, nothing is sent.
		boom := errors.New("boom")
		err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
			ev := requested
			ev.TenantID = e.tenant
			if err := notify.Enqueue(ctx, tx, ev); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || e.jobs(t, sqlstore.JobPending) != 0 {
			t.Fatalf("rolled back: %v, %d jobs", err, e.jobs(t, sqlstore.JobPending))
		}
		e.enqueue(t, requested)
		if e.jobs(t, sqlstore.JobPending) != 1 || len(e.rcv.requests()) != 0 {
			t.Fatal("want one queued delivery and nothing sent before the worker runs")
		}
		e.runDue(t)
		got := e.rcv.requests()
		if len(got) != 1 {
			t.Fatalf("%d requests, want 1", len(got))
		}
		r := got[0]
		if r.path != "/hook" || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("request %s %v", r.path, r.header)
		}
		var body struct {
			ID        string         `json:"id"`
			Type      string         `json:"type"`
			TenantID  string         `json:"tenant_id"`
			CreatedAt time.Time      `json:"created_at"`
			Data      map[string]any `json:"data"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if !tutela.ValidID(body.ID) || body.Type != webhooks.ApprovalRequested || body.TenantID != e.tenant ||
			!body.CreatedAt.Equal(e.clock.Now()) || body.Data["request_id"] != "0190a1b2" || body.Data["action"] != "role.grant" {
			t.Fatalf("body %s", r.body)
		}
		if r.header.Get(notify.HeaderID) != body.ID || r.header.Get(notify.HeaderTimestamp) != strconv.FormatInt(e.clock.Now().Unix(), 10) {
			t.Fatalf("headers %v", r.header)
		}
		if err := notify.Verify(secret, r.header, r.body, e.clock.Now()); err != nil {
			t.Fatalf("the delivery does not verify with the webhook's secret: %v", err)
		}
		if err := notify.Verify("whsec_"+strings.Repeat("0", 64), r.header, r.body, e.clock.Now()); err == nil {
			t.Fatal("the delivery verifies with another secret")
		}
		if e.jobs(t, sqlstore.JobPending) != 0 {
			t.Fatal("a delivered job is still pending")
		}
		if got := e.get(t, w.ID); got.LastStatus != "200" || !got.LastDeliveryAt.Equal(e.clock.Now()) {
			t.Fatalf("webhook after delivery: %+v", got)
		}
		if a := e.actions(t); a["webhook.delivered"] != 1 || a["webhook.created"] != 1 {
			t.Fatalf("audit %v", a)
		}
		e.noSecret(t, secret)
	})
}

// Only active endpoints subscribed to the event's type (or to "*") get it; one event fans out
// to each with the same event ID.
func TestEnqueue_OnlySubscribedEndpoints(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, loopback)
	e.webhook(t, "/exact", webhooks.ApprovalRequested)
	e.webhook(t, "/all", webhooks.All)
	e.webhook(t, "/other", webhooks.ApprovalRejected, webhooks.ReferralCreated)
	e.enqueue(t, requested)
	e.runDue(t)
	got := e.rcv.requests()
	paths := map[string]string{}
	for _, r := range got {
		paths[r.path] = r.header.Get(notify.HeaderID)
	}
	if len(got) != 2 || paths["/exact"] == "" || paths["/exact"] != paths["/all"] {
		t.Fatalf("deliveries %v", paths)
	}
	// Another tenant's event reaches none of this tenant's endpoints.
	other := &tutela.Tenant{Slug: "other", Name: "Other", Region: "eu"}
	e.update(t, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, other) })
	ev := requested
	ev.TenantID = other.ID
	e.enqueue(t, ev)
	e.runDue(t)
	if n := len(e.rcv.requests()); n != 2 {
		t.Fatalf("another tenant's event was delivered here: %d requests", n)
	}
}

// A 500 is retried with the queue's backoff, with the same event ID and body and a fresh
// timestamp and signature; after the kind's attempts the job is dead, and logged.
func TestDelivery_RetriesOn500UntilDead(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, loopback)
		w, secret := e.webhook(t, "/hook", webhooks.All)
		e.rcv.answer(500)
		e.enqueue(t, requested)
		e.runDue(t)
		if got := e.get(t, w.ID); got.LastStatus != "500" || e.jobs(t, sqlstore.JobPending) != 1 {
			t.Fatalf("after a 500: %+v, %d pending", got, e.jobs(t, sqlstore.JobPending))
		}
		e.runDue(t) // not due yet: the backoff holds it
		if n := len(e.rcv.requests()); n != 1 {
			t.Fatalf("retried before its backoff: %d requests", n)
		}
		e.clock.Add(jobs.Backoff(1))
		e.runDue(t)
		got := e.rcv.requests()
		if len(got) != 2 || e.jobs(t, sqlstore.JobPending) != 0 {
			t.Fatalf("retry: %d requests, %d pending", len(got), e.jobs(t, sqlstore.JobPending))
		}
		if string(got[0].body) != string(got[1].body) || got[0].header.Get(notify.HeaderID) != got[1].header.Get(notify.HeaderID) ||
			got[0].header.Get(notify.HeaderTimestamp) == got[1].header.Get(notify.HeaderTimestamp) {
			t.Fatal("a retry must resend the same event with a new timestamp")
		}
		for _, r := range got {
			if err := notify.VerifySignature(secret, r.header.Get(notify.HeaderTimestamp), r.body, r.header.Get(notify.HeaderSignature)); err != nil {
				t.Fatalf("attempt signature: %v", err)
			}
		}
		if a := e.actions(t); a["webhook.delivery_failed"] != 1 || a["webhook.delivered"] != 1 {
			t.Fatalf("audit %v", a)
		}

		// An endpoint that always fails: exactly the kind's attempts, then dead and logged.
		e.rcv.answer(500, 502, 503, 500, 500, 500, 500, 500, 500)
		e.enqueue(t, requested)
		before := len(e.rcv.requests())
		for i := 1; i <= 10; i++ {
			e.runDue(t)
			e.clock.Add(jobs.Backoff(i))
		}
		if n := len(e.rcv.requests()) - before; n != 8 {
			t.Fatalf("%d attempts, want 8", n)
		}
		if e.jobs(t, sqlstore.JobDead) != 1 || !strings.Contains(e.logs.String(), "job dead after its last attempt") ||
			!strings.Contains(e.logs.String(), "webhook: the endpoint answered 500") {
			t.Fatalf("dead %d, logs:\n%s", e.jobs(t, sqlstore.JobDead), e.logs)
		}
		e.noSecret(t, secret)
	})
}

// A redirect is not followed: it is the endpoint's answer, a failed attempt.
func TestDelivery_RedirectNotFollowed(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, loopback)
	w, _ := e.webhook(t, "/hook", webhooks.All)
	e.rcv.answer(http.StatusTemporaryRedirect)
	e.enqueue(t, requested)
	e.runDue(t)
	got := e.rcv.requests()
	if len(got) != 1 || got[0].path != "/hook" {
		t.Fatalf("requests %+v", got)
	}
	if w := e.get(t, w.ID); w.LastStatus != "307" || e.jobs(t, sqlstore.JobPending) != 1 {
		t.Fatalf("after a redirect: %+v", w)
	}
}

// Without the test-only allowance, an endpoint on a loopback address is refused at dial time:
// nothing reaches it, the attempt fails (and is retried: DNS may change), and the refusal is
// what the endpoint's last status and the log say.
func TestDelivery_PrivateAddressRefused(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, nil)
		w, secret := e.webhook(t, "/hook", webhooks.All)
		localhost := &webhooks.Webhook{URL: strings.Replace(e.rcv.srv.URL, "127.0.0.1", "localhost", 1) + "/by-name", Events: []string{webhooks.All}}
		e.update(t, func(tx *sqlstore.Tx) error { _, err := tx.Webhooks(e.tenant).Create(ctx, localhost); return err })
		e.enqueue(t, requested)
		e.runDue(t)
		if n := len(e.rcv.requests()); n != 0 {
			t.Fatalf("the guard let %d requests through", n)
		}
		for _, id := range []string{w.ID, localhost.ID} {
			if got := e.get(t, id); got.LastStatus != "refused: not a public address" {
				t.Fatalf("last status %q", got.LastStatus)
			}
		}
		if e.jobs(t, sqlstore.JobPending) != 2 || !strings.Contains(e.logs.String(), "the endpoint's address is not public") {
			t.Fatalf("pending %d, logs:\n%s", e.jobs(t, sqlstore.JobPending), e.logs)
		}
		if strings.Contains(e.logs.String(), "/hook") || strings.Contains(e.logs.String(), "/by-name") {
			t.Fatal("the logs hold an endpoint's path (which may hold a token)")
		}
		e.noSecret(t, secret)
	})
}

// A tenant in simulation sends nothing outward: the delivery is dropped, logged and audited as
// simulated, and the job ends. Its staff still get their e-mail.
func TestDelivery_SimulationTenantSendsNoWebhook(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, loopback)
		w, _ := e.webhook(t, "/hook", webhooks.All)
		u := e.user(t, "approver@example.org")
		if _, err := e.db.SQL().ExecContext(ctx, `UPDATE tenants SET mode = 'simulation' WHERE id = $1`, e.tenant); err != nil {
			t.Fatal(err)
		}
		ev := requested
		ev.UserIDs = []string{u.ID}
		e.enqueue(t, ev)
		// Promoted before the job runs: the event happened in simulation and still goes nowhere.
		if _, err := e.db.SQL().ExecContext(ctx, `UPDATE tenants SET mode = 'provisioning' WHERE id = $1`, e.tenant); err != nil {
			t.Fatal(err)
		}
		e.runDue(t)
		if n := len(e.rcv.requests()); n != 0 {
			t.Fatalf("a simulation tenant's event was delivered (%d requests)", n)
		}
		if e.jobs(t, sqlstore.JobPending) != 0 || e.get(t, w.ID).LastStatus != "simulated" ||
			e.actions(t)["webhook.delivery_simulated"] != 1 || !strings.Contains(e.logs.String(), "tenant is in simulation") {
			t.Fatalf("pending %d, webhook %+v, audit %v", e.jobs(t, sqlstore.JobPending), e.get(t, w.ID), e.actions(t))
		}
		if m := e.mailer.Messages(); len(m) != 1 || m[0].To != "approver@example.org" {
			t.Fatalf("staff e-mail in simulation: %+v", m)
		}
		// An event while the tenant is in simulation at delivery time only is dropped too.
		e.enqueue(t, requested)
		if _, err := e.db.SQL().ExecContext(ctx, `UPDATE tenants SET mode = 'simulation' WHERE id = $1`, e.tenant); err != nil {
			t.Fatal(err)
		}
		e.runDue(t)
		if n := len(e.rcv.requests()); n != 0 || e.actions(t)["webhook.delivery_simulated"] != 2 {
			t.Fatalf("%d requests, audit %v", n, e.actions(t))
		}
	})
}

// A webhook deleted before its delivery runs: the job finds nothing, sends nothing, ends.
func TestDelivery_DeletedWebhookCompletesWithoutSending(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, loopback)
	w, _ := e.webhook(t, "/hook", webhooks.All)
	e.enqueue(t, requested)
	e.update(t, func(tx *sqlstore.Tx) error { return tx.Webhooks(e.tenant).Delete(ctx, w.ID) })
	e.runDue(t)
	if n := len(e.rcv.requests()); n != 0 || e.jobs(t, sqlstore.JobPending) != 0 || e.jobs(t, sqlstore.JobDead) != 0 {
		t.Fatalf("%d requests, %d pending, %d dead", n, e.jobs(t, sqlstore.JobPending), e.jobs(t, sqlstore.JobDead))
	}
	if a := e.actions(t); a["webhook.deleted"] != 1 || a["webhook.delivered"] != 0 {
		t.Fatalf("audit %v", a)
	}
}

// Each recipient gets one e-mail at the address their account has when the job runs (looked up
// then: the queued job holds the user's ID, not the address); a repeated ID is one e-mail; a user
// deleted or disabled meanwhile gets none.
func TestMail_ReachesRecordedMailerAtCurrentAddress(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, loopback)
		a, b, c := e.user(t, "a@example.org"), e.user(t, "b@example.org"), e.user(t, "c@example.org")
		ev := requested
		ev.UserIDs = []string{a.ID, b.ID, a.ID, c.ID}
		e.enqueue(t, ev)
		if n := e.jobs(t, sqlstore.JobPending); n != 3 {
			t.Fatalf("%d mail jobs, want 3", n)
		}
		var payloads string
		rows, err := e.db.SQL().QueryContext(ctx, `SELECT payload FROM jobs`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var p []byte
			_ = rows.Scan(&p)
			payloads += string(p)
		}
		rows.Close()
		if strings.Contains(payloads, "@example.org") {
			t.Fatal("a queued e-mail job holds an address")
		}
		a.Email = "a.new@example.org"
		e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(e.tenant).Update(ctx, a) })
		e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(e.tenant).Delete(ctx, b.ID) })
		c.Status = tutela.StatusDisabled
		e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(e.tenant).Update(ctx, c) })
		e.runDue(t)
		m := e.mailer.Messages()
		if len(m) != 1 || m[0].To != "a.new@example.org" || m[0].Subject != requested.Subject || m[0].Text != requested.Text {
			t.Fatalf("messages %+v", m)
		}
		if e.jobs(t, sqlstore.JobPending) != 0 {
			t.Fatal("mail jobs left pending")
		}
	})
}

// A relay that fails is retried like any job; the recorded failure holds no address.
func TestMail_RelayFailureRetried(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, loopback)
	u := e.user(t, "ops@example.org")
	e.mailer.FailWith(tutela.Errorf(tutela.EUNAVAILABLE, "relay down for ops@example.org"))
	ev := requested
	ev.UserIDs = []string{u.ID}
	e.enqueue(t, ev)
	e.runDue(t)
	if e.jobs(t, sqlstore.JobPending) != 1 || len(e.mailer.Messages()) != 0 || strings.Contains(e.logs.String(), "ops@example.org") {
		t.Fatalf("pending %d, logs:\n%s", e.jobs(t, sqlstore.JobPending), e.logs)
	}
	e.mailer.FailWith(nil)
	e.clock.Add(jobs.Backoff(1))
	e.runDue(t)
	if m := e.mailer.Messages(); len(m) != 1 || m[0].To != "ops@example.org" {
		t.Fatalf("messages %+v", m)
	}
}

// Bad events are the caller's bug: refused, nothing queued.
func TestEnqueue_RefusesMalformedEvents(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, loopback)
	e.webhook(t, "/hook", webhooks.All)
	u := e.user(t, "a@example.org")
	for name, ev := range map[string]notify.Event{
		"no tenant":       {Type: webhooks.ApprovalRequested, TenantID: "-"},
		"unknown type":    {TenantID: e.tenant, Type: "approval.requested "},
		"all as a type":   {TenantID: e.tenant, Type: webhooks.All},
		"bad recipient":   {TenantID: e.tenant, Type: webhooks.ApprovalRequested, Subject: "s", UserIDs: []string{"a@example.org"}},
		"no subject":      {TenantID: e.tenant, Type: webhooks.ApprovalRequested, UserIDs: []string{u.ID}},
		"header in subj":  {TenantID: e.tenant, Type: webhooks.ApprovalRequested, Subject: "s\r\nBcc: x@example.org", UserIDs: []string{u.ID}},
		"data not JSON":   {TenantID: e.tenant, Type: webhooks.ApprovalRequested, Data: map[string]any{"f": func() {}}},
		"data too large":  {TenantID: e.tenant, Type: webhooks.ApprovalRequested, Data: map[string]any{"x": strings.Repeat("x", notify.MaxDataBytes)}},
		"text not UTF-8":  {TenantID: e.tenant, Type: webhooks.ApprovalRequested, Text: "\xff"},
		"too many people": {TenantID: e.tenant, Type: webhooks.ApprovalRequested, Subject: "s", UserIDs: make([]string, notify.MaxRecipients+1)},
	} {
		err := e.db.Update(ctx, func(tx *sqlstore.Tx) error { return notify.Enqueue(ctx, tx, ev) })
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if n := e.jobs(t, sqlstore.JobPending); n != 0 {
		t.Fatalf("%d jobs queued by refused events", n)
	}
}

// The client given to Register cannot switch the guard off: a transport the guard cannot be
// fitted to is refused.
func TestRegister_RefusesTransportItCannotGuard(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, nil)
	rt := roundTripper(func(*http.Request) (*http.Response, error) { return nil, errors.New("no") })
	if err := notify.Register(e.q, e.db, nil, &http.Client{Transport: rt}, notify.Options{}); err == nil {
		t.Fatal("a custom RoundTripper was accepted")
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// An endpoint that does not answer in time is a failed attempt ("timeout"), retried later.
func TestDelivery_TimeoutIsAFailedAttempt(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, loopback)
	release := make(chan struct{})
	hang := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	opt := notify.WithTimeout(notify.Options{Log: slog.New(slog.NewTextHandler(e.logs, nil)), PrivateNetworks: loopback}, 50*time.Millisecond)
	if err := notify.Register(e.q, e.db, e.mailer, hang.Client(), opt); err != nil {
		t.Fatal(err)
	}
	w := &webhooks.Webhook{URL: hang.URL + "/slow", Events: []string{webhooks.All}}
	e.update(t, func(tx *sqlstore.Tx) error { _, err := tx.Webhooks(e.tenant).Create(ctx, w); return err })
	e.enqueue(t, requested)
	e.runDue(t)
	if got := e.get(t, w.ID); got.LastStatus != "timeout" || e.jobs(t, sqlstore.JobPending) != 1 ||
		!strings.Contains(e.logs.String(), "the endpoint did not answer in time") {
		t.Fatalf("after a hang: %+v, logs:\n%s", got, e.logs)
	}
}

// A disabled endpoint is sent nothing: not queued for new events, and a delivery already queued
// ends without sending.
func TestDelivery_DisabledWebhookSentNothing(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, loopback)
	w, _ := e.webhook(t, "/hook", webhooks.All)
	e.enqueue(t, requested)
	if _, err := e.db.SQL().ExecContext(ctx, `UPDATE webhooks SET status = 'disabled' WHERE id = $1`, w.ID); err != nil {
		t.Fatal(err)
	}
	e.enqueue(t, requested)
	if n := e.jobs(t, sqlstore.JobPending); n != 1 {
		t.Fatalf("%d jobs, want only the one queued before the endpoint was disabled", n)
	}
	e.runDue(t)
	if n := len(e.rcv.requests()); n != 0 || e.jobs(t, sqlstore.JobPending) != 0 {
		t.Fatalf("%d requests to a disabled endpoint", n)
	}
}
