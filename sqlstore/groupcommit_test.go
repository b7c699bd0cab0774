package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite" // the "sqlite" driver, for a connection of the test's own

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// freshConn opens a connection pool of the test's own on the store's database, apart from the
// store's pools: what it reads has been committed, not merely written in a transaction the
// store still holds.
func freshConn(t *testing.T, d sqlstore.Dialect, dsn string) *sql.DB {
	t.Helper()
	driver := "sqlite"
	if d == sqlstore.Postgres {
		driver = "pgx"
	}
	c, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventsWithRequestID counts the committed audit events of a request.
func eventsWithRequestID(t *testing.T, c *sql.DB, requestID string) int {
	t.Helper()
	var n int
	if err := c.QueryRowContext(context.Background(), `SELECT count(*) FROM audit_events WHERE request_id = $1`, requestID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func requestEvent(requestID string) audit.Event {
	return audit.Event{ActorType: audit.ActorAnonymous, Action: "api.request", Outcome: audit.OutcomeSuccess,
		RequestID: requestID, TargetType: "route", TargetID: "GET /v1/x"}
}

// holdWriter occupies every group-commit writer of the store until release is called, so
// records handed over meanwhile queue up and go together in the next transaction. held reports
// the holders' results once released.
func holdWriter(t *testing.T, db *sqlstore.DB) (release func(), held <-chan error) {
	t.Helper()
	gate := make(chan struct{})
	n := db.CommitWritersForTest()
	res := make(chan error, n)
	for range n {
		// One at a time: each holder is taken (by an idle writer) before the next is queued,
		// so no two share a batch.
		running := make(chan struct{})
		go func() {
			res <- db.GroupCommit(context.Background(), func(context.Context, *sqlstore.Tx) error {
				close(running)
				<-gate
				return nil
			})
		}()
		<-running
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	all := make(chan error, 1)
	go func() {
		var err error
		for range n {
			err = errors.Join(err, <-res)
		}
		all <- err
	}()
	return release, all
}

// waitQueued waits until n records wait for the writer (no timing: the callers are goroutines
// that enqueue as soon as they run).
func waitQueued(db *sqlstore.DB, n int64) {
	for db.GroupCommitStats().Queued != n {
		runtime.Gosched()
	}
}

// Concurrent callers' records go in shared transactions, and each caller's record is committed
// — visible to another connection — by the time its call returns.
func TestGroupCommit_ConcurrentCallersShareTransactionsAndAreDurableOnReturn(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			other := freshConn(t, d, dsn)
			ctx := context.Background()

			// Deterministic batching: with the writers held, 40 callers queue; released, one
			// writer takes and commits them all in one transaction.
			release, held := holdWriter(t, db)
			before := db.GroupCommitStats()
			const n = 40
			errs := make(chan error, n)
			for i := range n {
				go func() { errs <- db.AuditCommit(ctx, requestEvent(fmt.Sprintf("held-%d", i))) }()
			}
			waitQueued(db, n)
			release()
			if err := <-held; err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			after := db.GroupCommitStats()
			if got := after.Batches - before.Batches; got != 1 {
				t.Fatalf("%d queued callers took %d transactions, want 1", n, got)
			}
			if got := after.WriteTransactions - before.WriteTransactions; got != 1 {
				t.Fatalf("%d queued callers began %d write transactions, want 1", n, got)
			}
			if got := after.BatchSizes[6] - before.BatchSizes[6]; got != 1 { // 33-64 callers
				t.Fatalf("batch-size histogram: %v, want one batch of 33-64", after.BatchSizes)
			}
			for i := range n {
				if got := eventsWithRequestID(t, other, fmt.Sprintf("held-%d", i)); got != 1 {
					t.Fatalf("held-%d: %d committed events, want 1", i, got)
				}
			}

			// Free-running: each caller finds its own record committed the moment it returns.
			var wg sync.WaitGroup
			fail := make(chan string, 64)
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("free-%d", i)
					if err := db.AuditCommit(ctx, requestEvent(id)); err != nil {
						fail <- id + ": " + err.Error()
						return
					}
					if got := eventsWithRequestID(t, other, id); got != 1 {
						fail <- fmt.Sprintf("%s: %d committed events right after the call returned, want 1", id, got)
					}
				}()
			}
			wg.Wait()
			close(fail)
			for f := range fail {
				t.Error(f)
			}
		})
	}
}

