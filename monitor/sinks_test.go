package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/identity"
	"tutela/jobs"
	"tutela/mail"
	"tutela/monitor"
	"tutela/notify"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/syslog"
	"tutela/syslog/syslogtest"
	"tutela/vault"
)

const secret = "whsec_monitoring-test-secret"

// burst records ten lockouts in tenant a and runs a monitoring round routed to routes.
func burst(t *testing.T, e *env, routes ...monitor.Route) monitor.Alert {
	t.Helper()
	for range 10 {
		e.clock.Add(time.Second)
		e.lockout(t, e.a, e.ua)
	}
	got := e.step(t, monitor.New(e.db, monitor.Defaults(), routes, monitor.Options{}))
	if len(got) != 1 {
		t.Fatalf("%d alerts", len(got))
	}
	return got[0]
}

func webhookSink(r *receiver) monitor.Sinks {
	return monitor.Sinks{Webhook: &monitor.Webhook{URL: r.srv.URL, Secret: tutela.NewSecret(secret), Client: r.srv.Client()}}
}

// The SIEM's endpoint gets the alert signed; the same delivery replayed is refused, and so are
// a delivery with one byte changed and one signed with another secret.
func TestWebhookSink_SignedAlertReplayAndForgeryRefused(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		rcv := newReceiver(t, secret, e.clock)
		alert := burst(t, e, monitor.Route{Sink: monitor.SinkWebhook})
		runDue(t, newQueue(e, webhookSink(rcv)))
		got := rcv.deliveries()
		if len(got) != 1 || got[0].err != nil {
			t.Fatalf("deliveries %+v", got)
		}
		var body monitor.Alert
		if err := json.Unmarshal(got[0].body, &body); err != nil {
			t.Fatal(err)
		}
		if body.ID != alert.ID || body.Type != monitor.AlertType || body.Rule != "lockout_burst" || body.Count != 10 ||
			body.TenantID != e.a || got[0].header.Get(notify.HeaderID) != alert.ID {
			t.Fatalf("body %+v", body)
		}
		if n := e.jobs(t, monitor.JobWebhook, sqlstore.JobPending); n != 0 {
			t.Fatalf("%d webhook jobs still pending", n)
		}

		// Replayed as captured, a minute later (inside the timestamp tolerance).
		e.clock.Add(time.Minute)
		if code := rcv.resend(t, got[0], func(b []byte) []byte { return b }); code != http.StatusConflict {
			t.Fatalf("replay answered %d, want 409", code)
		}
		// Replayed with a new header ID: the signed body's ID still gives it away.
		replay := got[0]
		replay.header = replay.header.Clone()
		replay.header.Set(notify.HeaderID, tutela.NewID())
		if code := rcv.resend(t, replay, func(b []byte) []byte { return b }); code != http.StatusUnauthorized && code != http.StatusConflict {
			t.Fatalf("replay under a new header ID answered %d", code)
		}
		// Forged: one byte of the body changed, and a fresh ID so it is not a replay.
		forged := func(b []byte) []byte {
			return []byte(strings.Replace(string(b), alert.ID, tutela.NewID(), 1))
		}
		if code := rcv.resend(t, got[0], forged); code != http.StatusUnauthorized {
			t.Fatalf("forged body answered %d, want 401", code)
		}
		// Signed with another secret.
		other := got[0]
		other.header = other.header.Clone()
		ts := other.header.Get(notify.HeaderTimestamp)
		b := forged(other.body)
		other.header.Set(notify.HeaderSignature, notify.Sign("whsec_not-the-secret", ts, b))
		if code := rcv.resend(t, other, func([]byte) []byte { return b }); code != http.StatusUnauthorized {
			t.Fatalf("wrong-secret delivery answered %d, want 401", code)
		}
		// Replayed after the tolerance: refused by its timestamp, even to a receiver that forgot it.
		e.clock.Add(notify.Tolerance + time.Minute)
		if err := notify.NewReceiver(secret).Verify(got[0].header, got[0].body, e.clock.Now()); !errors.Is(err, notify.ErrTimestamp) {
			t.Fatalf("old delivery: %v, want ErrTimestamp", err)
		}
	})
}

