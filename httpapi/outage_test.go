package httpapi_test

import (
	"context"
	"database/sql"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// dbLink is a TCP relay between the store and PostgreSQL that a test can cut: "up" relays,
// "blackhole" keeps every connection, old and new, open and silent (a dead link or a frozen
// host: nothing is refused, nothing answers), "down" resets them all and refuses new ones.
type dbLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	mode   string
	conns  []net.Conn
}

func newDBLink(t *testing.T, target string) *dbLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &dbLink{ln: ln, target: target, mode: "up"}
	t.Cleanup(func() {
		ln.Close()
		l.set("down")
	})
	go l.accept()
	return l
}

func (l *dbLink) set(mode string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mode = mode
	if mode == "down" {
		for _, c := range l.conns {
			c.Close()
		}
		l.conns = nil
	}
}

func (l *dbLink) current() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

func (l *dbLink) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		mode := l.mode
		if mode == "down" {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.conns = append(l.conns, c)
		l.mu.Unlock()
		if mode == "blackhole" {
			go io.Copy(io.Discard, c) // held open, never answered
			continue
		}
		up, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, up)
		l.mu.Unlock()
		go l.relay(up, c)
		go l.relay(c, up)
	}
}

// relay copies src to dst while the link is up; black-holed, it swallows what arrives.
func (l *dbLink) relay(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		if l.current() != "up" {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

// A database that stops answering, or goes away, makes API requests fail with 503 unavailable
// and Retry-After within the request's database bound, instead of 500 internal after a hang;
// /readyz says 503 too; and the service recovers when the database returns.
func TestDatabaseOutage_503UnavailableNotHang(t *testing.T) {
	t.Parallel()
	direct := sqltest.PostgresURL(t)
	mdb, err := sqlstore.Open(context.Background(), direct, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := mdb.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	mdb.Close()
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	link := newDBLink(t, u.Host)
	u.Host = link.ln.Addr().String()

	c := clocktest.New(time.Now().UTC())
	db, err := sqlstore.Open(context.Background(), u.String(), sqlstore.Options{Clock: c.Now, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sqltest.AttachVault(t, db)
	// The bound must hold a healthy sign-in on a loaded machine (this package runs six tests at
	// once; at 300 ms the sign-in before the outage sometimes got 503), and still be short
	// enough that fourteen refused calls finish quickly.
	e := newEnvOn(t, db, c, func(d *httpapi.Deps) { d.DBTimeout = time.Second })
	e.seed(t, "acme", "ops@acme.test", goodPassword, "program_admin")
	g := e.login(t, "acme", "ops@acme.test", goodPassword, "")

	// Each call must answer; a hang fails the test here rather than timing out the suite.
	call := func(method, path, body string, auth any) (*http.Response, []byte) {
		t.Helper()
		type answer struct {
			res  *http.Response
			body []byte
		}
		done := make(chan answer, 1)
		go func() {
			res, b := e.req(t, method, path, body, "", auth)
			done <- answer{res, b}
		}()
		select {
		case a := <-done:
			return a.res, a.body
		case <-time.After(60 * time.Second):
			t.Fatalf("%s %s hung with the database %s", method, path, link.current())
			return nil, nil
		}
	}
	if res, body := call("GET", "/v1/auth/me", "", g.AccessToken); res.StatusCode != 200 {
		t.Fatalf("before the outage: %d %s", res.StatusCode, body)
	}

	for _, mode := range []string{"blackhole", "down"} {
		link.set(mode)
		// Cached authentication state stays trusted for AuthEpochMaxAge after the last good poll
		// of its epochs (docs/caching.md); past that, with no poll succeeding, every request
		// reads the database again, and the outage shows.
		c.Add(sqlstore.AuthEpochMaxAge)
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/readyz", ""},
			{"GET", "/v1/auth/me", ""},
			{"GET", "/v1/tenants", ""},
			{"POST", "/v1/auth/login", loginBody("acme", "ops@acme.test", goodPassword)},
			{"POST", "/v1/auth/refresh", `{"refresh_token":"` + g.RefreshToken + `"}`},
			// Audit reads go to the pool without a transaction; they are outages too.
			{"GET", "/v1/audit/checkpoint", ""},
			{"GET", "/v1/audit/proof/consistency?from=0&to=0", ""},
		} {
			res, body := call(r.method, r.path, r.body, g.AccessToken)
			eb := wantError(t, res, body, 503, tutela.EUNAVAILABLE)
			if res.Header.Get("Retry-After") == "" {
				t.Errorf("%s: %s %s: 503 without Retry-After", mode, r.method, r.path)
			}
			if strings.Contains(eb.Error.Message, "127.0.0.1") || strings.Contains(eb.Error.Message, "dial") {
				t.Errorf("%s: %s %s: driver detail reaches the client: %q", mode, r.method, r.path, eb.Error.Message)
			}
		}
	}

	link.set("up")
	if res, body := call("GET", "/readyz", "", nil); res.StatusCode != 200 {
		t.Fatalf("after the outage: readyz %d %s", res.StatusCode, body)
	}
	if res, body := call("GET", "/v1/auth/me", "", g.AccessToken); res.StatusCode != 200 {
		t.Fatalf("after the outage: %d %s", res.StatusCode, body)
	}
}

// SQLite held by another process longer than the request's bound is unavailable too.
func TestDatabaseBusy_SQLite503(t *testing.T) {
	t.Parallel()
	path := sqltest.DSN(t, sqlstore.SQLite)
	c := clocktest.New(time.Now().UTC())
	db, err := sqlstore.Open(context.Background(), path, sqlstore.Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, db)
	e := newEnvOn(t, db, c, func(d *httpapi.Deps) { d.DBTimeout = 300 * time.Millisecond })
	e.seed(t, "acme", "ops@acme.test", goodPassword)

	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")

	done := make(chan struct{})
	var res *http.Response
	var body []byte
	go func() {
		defer close(done)
		res, body = e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ops@acme.test", goodPassword), "", nil)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("login hung on a locked database")
	}
	wantError(t, res, body, 503, tutela.EUNAVAILABLE)
}