// A record that cannot be written fails its own caller only: the batch is retried record by
// record, and the others are committed.
func TestGroupCommit_FailingRecordDoesNotLoseOthers(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			other := freshConn(t, d, dsn)
			ctx := context.Background()
			dup := requestEvent("first")
			dup.ID = tutela.NewID()
			if err := db.AuditCommit(ctx, dup); err != nil {
				t.Fatal(err)
			}

			release, _ := holdWriter(t, db)
			before := db.GroupCommitStats()
			type result struct {
				id  string
				err error
			}
			res := make(chan result, 4)
			for i := range 3 {
				go func() {
					id := fmt.Sprintf("good-%d", i)
					res <- result{id, db.AuditCommit(ctx, requestEvent(id))}
				}()
			}
			waitQueued(db, 3)
			again := requestEvent("again")
			again.ID = dup.ID // the same event ID twice: the insert fails (and aborts a PostgreSQL transaction)
			go func() { res <- result{"again", db.AuditCommit(ctx, again)} }()
			waitQueued(db, 4)
			release()
			for range 4 {
				r := <-res
				switch {
				case r.id == "again":
					if tutela.ErrorCode(r.err) != tutela.ECONFLICT {
						t.Fatalf("the duplicate event: %v, want a conflict", r.err)
					}
				case r.err != nil:
					t.Fatalf("%s lost with the bad record: %v", r.id, r.err)
				}
				want := 1
				if r.id == "again" {
					want = 0
				}
				if got := eventsWithRequestID(t, other, r.id); got != want {
					t.Fatalf("%s: %d committed events, want %d", r.id, got, want)
				}
			}
			if got := db.GroupCommitStats().Solo - before.Solo; got != 4 {
				t.Fatalf("%d records retried alone, want the failed batch's 4", got)
			}
		})
	}
}

// A caller whose context ends while its record still waits gets the context's error and writes
// nothing; a record already taken by the writer is committed and its caller waits for that.
func TestGroupCommit_CancelledWhileQueuedWritesNothing(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			other := freshConn(t, d, dsn)
			release, _ := holdWriter(t, db)
			ctx, cancel := context.WithCancel(context.Background())
			got := make(chan error, 1)
			go func() { got <- db.AuditCommit(ctx, requestEvent("cancelled")) }()
			waitQueued(db, 1)
			cancel()
			if err := <-got; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled while queued: %v, want context.Canceled", err)
			}
			if q := db.GroupCommitStats().Queued; q != 0 {
				t.Fatalf("%d records still queued after the only caller withdrew", q)
			}
			release()
			// The writer's next transaction would have carried it; make one and look.
			if err := db.AuditCommit(context.Background(), requestEvent("after")); err != nil {
				t.Fatal(err)
			}
			if n := eventsWithRequestID(t, other, "cancelled"); n != 0 {
				t.Fatalf("a caller that withdrew before its record was taken has %d events written", n)
			}
			if n := eventsWithRequestID(t, other, "after"); n != 1 {
				t.Fatalf("after: %d events", n)
			}
			// A context already over writes nothing either.
			if err := db.AuditCommit(ctx, requestEvent("late")); !errors.Is(err, context.Canceled) {
				t.Fatalf("an ended context: %v", err)
			}
		})
	}
}

// Closing the store commits every record already handed over before closing the pools, and
// refuses any handed over after.
func TestGroupCommit_CloseDrains(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			other := freshConn(t, d, dsn)
			release, _ := holdWriter(t, db)
			const n = 20
			errs := make(chan error, n)
			for i := range n {
				go func() { errs <- db.AuditCommit(context.Background(), requestEvent(fmt.Sprintf("drain-%d", i))) }()
			}
			waitQueued(db, n)
			closed := make(chan error, 1)
			go func() { closed <- db.Close() }()
			release()
			for range n {
				if err := <-errs; err != nil {
					t.Fatalf("a record queued before Close: %v", err)
				}
			}
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if got := eventsWithRequestID(t, other, fmt.Sprintf("drain-%d", i)); got != 1 {
					t.Fatalf("drain-%d: %d committed events after Close, want 1", i, got)
				}
			}
			if err := db.AuditCommit(context.Background(), requestEvent("too-late")); tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
				t.Fatalf("a record after Close: %v, want unavailable", err)
			}
		})
	}
}