// Delivery is a job in the durable queue: the node that queued it stops before running it, a
// new queue on the same store delivers it; a failed attempt is retried after the backoff.
func TestDelivery_SurvivesRestartAndIsRetried(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		rcv := newReceiver(t, secret, e.clock)
		rcv.failOK = 1
		first := newQueue(e, webhookSink(rcv))
		alert := burst(t, e, monitor.Route{Sink: monitor.SinkWebhook})
		stopped, stop := context.WithCancel(ctx)
		stop()
		first.Run(stopped) // the node stops before its worker claims anything
		if len(rcv.deliveries()) != 0 || e.jobs(t, monitor.JobWebhook, sqlstore.JobPending) != 1 {
			t.Fatalf("before restart: %d deliveries, %d pending", len(rcv.deliveries()), e.jobs(t, monitor.JobWebhook, sqlstore.JobPending))
		}

		restarted := newQueue(e, webhookSink(rcv))
		runDue(t, restarted) // the endpoint answers 500
		if got := rcv.deliveries(); len(got) != 1 || e.jobs(t, monitor.JobWebhook, sqlstore.JobPending) != 1 {
			t.Fatalf("after a failed attempt: %d deliveries, %d pending", len(got), e.jobs(t, monitor.JobWebhook, sqlstore.JobPending))
		}
		runDue(t, restarted) // not due yet: nothing sent
		if len(rcv.deliveries()) != 1 {
			t.Fatal("retried before the backoff")
		}
		e.clock.Add(jobs.Backoff(1))
		runDue(t, restarted)
		got := rcv.deliveries()
		if len(got) != 2 || got[1].err != nil || got[1].header.Get(notify.HeaderID) != alert.ID ||
			e.jobs(t, monitor.JobWebhook, sqlstore.JobPending) != 0 {
			t.Fatalf("retry: %+v", got)
		}
		if string(got[0].body) != string(got[1].body) {
			t.Fatal("a retry sent different bytes")
		}
	})
}

func TestSyslogSink_CollectorParsesAlert(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		srv := syslogtest.NewServer(t, syslogtest.WithClientAuth())
		cert := srv.ClientCert("tutela")
		c, err := syslog.New(syslog.Config{Addr: srv.Addr(), RootCAs: srv.RootCAs(), ClientCert: &cert, Hostname: "node-1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		alert := burst(t, e, monitor.Route{Sink: monitor.SinkSyslog, Rules: []string{"lockout_burst"}},
			monitor.Route{Sink: monitor.SinkWebhook, Rules: []string{"passkey_cloned"}}) // routed elsewhere: no job
		if n := e.jobs(t, monitor.JobWebhook, sqlstore.JobPending); n != 0 {
			t.Fatalf("%d webhook jobs for a rule the webhook does not take", n)
		}
		runDue(t, newQueue(e, monitor.Sinks{Syslog: c}))
		got := srv.WaitForMessages(1, 10*time.Second)[0]
		m := got.Msg
		if m.Facility != syslog.FacilityAuthPriv || m.Severity != syslog.SevWarning || m.AppName != "tutela" ||
			m.Hostname != "node-1" || m.MsgID != "alert" || !m.Time.Equal(alert.CreatedAt) || got.PeerCert != "tutela" {
			t.Fatalf("header %+v", m)
		}
		if len(m.Data) != 1 || m.Data[0].ID != monitor.SDID {
			t.Fatalf("structured data %+v", m.Data)
		}
		params := map[string]string{}
		for _, p := range m.Data[0].Params {
			params[p.Name] = p.Value
		}
		if params["id"] != alert.ID || params["rule"] != "lockout_burst" || params["count"] != "10" || params["tenant"] != e.a ||
			params["events"] != strings.Join(alert.EventIDs, ",") || params["first"] != alert.FirstAt.Format(time.RFC3339Nano) {
			t.Fatalf("params %v", params)
		}
		if !strings.Contains(m.Msg, "lockout_burst") || strings.Contains(string(got.Raw), "198.51.100.23") {
			t.Fatalf("MSG %q", m.Msg)
		}
	})
}

