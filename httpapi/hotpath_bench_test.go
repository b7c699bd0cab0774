package httpapi_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela/authz"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// The hot paths against their physical limit (issue 20): introspecting a JWT cannot be cheaper
// than one Ed25519 verification, so each benchmark reports its throughput as a share of raw
// parallel Ed25519 verification measured in the same run (a separate benchmark run before or
// after drifts with the load of a shared machine). Run them with
//
//	go test -run '^$' -bench 'HTTPParallel|Ed25519VerifyParallel' ./httpapi/
//
// Requests go through the server's whole middleware chain (request ID, tracing hook, client IP,
// metrics, access log, recover, security headers, rate limiter, request metadata, the audit
// record of every call, the database bound, body limits) and authentication, in process
// (httptest: no sockets, no HTTP parsing). The rate limit is set high (1e9/s) so it never
// refuses the benchmark; it still runs. On PostgreSQL the server connects as a runtime role
// that does not own the tables (sqltest.OpenRuntime), so row-level security is in force as in
// production.

// hotPathParallelism is RunParallel's goroutines per GOMAXPROCS for the HTTP benchmarks: a
// server answers many clients at once, and a request waiting on the database leaves its core
// to another. Ed25519 verification is CPU-bound and needs no more than one per core.
const hotPathParallelism = 8

// hotPath is a server with a signed-in user and a resource server's service account.
type hotPath struct {
	srv    *httpapi.Server
	db     *sqlstore.DB
	access string // the user's access token (audience: the resource server)
	// basic is the service account's client_secret_basic Authorization header.
	basic string
}

func newHotPath(b testing.TB, d sqlstore.Dialect) *hotPath {
	b.Helper()
	if d == sqlstore.Postgres {
		sqltest.RequirePostgres(b)
	}
	c := clocktest.New(time.Now().UTC())
	db := sqltest.OpenRuntime(b, d, sqlstore.Options{Clock: c.Now})
	ids := newIdentity(b, db, c.Now, identity.Config{Resources: []string{testResource}}, nil)
	srv := httpapi.New(httpapi.Deps{DB: db, Identity: ids, Clock: c.Now, RateRPS: 1e9, RateBurst: 1e9})
	e := &env{srv: checkedServer{Server: srv}, db: db, clock: c, ids: ids} // no t: measure the server alone
	tn, _ := e.seed(b, "acme", "admin@example.org", pw, "program_admin")
	g := e.login(b, "acme", "admin@example.org", pw, "")
	sa := e.createSAWith(b, tn.ID, authz.Permission{Resource: "records", Action: authz.Read})
	return &hotPath{srv: srv, db: db, access: g.AccessToken,
		basic: "Basic " + base64.StdEncoding.EncodeToString([]byte(sa.SA.ClientID+":"+sa.Secret))}
}