// One batch may carry events of several tenants, each sealed under its own user's person key
// although the batch's transaction runs at platform scope. On PostgreSQL the store connects as
// a non-owner role with row-level security in force, as production should.
func TestGroupCommit_TenantsSealedInOneBatch(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			owner, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{})
			db := owner
			if d == sqlstore.Postgres {
				db = runtimeStore(t, owner, dsn)
			}
			type member struct{ tenant, user string }
			var ms []member
			for _, slug := range []string{"gca", "gcb"} {
				tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
				u := &tutela.User{Email: slug + "@example.org"}
				if err := owner.Update(ctx, func(tx *sqlstore.Tx) error {
					if err := tx.CreateTenant(ctx, tn); err != nil {
						return err
					}
					return tx.Users(tn.ID).Create(ctx, u)
				}); err != nil {
					t.Fatal(err)
				}
				ms = append(ms, member{tn.ID, u.ID})
			}
			release, _ := holdWriter(t, db)
			errs := make(chan error, len(ms))
			for i, m := range ms {
				// Each caller is its tenant's user: a transaction of its own would be scoped to
				// that tenant alone.
				uctx := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: fmt.Sprintf("tenant-%d", i),
					IP: "198.51.100.9", UserAgent: "GroupAgent/1", Principal: &tutela.Principal{Kind: tutela.PrincipalUser,
						TenantID: m.tenant, UserID: m.user}})
				go func() {
					errs <- db.AuditCommit(uctx, sqlstore.EventFromContext(uctx, "api.request", m.tenant, "route", "GET /v1/x", "", nil))
				}()
			}
			waitQueued(db, int64(len(ms)))
			before := db.GroupCommitStats()
			release()
			for range ms {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if got := db.GroupCommitStats().Solo - before.Solo; got != 0 {
				t.Fatalf("%d records retried alone: the shared batch failed", got)
			}
			other := freshConn(t, d, dsn)
			for i, m := range ms {
				var c []byte
				if err := other.QueryRowContext(ctx, `SELECT canonical FROM audit_events WHERE request_id = $1`,
					fmt.Sprintf("tenant-%d", i)).Scan(&c); err != nil {
					t.Fatal(err)
				}
				ev, err := sqlstore.DecodeAuditEvent(c)
				if err != nil {
					t.Fatal(err)
				}
				want := "sealed:v1:u:" + m.tenant + ":" + m.user + ":"
				if ev.TenantID != m.tenant || !strings.HasPrefix(ev.SourceIP, want) || !strings.HasPrefix(ev.UserAgent, want) {
					t.Fatalf("tenant %d: event of tenant %q with %q / %q, want its own tenant sealed under its user's key (%s…)",
						i, ev.TenantID, ev.SourceIP, ev.UserAgent, want)
				}
			}
			// Each opens with its own user's key (on PostgreSQL the batch read both keys in one
			// statement: prefetchAuditKeys).
			for i, m := range ms {
				recs, _, err := owner.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: m.tenant, Action: "api.request"})
				if err != nil || len(recs) != 1 || recs[0].Event.SourceIP != "198.51.100.9" || recs[0].Event.UserAgent != "GroupAgent/1" {
					t.Fatalf("reading tenant %d's event back: %+v, %v", i, recs, err)
				}
			}
		})
	}
}

// runtimeStore opens the PostgreSQL database at dsn as a new login role that is neither
// superuser nor owner (row-level security applies to it), granted what the runtime needs.
func runtimeStore(t *testing.T, owner *sqlstore.DB, dsn string) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	role := "tutela_rt_" + tutela.RandomToken(6)
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + role,
		`REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_log, audit_hashes, audit_checkpoints, audit_prunes FROM ` + role,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ` + role,
	} {
		if _, err := owner.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	rt, err := sqlstore.Open(ctx, u.String(), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, rt)
	t.Cleanup(func() {
		rt.Close()
		_, _ = owner.SQL().ExecContext(ctx, `DROP OWNED BY `+role)
		if _, err := owner.SQL().ExecContext(ctx, `DROP ROLE `+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	if bypass, err := rt.BypassesRLS(ctx); err != nil || bypass {
		t.Fatalf("runtime role bypasses row-level security: %v, %v", bypass, err)
	}
	return rt
}
