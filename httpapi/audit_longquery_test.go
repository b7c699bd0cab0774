package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// requestRecord is the one committed event of action for a request, decoded; it fails the test
// unless there is exactly one.
func requestRecord(t *testing.T, db *sqlstore.DB, requestID, action string) audit.Event {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT canonical FROM audit_events WHERE request_id = $1 AND action = $2`, requestID, action)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var evs []audit.Event
	for rows.Next() {
		var c []byte
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		ev, err := sqlstore.DecodeAuditEvent(c)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("request %s: %d %s events, want 1", requestID, len(evs), action)
	}
	return evs[0]
}

// A /v1 call whose query string holds ~60 KB of key bytes (under the server's header limit) is
// still recorded, its key names bounded; and such calls among ordinary concurrent ones no
// longer fail their group-commit batches: every call's record commits and none is retried
// alone. (Reported with a repro that found the call answered 200 with no api.request event,
// and each bad event forcing its whole batch into solo retries.)
func TestAudit_LongQueryStillRecorded(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Now().UTC())
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: c.Now})
	e := newEnvOn(t, db, c, nil)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	g := e.login(t, "acme", "admin@example.org", pw, "")
	srv := httptest.NewServer(e.srv.Server)
	t.Cleanup(srv.Close)

	junk := strings.Repeat("%01", 20000) // one query key of 20,000 control bytes: 60 KB in the URL, 120 KB in JSON
	req, _ := http.NewRequest("GET", srv.URL+"/v1/auth/me?"+junk, nil)
	req.Header.Set("Authorization", "Bearer "+g.AccessToken)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/auth/me with a long query: %d", res.StatusCode)
	}
	ev := requestRecord(t, db, res.Header.Get("X-Request-ID"), "api.request")
	keys, _ := ev.Details["query_keys"].([]any)
	if len(keys) != 1 || keys[0] != strings.Repeat("\x01", 64) || fmt.Sprint(ev.Details["query_keys_truncated"]) != "1" {
		t.Fatalf("query_keys %q, truncated %v: want the one key cut to 64 bytes, counted", keys, ev.Details["query_keys_truncated"])
	}

	// 8 such calls among 96 concurrent ones.
	before := db.GroupCommitStats()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	for i := range 96 {
		wg.Go(func() {
			u := srv.URL + "/v1/audit/checkpoint"
			if i%12 == 0 {
				u += "?" + junk
			}
			r, err := srv.Client().Get(u)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
			mu.Lock()
			ids = append(ids, r.Header.Get("X-Request-ID"))
			mu.Unlock()
		})
	}
	wg.Wait()
	after := db.GroupCommitStats()
	t.Logf("96 calls, 8 with a long query: %d batches, %d records retried alone", after.Batches-before.Batches, after.Solo-before.Solo)
	if got := after.Solo - before.Solo; got != 0 {
		t.Errorf("%d records retried alone: a batch failed", got)
	}
	if len(ids) != 96 {
		t.Fatalf("%d calls answered, want 96", len(ids))
	}
	for _, id := range ids {
		requestRecord(t, db, id, "api.request")
	}
}

// The names an api.request event lists are bounded: at most 64, each at most 64 bytes, with
// how many were left out and cut; an absurd method is cut too. The call is recorded.
func TestAudit_RequestKeysBounded(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Now().UTC())
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: c.Now})
	e := newEnvOn(t, db, c, nil)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	g := e.login(t, "acme", "admin@example.org", pw, "")

	q := []string{strings.Repeat("a", 100) + "="} // sorts first: listed, cut
	for i := range 200 {
		q = append(q, fmt.Sprintf("k%03d=", i))
	}
	res, body := e.req(t, "GET", "/v1/auth/me?"+strings.Join(q, "&"), "", "", g.AccessToken)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	ev := requestRecord(t, db, res.Header.Get("X-Request-ID"), "api.request")
	keys, _ := ev.Details["query_keys"].([]any)
	if len(keys) != 64 || keys[0] != strings.Repeat("a", 64) || keys[1] != "k000" || keys[63] != "k062" {
		t.Fatalf("query_keys %v: want the first 64 names in order, the long one cut", keys)
	}
	if d, tr := fmt.Sprint(ev.Details["query_keys_dropped"]), fmt.Sprint(ev.Details["query_keys_truncated"]); d != "137" || tr != "1" {
		t.Fatalf("query_keys_dropped %s, query_keys_truncated %s: want 137 and 1", d, tr)
	}
	if _, ok := ev.Details["body_keys_dropped"]; ok {
		t.Fatalf("body_keys_dropped present without a body: %v", ev.Details)
	}

	// An ordinary call's event has neither count.
	res, _ = e.req(t, "GET", "/v1/auth/me?x=1", "", "", g.AccessToken)
	ev = requestRecord(t, db, res.Header.Get("X-Request-ID"), "api.request")
	if _, ok := ev.Details["query_keys_dropped"]; ok || fmt.Sprint(ev.Details["query_keys"]) != "[x]" {
		t.Fatalf("ordinary call's details: %v", ev.Details)
	}

	// A method of 60,000 bytes (a valid token, answered 405 or 404) is recorded cut to 32.
	res, _ = e.req(t, strings.Repeat("M", 60000), "/v1/auth/me", "", "", g.AccessToken)
	ev = requestRecord(t, db, res.Header.Get("X-Request-ID"), "api.request")
	if ev.Details["method"] != strings.Repeat("M", 32) {
		t.Fatalf("method recorded as %.40q", ev.Details["method"])
	}
}

// GET /v1/audit/events records its filter in the audit.read event: a filter of at most 1024
// bytes is read and recorded however it encodes; a longer one is refused with 400 before the
// read, and nothing is recorded as read.
func TestAudit_ReadFilterBounded(t *testing.T) {
	t.Parallel()
	e, _, _ := withAudit(t, sqlstore.SQLite)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	for _, name := range []string{"actor", "action", "target_type", "target_id"} {
		path := "/v1/audit/events?" + name + "=" + strings.Repeat("%01", 1024)
		for _, other := range []string{"actor", "action", "target_type", "target_id", "tenant"} {
			if other != name {
				path += "&" + other + "=" + strings.Repeat("%01", 1024)
			}
		}
		res, body := e.req(t, "GET", path, "", "", a.AccessToken)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("five 1024-byte filters: %d %s", res.StatusCode, body)
		}
		ev := requestRecord(t, e.db, res.Header.Get("X-Request-ID"), "audit.read")
		if ev.Details[name] != strings.Repeat("\x01", 1024) {
			t.Fatalf("audit.read recorded %s as %.20q", name, ev.Details[name])
		}

		res, body = e.req(t, "GET", "/v1/audit/events?"+name+"="+strings.Repeat("%01", 1025), "", "", a.AccessToken)
		if eb := wantError(t, res, body, http.StatusBadRequest, tutela.EINVALID); eb.Error.Field != name {
			t.Fatalf("refusal names field %q, want %q", eb.Error.Field, name)
		}
		var n int
		if err := e.db.SQL().QueryRow(`SELECT count(*) FROM audit_events WHERE request_id = $1 AND action = 'audit.read'`,
			res.Header.Get("X-Request-ID")).Scan(&n); err != nil || n != 0 {
			t.Fatalf("refused read recorded %d audit.read events (%v)", n, err)
		}
	}
}