func (h *hotPath) introspect() *http.Request {
	r := httptest.NewRequest("POST", "/v1/auth/introspect", strings.NewReader(url.Values{"token": {h.access}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", h.basic)
	return r
}

func (h *hotPath) check() *http.Request {
	r := httptest.NewRequest("POST", "/v1/authz/check",
		strings.NewReader(`{"action":"UPDATE","resource":"records","classification":"YELLOW"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+h.access)
	return r
}

// BenchmarkIntrospectHTTPParallel: a resource server (service account, client_secret_basic)
// introspects a user's access token (RFC 7662), on each store; reports introspections/s and
// their ratio to parallel Ed25519 verification of a message the size of that token.
func BenchmarkIntrospectHTTPParallel(b *testing.B) {
	benchHotPath(b, "introspections/s", (*hotPath).introspect, `"active":true`)
}

// BenchmarkCheckHTTPParallel: the signed-in user asks POST /v1/authz/check with their bearer
// token, on each store; reports checks/s and their ratio to parallel Ed25519 verification.
func BenchmarkCheckHTTPParallel(b *testing.B) {
	benchHotPath(b, "checks/s", (*hotPath).check, `"allow":true`)
}

// TestHotPath_ServesAsRuntimeRole runs each benchmark's request once on each store, the server
// connected as the runtime role on PostgreSQL: the benchmarks' set-up and the documented
// grants stay working (a missing grant fails here, not only when someone benchmarks).
func TestHotPath_ServesAsRuntimeRole(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			h := newHotPath(t, d)
			for _, c := range []struct {
				req  *http.Request
				want string
			}{{h.introspect(), `"active":true`}, {h.check(), `"allow":true`}} {
				rec := httptest.NewRecorder()
				h.srv.ServeHTTP(rec, c.req)
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), c.want) {
					t.Errorf("%s: %d %s, want 200 with %s", c.req.URL.Path, rec.Code, rec.Body, c.want)
				}
			}
			// The service account's secret is checked: a wrong one is refused, not measured.
			r := h.introspect()
			r.SetBasicAuth("nobody", "wrong")
			rec := httptest.NewRecorder()
			h.srv.ServeHTTP(rec, r)
			if rec.Code != 401 {
				t.Errorf("introspection with a wrong client secret: %d %s, want 401", rec.Code, rec.Body)
			}
		})
	}
}

func benchHotPath(b *testing.B, unit string, request func(*hotPath) *http.Request, want string) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			h := newHotPath(b, d)
			// Fail here, not in the loop: a refused request would be measured as a fast one.
			rec := httptest.NewRecorder()
			h.srv.ServeHTTP(rec, request(h))
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
				b.Fatalf("%d %s, want 200 with %s", rec.Code, rec.Body, want)
			}
			var failed atomic.Pointer[string]
			b.SetParallelism(hotPathParallelism)
			b.ReportAllocs()
			before := h.db.GroupCommitStats()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rec := httptest.NewRecorder()
					h.srv.ServeHTTP(rec, request(h))
					if rec.Code != 200 || !bytes.Contains(rec.Body.Bytes(), []byte(want)) {
						msg := rec.Body.String()
						failed.CompareAndSwap(nil, &msg)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if m := failed.Load(); m != nil {
				b.Fatalf("a request failed: %s", *m)
			}
			opsPerSec := float64(b.N) / elapsed.Seconds()
			verifies := ed25519PerSec(len(h.access), max(4*b.N, 10000))
			b.ReportMetric(opsPerSec, unit)
			b.ReportMetric(verifies, "ed25519/s")
			b.ReportMetric(opsPerSec/verifies, "share-of-ed25519")
			// How many requests' audit records shared a commit (group commit, issue 20).
			if after := h.db.GroupCommitStats(); after.Batches > before.Batches {
				b.ReportMetric(float64(after.Callers-before.Callers)/float64(after.Batches-before.Batches), "records/commit")
			}
		})
	}
}

// BenchmarkEd25519VerifyParallel is the physical limit of the hot paths: Ed25519 signature
// verification over a token-sized message (tokenBytes), on every core.
func BenchmarkEd25519VerifyParallel(b *testing.B) {
	pub, msg, sig := ed25519Fixture(tokenBytes)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !ed25519.Verify(pub, msg, sig) {
				panic("ed25519: a valid signature did not verify")
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

// tokenBytes is about the length of a user's access token (header, claims, signature).
const tokenBytes = 700

func ed25519Fixture(n int) (ed25519.PublicKey, []byte, []byte) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	msg := bytes.Repeat([]byte{'e'}, n)
	return pub, msg, ed25519.Sign(priv, msg)
}

// ed25519PerSec verifies a signature over an n-byte message ops times on GOMAXPROCS
// goroutines (as RunParallel spreads work) and returns verifications per second.
func ed25519PerSec(n, ops int) float64 {
	pub, msg, sig := ed25519Fixture(n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for next.Add(1) <= int64(ops) {
				if !ed25519.Verify(pub, msg, sig) {
					panic("ed25519: a valid signature did not verify")
				}
			}
		})
	}
	wg.Wait()
	return float64(ops) / time.Since(start).Seconds()
}
