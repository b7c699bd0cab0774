package sqlstore_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// paddedEvent is an anonymous api.request event with a source IP and a 512-byte user agent
// (both sealed by the writer) whose unsealed canonical encoding is size bytes.
func paddedEvent(t *testing.T, requestID string, size int) audit.Event {
	t.Helper()
	ctx := tutela.WithRequestMeta(context.Background(), &tutela.RequestMeta{RequestID: requestID,
		IP: "198.51.100.7", UserAgent: strings.Repeat("u", 512)})
	e := sqlstore.EventFromContext(ctx, "api.request", "", "route", "GET /v1/x", "", map[string]any{"pad": ""})
	probe := e
	probe.ID, probe.Time = tutela.NewID(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := probe.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	e.Details = map[string]any{"pad": strings.Repeat("a", size-len(c))}
	return e
}

// An event the writer could not store — over audit.MaxCanonicalSize once sealed — is refused
// before it is queued, with EINVALID, and the records queued beside it share their batch
// without any being retried alone. One that fits once sealed is stored.
func TestGroupCommit_OversizedEventRefusedBeforeQueue(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			other := freshConn(t, d, dsn)
			ctx := context.Background()

			release, _ := holdWriter(t, db)
			before := db.GroupCommitStats()
			errs := make(chan error, 3)
			for _, id := range []string{"good-0", "good-1", "near-limit"} {
				e := requestEvent(id)
				if id == "near-limit" {
					e = paddedEvent(t, id, audit.MaxCanonicalSize-4096)
				}
				go func() { errs <- db.AuditCommit(ctx, e) }()
			}
			waitQueued(db, 3)

			bad := map[string]audit.Event{
				// Over the limit as given.
				"oversized": paddedEvent(t, "oversized", audit.MaxCanonicalSize+1),
				// Under the limit as given, over it once the IP and user agent are sealed.
				"over-when-sealed": paddedEvent(t, "over-when-sealed", audit.MaxCanonicalSize-200),
				// Not an event at all.
				"no-action": {ActorType: audit.ActorAnonymous, Outcome: audit.OutcomeSuccess, RequestID: "no-action"},
			}
			for name, e := range bad {
				err := refusedUnqueued(t, db, 3, requestEvent(name+"-ok"), e)
				if tutela.ErrorCode(err) != tutela.EINVALID {
					t.Fatalf("%s: %v, want EINVALID before queueing", name, err)
				}
			}
			release()
			for range 3 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if got := db.GroupCommitStats().Solo - before.Solo; got != 0 {
				t.Fatalf("%d records retried alone: a batch failed", got)
			}
			for _, id := range []string{"good-0", "good-1", "near-limit"} {
				if n := eventsWithRequestID(t, other, id); n != 1 {
					t.Fatalf("%s: %d committed events, want 1", id, n)
				}
			}
			for name := range bad {
				if n := eventsWithRequestID(t, other, name) + eventsWithRequestID(t, other, name+"-ok"); n != 0 {
					t.Fatalf("%s: %d events committed, want none of the refused call's", name, n)
				}
			}
			var c []byte
			if err := other.QueryRowContext(ctx, `SELECT canonical FROM audit_events WHERE request_id = 'near-limit'`).Scan(&c); err != nil {
				t.Fatal(err)
			}
			ev, err := sqlstore.DecodeAuditEvent(c)
			if err != nil || !strings.HasPrefix(ev.UserAgent, "sealed:v1:") || len(c) > audit.MaxCanonicalSize {
				t.Fatalf("near-limit event stored as %d bytes, user agent %.20q, %v", len(c), ev.UserAgent, err)
			}
		})
	}
}

// A caller without a deadline does not leave its batch unbounded: the transaction's context
// has a deadline at most MaxBatchDuration away, whoever else shares it.
func TestGroupCommit_BatchBoundedWithoutCallerDeadline(t *testing.T) {
	t.Parallel()
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{})
	release, _ := holdWriter(t, db)
	type seen struct {
		ok bool
		dl time.Time
	}
	got := make(chan seen, 2)
	write := func(ctx context.Context, _ *sqlstore.Tx) error {
		dl, ok := ctx.Deadline()
		got <- seen{ok, dl}
		return nil
	}
	far, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- db.GroupCommit(context.Background(), write) }()
	waitQueued(db, 1)
	go func() { errs <- db.GroupCommit(far, write) }()
	waitQueued(db, 2)
	release()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	limit := time.Now().Add(sqlstore.MaxBatchDurationForTest)
	for range 2 {
		s := <-got
		if !s.ok || s.dl.After(limit) {
			t.Fatalf("batch context deadline %v (set %v), want one at most %v from the batch's start", s.dl, s.ok,
				sqlstore.MaxBatchDurationForTest)
		}
	}
}

// refusedUnqueued calls AuditCommit with events while the writers are held and queued records
// wait, and returns its answer; it fails the test if the events join the queue instead.
func refusedUnqueued(t *testing.T, db *sqlstore.DB, queued int64, events ...audit.Event) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- db.AuditCommit(ctx, events...) }()
	for {
		select {
		case err := <-done:
			return err
		default:
		}
		if q := db.GroupCommitStats().Queued; q > queued {
			cancel()
			<-done
			t.Fatalf("the events were queued (%d records waiting, want %d)", q, queued)
		}
		runtime.Gosched()
	}
}