// The e-mail sink hands each address a sealed job of the mail kind every Tutela e-mail uses.
func TestEmailSink_EachAddressGetsTheAlert(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d)
			v := sqltest.AttachVaultAt(t, e.db, e.clock.Now)
			sealer, err := vault.NewVaultSealer(v, "", vault.PurposeJobs, tutela.Secret{})
			if err != nil {
				t.Fatal(err)
			}
			rec := &mail.Recorder{}
			q := jobs.New(e.db, sealer, jobs.Options{})
			// As identity registers it (identity.registerJobs).
			q.Register(jobs.Kind{Name: identity.JobMail, Sealed: true, Urgent: true, Handle: func(ctx context.Context, _ string, p []byte) error {
				var m mail.Message
				if err := json.Unmarshal(p, &m); err != nil {
					return err
				}
				return rec.Send(ctx, m)
			}})
			to := []string{"secops@example.org", "ciso@example.org"}
			monitor.Register(q, e.db, monitor.Sinks{Email: &monitor.Email{To: to}}, nil)
			alert := burst(t, e, monitor.Route{Sink: monitor.SinkEmail})
			runDue(t, q)
			msgs := rec.Messages()
			var got []string
			for _, m := range msgs {
				got = append(got, m.To)
				if m.Subject != "[Tutela warning] lockout_burst" || !strings.Contains(m.Text, alert.ID) ||
					!strings.Contains(m.Text, e.a) || strings.Contains(m.Text, "198.51.100.23") {
					t.Fatalf("message %+v", m)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, []string{"ciso@example.org", "secops@example.org"}) {
				t.Fatalf("sent to %v", got)
			}
			// The addresses were sealed in the queue, never stored in clear.
			var clear int
			if err := e.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE payload LIKE '%secops%'`).Scan(&clear); err != nil ||
				clear != 0 {
				t.Fatalf("%d job payloads hold an address in clear (%v)", clear, err)
			}
		})
	}
}

// A queued alert whose sink is no longer configured is dropped, not retried for a day.
func TestDelivery_SinkRemovedSinceQueued(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		burst(t, e, monitor.Route{Sink: monitor.SinkSyslog})
		runDue(t, newQueue(e, monitor.Sinks{}))
		if n := e.jobs(t, monitor.JobSyslog, sqlstore.JobPending) + e.jobs(t, monitor.JobSyslog, sqlstore.JobDead); n != 0 {
			t.Fatalf("%d syslog jobs left", n)
		}
	})
}

func TestSyslogMessage_EveryOccurrenceFields(t *testing.T) {
	t.Parallel()
	a := &monitor.Alert{ID: "a1", Rule: "passkey_cloned", Severity: monitor.SevCritical, TenantID: "t1", Action: "mfa.webauthn_cloned",
		Count: 1, FirstAt: t0, LastAt: t0, EventIDs: []string{"e1"}, ActorType: "user", ActorID: "u1", TargetType: "user",
		TargetID: "u2", Outcome: "failure", CreatedAt: t0}
	m := monitor.SyslogMessage(a)
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := syslog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Severity != syslog.SevCritical || fmt.Sprint(back.Data[0].Params) != fmt.Sprint(m.Data[0].Params) {
		t.Fatalf("%+v", back)
	}
	for _, want := range []string{`actor="u1"`, `target="u2"`, `outcome="failure"`, `tenant="t1"`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("%s missing from %s", want, b)
		}
	}
}
