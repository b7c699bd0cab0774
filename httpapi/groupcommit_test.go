package httpapi_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, for a connection of the test's own

	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Every /v1 call's api.request event is committed before its response is complete: many
// concurrent clients over real HTTP each find their call's event, by its request ID, through a
// connection of the test's own as soon as they have read the response — although the records
// are group-committed, many to a transaction.
func TestAuditRequests_CommittedBeforeTheResponseCompletes(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			c := clocktest.New(time.Now().UTC())
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{Clock: c.Now})
			e := newEnvOn(t, db, c, nil)
			e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			g := e.login(t, "acme", "admin@example.org", pw, "")
			srv := httptest.NewServer(e.srv.Server)
			t.Cleanup(srv.Close)
			driver := "sqlite"
			if d == sqlstore.Postgres {
				driver = "pgx"
			}
			other, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })

			before := db.GroupCommitStats()
			const clients, calls = 16, 8
			fail := make(chan string, clients*calls)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range calls {
						// Alternate an authenticated call and an anonymous one.
						path, auth := "/v1/auth/me", "Bearer "+g.AccessToken
						if (i+j)%2 == 1 {
							path, auth = "/v1/audit/checkpoint", ""
						}
						req, _ := http.NewRequest("GET", srv.URL+path, nil)
						if auth != "" {
							req.Header.Set("Authorization", auth)
						}
						res, err := srv.Client().Do(req)
						if err != nil {
							fail <- err.Error()
							return
						}
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						rid := res.Header.Get("X-Request-ID")
						var n int
						if err := other.QueryRowContext(context.Background(), `SELECT count(*) FROM audit_events
							WHERE request_id = $1 AND action = 'api.request'`, rid).Scan(&n); err != nil {
							fail <- err.Error()
							return
						}
						if n != 1 {
							fail <- fmt.Sprintf("%s %s (%d): %d committed api.request events once the response was read, want 1",
								path, rid, res.StatusCode, n)
						}
					}
				}()
			}
			wg.Wait()
			close(fail)
			for f := range fail {
				t.Error(f)
			}
			after := db.GroupCommitStats()
			if got := after.Callers - before.Callers; got < clients*calls {
				t.Fatalf("%d records went through the group commit, want at least the %d calls'", got, clients*calls)
			}
		})
	}
}

// Read-only calls — JWKS, introspection, the audit log's public key, checkpoint and proofs —
// begin no write transaction of their own: the only one a /v1 call causes is the group commit
// that carries its api.request record.
func TestReadOnlyCalls_BeginNoWriteTransaction(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e, seq, _ := withAudit(t, d)
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			a := e.login(t, "acme", "admin@example.org", pw, "")
			sa := e.createSAUnchecked(t, tn.ID)
			if _, err := seq.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, _ = seq.Step(context.Background())
			var size, mine int64
			if err := e.db.SQL().QueryRow(`SELECT count(*) FROM audit_log`).Scan(&size); err != nil || size < 2 {
				t.Fatalf("audit log of %d entries: %v", size, err)
			}
			if err := e.db.SQL().QueryRow(`SELECT l.idx FROM audit_log l JOIN audit_events v ON v.id = l.event_id
				WHERE v.tenant_id = $1 ORDER BY l.idx LIMIT 1`, tn.ID).Scan(&mine); err != nil {
				t.Fatal(err)
			}
			n := strconv.FormatInt(size, 10)
			for _, c := range []struct {
				name       string
				call       func() int
				wantStatus int
				audited    bool
			}{
				{"jwks", func() int { r, _ := e.req(t, "GET", "/.well-known/jwks.json", "", "", nil); return r.StatusCode }, 200, false},
				{"introspect", func() int {
					code, _ := e.introspectFrom(t, a.AccessToken, sa.SA.ClientID, sa.Secret, "192.0.2.7")
					return code
				}, 200, true},
				{"public key", func() int { r, _ := e.req(t, "GET", "/v1/audit/public-key", "", "", nil); return r.StatusCode }, 200, true},
				{"checkpoint", func() int { r, _ := e.req(t, "GET", "/v1/audit/checkpoint", "", "", nil); return r.StatusCode }, 200, true},
				{"consistency", func() int {
					r, _ := e.req(t, "GET", "/v1/audit/proof/consistency?from=1&to="+n, "", "", nil)
					return r.StatusCode
				}, 200, true},
				{"inclusion", func() int {
					r, _ := e.req(t, "GET", "/v1/audit/proof/inclusion?index="+strconv.FormatInt(mine, 10)+"&size="+n, "", "", a.AccessToken)
					return r.StatusCode
				}, 200, true},
			} {
				// Once first: its record may be the first sealed under a keyset the vault then
				// creates (a write of its own, not the call's).
				if got := c.call(); got != c.wantStatus {
					t.Fatalf("%s: %d, want %d", c.name, got, c.wantStatus)
				}
				before := e.db.GroupCommitStats()
				if got := c.call(); got != c.wantStatus {
					t.Fatalf("%s: %d, want %d", c.name, got, c.wantStatus)
				}
				after := e.db.GroupCommitStats()
				writes, batches := after.WriteTransactions-before.WriteTransactions, after.Batches-before.Batches
				if writes != batches {
					t.Errorf("%s: %d write transactions besides the %d group commits", c.name, writes-batches, batches)
				}
				if got := after.Callers - before.Callers; (got == 1) != c.audited {
					t.Errorf("%s: %d records group-committed, audited %v", c.name, got, c.audited)
				}
			}
		})
	}
}

// /metrics shows the group commit: records, batches and their sizes, write transactions.
func TestMetrics_GroupCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.do(t, "GET", "/v1/audit/checkpoint", "") // one audited call, alone in its batch
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	s := e.db.GroupCommitStats()
	if s.Callers != 1 || s.Batches != 1 {
		t.Fatalf("stats after one call: %+v", s)
	}
	for _, want := range []string{
		"tutela_audit_commit_records_total 1\n",
		"tutela_audit_commit_batches_total 1\n",
		"tutela_audit_commit_solo_retries_total 0\n",
		"tutela_audit_commit_queued 0\n",
		`tutela_audit_commit_batch_size_bucket{le="1"} 1` + "\n",
		"tutela_audit_commit_batch_size_count 1\n",
		fmt.Sprintf("tutela_db_write_transactions_total %d\n", s.WriteTransactions),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
