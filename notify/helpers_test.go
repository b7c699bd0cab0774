package notify_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/jobs"
	"tutela/mail"
	"tutela/notify"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/webhooks"
)

var ctx = context.Background()

// loopback lets deliveries reach httptest servers (the test-only allowance).
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

type env struct {
	db     *sqlstore.DB
	clock  *clocktest.Clock
	q      *jobs.Queue
	logs   *syncBuffer
	mailer *mail.Recorder
	tenant string
	rcv    *receiver
}

// newEnv opens a store of dialect d with a tenant, a receiving endpoint (an httptest TLS
// server) and a queue with the notify kinds registered; allow is Options.PrivateNetworks.
func newEnv(t testing.TB, d sqlstore.Dialect, allow []netip.Prefix) *env {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, d, sqlstore.Options{Clock: clock.Now})
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	e := &env{db: db, clock: clock, q: jobs.New(db, nil, jobs.Options{Log: log}), logs: logs, mailer: &mail.Recorder{}}
	e.rcv = newReceiver(t)
	if err := notify.Register(e.q, db, e.mailer, e.rcv.srv.Client(), notify.Options{Log: log, PrivateNetworks: allow}); err != nil {
		t.Fatal(err)
	}
	tn := &tutela.Tenant{Slug: "acme", Name: "Acme", Region: "eu"}
	e.update(t, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) })
	e.tenant = tn.ID
	return e
}

func (e *env) update(t testing.TB, fn func(tx *sqlstore.Tx) error) {
	t.Helper()
	if err := e.db.Update(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

// webhook registers an endpoint at the receiver's path and returns it with its secret.
func (e *env) webhook(t testing.TB, path string, events ...string) (*webhooks.Webhook, string) {
	t.Helper()
	w := &webhooks.Webhook{URL: e.rcv.srv.URL + path, Events: events, CreatedBy: "admin"}
	var secret tutela.Secret
	e.update(t, func(tx *sqlstore.Tx) (err error) {
		secret, err = tx.Webhooks(e.tenant).Create(ctx, w)
		return err
	})
	return w, secret.Reveal()
}

func (e *env) user(t testing.TB, email string) *tutela.User {
	t.Helper()
	u := &tutela.User{Email: email, DisplayName: "User"}
	e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(e.tenant).Create(ctx, u) })
	return u
}

func (e *env) enqueue(t *testing.T, ev notify.Event) {
	t.Helper()
	if ev.TenantID == "" {
		ev.TenantID = e.tenant
	}
	e.update(t, func(tx *sqlstore.Tx) error { return notify.Enqueue(ctx, tx, ev) })
}

func (e *env) runDue(t *testing.T) {
	t.Helper()
	if _, err := e.q.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
}

// jobs counts the queue's jobs by state.
func (e *env) jobs(t *testing.T, state string) int {
	t.Helper()
	var n int
	if err := e.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE state = $1`, state).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) get(t *testing.T, id string) *webhooks.Webhook {
	t.Helper()
	var w *webhooks.Webhook
	if err := e.db.View(ctx, func(tx *sqlstore.Tx) (err error) { w, err = tx.Webhooks(e.tenant).Get(ctx, id); return }); err != nil {
		t.Fatal(err)
	}
	return w
}

// actions counts the tenant's audit events by action.
func (e *env) actions(t *testing.T) map[string]int {
	t.Helper()
	recs, _, err := e.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: e.tenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range recs {
		out[r.Event.Action]++
	}
	return out
}

// noSecret fails if secret is in the logs, the audit log or a queued job's payload.
func (e *env) noSecret(t *testing.T, secret string) {
	t.Helper()
	if strings.Contains(e.logs.String(), secret) {
		t.Fatal("the logs hold the webhook secret")
	}
	recs, _, err := e.db.AuditEvents(ctx, sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if bytes.Contains(r.Canonical, []byte(secret)) {
			t.Fatalf("audit event %s holds the webhook secret", r.Event.Action)
		}
	}
	rows, err := e.db.SQL().QueryContext(ctx, `SELECT payload FROM jobs WHERE payload IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(p, []byte(secret)) {
			t.Fatal("a job payload holds the webhook secret")
		}
	}
}

// receiver is a webhook endpoint that records what it is sent and answers with the statuses
// it is told to, in turn (200 once they run out).
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []received
	ans []int
}

type received struct {
	path   string
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{path: req.URL.Path, header: req.Header.Clone(), body: b})
		code := http.StatusOK
		if len(r.ans) > 0 {
			code, r.ans = r.ans[0], r.ans[1:]
		}
		r.mu.Unlock()
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) answer(codes ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ans = append(r.ans, codes...)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
