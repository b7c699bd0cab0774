package monitor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/clocktest"
	"tutela/jobs"
	"tutela/monitor"
	"tutela/notify"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

var ctx = context.Background()

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

type env struct {
	db     *sqlstore.DB
	clock  *clocktest.Clock
	seq    *sqlstore.Sequencer
	a, b   string // tenants
	ua, ub string // a user in each
}

// each runs fn against a fresh store of each dialect.
func each(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, d))
		})
	}
}

// newEnv opens a store with two tenants and a user in each, sequences what that recorded and
// creates the monitoring cursor at the end of the log, as a node's first round does.
func newEnv(t testing.TB, d sqlstore.Dialect) *env {
	t.Helper()
	clock := clocktest.New(t0)
	db := sqltest.Open(t, d, sqlstore.Options{Clock: clock.Now})
	skey, _, err := audit.GenerateKey("tutela.test/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, clock: clock, seq: sqlstore.NewSequencer(db, signer, "tutela.test/audit", sqlstore.SequencerOptions{})}
	for i, slug := range []string{"acme", "globex"} {
		tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
		e.update(t, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) })
		u := &tutela.User{Email: slug + "@example.org", DisplayName: "User"}
		e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Create(ctx, u) })
		if i == 0 {
			e.a, e.ua = tn.ID, u.ID
		} else {
			e.b, e.ub = tn.ID, u.ID
		}
	}
	e.sequence(t)
	if _, alerts, err := monitor.New(db, monitor.Defaults(), nil, monitor.Options{}).Step(ctx); err != nil || alerts != nil {
		t.Fatalf("first round: %v, %v", alerts, err)
	}
	return e
}

func (e *env) update(t testing.TB, fn func(tx *sqlstore.Tx) error) {
	t.Helper()
	if err := e.db.Update(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

func (e *env) sequence(t testing.TB) {
	t.Helper()
	if _, err := e.seq.Step(ctx); err != nil {
		t.Fatal(err)
	}
}

// lockout records an account lockout the way the login throttle does (a security event, which
// is also audit action security.account_locked), with an IP address that must never reach an
// alert.
func (e *env) lockout(t testing.TB, tenantID, userID string) {
	t.Helper()
	e.update(t, func(tx *sqlstore.Tx) error {
		return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tenantID, UserID: userID, Kind: "account_locked", IP: "198.51.100.23"})
	})
}

// step sequences what was recorded and runs monitoring rounds until the log is drained,
// returning every alert raised.
func (e *env) step(t *testing.T, m *monitor.Monitor) []monitor.Alert {
	t.Helper()
	e.sequence(t)
	var all []monitor.Alert
	for {
		n, alerts, err := m.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, alerts...)
		if n == 0 {
			return all
		}
	}
}

func (e *env) jobs(t *testing.T, kind, state string) int {
	t.Helper()
	var n int
	if err := e.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE kind = $1 AND state = $2`, kind, state).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func newQueue(e *env, s monitor.Sinks) *jobs.Queue {
	q := jobs.New(e.db, nil, jobs.Options{})
	monitor.Register(q, e.db, s, nil)
	return q
}

func runDue(t *testing.T, q *jobs.Queue) {
	t.Helper()
	if _, err := q.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
}

// receiver is a SIEM's webhook endpoint: it checks each delivery with notify.Receiver on the
// test clock, answers 200, 401 (bad signature or timestamp) or 409 (replay), and records all.
type receiver struct {
	srv    *httptest.Server
	rcv    *notify.Receiver
	clock  *clocktest.Clock
	mu     sync.Mutex
	got    []delivery
	failOK int // answer 500 to this many otherwise good deliveries (forgetting them)
}

type delivery struct {
	header http.Header
	body   []byte
	err    error
}

func newReceiver(t *testing.T, secret string, clock *clocktest.Clock) *receiver {
	r := &receiver{rcv: notify.NewReceiver(secret), clock: clock}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		err := r.rcv.Verify(req.Header, b, r.clock.Now())
		r.mu.Lock()
		r.got = append(r.got, delivery{header: req.Header.Clone(), body: b, err: err})
		fail := err == nil && r.failOK > 0
		if fail {
			r.failOK--
		}
		r.mu.Unlock()
		switch {
		case errors.Is(err, notify.ErrReplay):
			w.WriteHeader(http.StatusConflict)
		case err != nil:
			w.WriteHeader(http.StatusUnauthorized)
		case fail:
			r.rcv.Forget(req.Header.Get(notify.HeaderID))
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// resend posts a copy of a received delivery (a replay by someone who captured it), with the
// body changed by edit, and returns the status.
func (r *receiver) resend(t *testing.T, d delivery, edit func([]byte) []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.srv.URL, bytes.NewReader(edit(bytes.Clone(d.body))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = d.header.Clone()
	res, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
