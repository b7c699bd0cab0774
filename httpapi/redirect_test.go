package httpapi_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tutela/httpapi"
)

func newRedirect(t *testing.T, origin string) http.Handler {
	t.Helper()
	h, err := httpapi.RedirectHandler(origin)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRedirect_KeepsPathAndQueryOnTheConfiguredOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, origin, method, target, host, want string
	}{
		{"root", "https://id.example.org", "GET", "/", "id.example.org", "https://id.example.org/"},
		{"path and query", "https://id.example.org", "GET", "/v1/users?limit=5&after=a%2Fb", "id.example.org",
			"https://id.example.org/v1/users?limit=5&after=a%2Fb"},
		{"escaped path kept escaped", "https://id.example.org", "GET", "/t/acme/a%20b%2Fc", "id.example.org",
			"https://id.example.org/t/acme/a%20b%2Fc"},
		{"port 80 in Host", "https://id.example.org", "GET", "/x", "id.example.org:80", "https://id.example.org/x"},
		{"Host in upper case", "https://id.example.org", "GET", "/x", "ID.Example.ORG", "https://id.example.org/x"},
		{"issuer port kept", "https://id.example.org:8443/base", "GET", "/x?y", "id.example.org", "https://id.example.org:8443/x?y"},
		{"POST keeps its method via 308", "https://id.example.org", "POST", "/v1/login", "id.example.org", "https://id.example.org/v1/login"},
		{"double slash stays on our host", "https://id.example.org", "GET", "//evil.example/x", "id.example.org",
			"https://id.example.org//evil.example/x"},
		{"ipv6 issuer", "https://[2001:db8::1]", "GET", "/x", "[2001:db8::1]:80", "https://[2001:db8::1]/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tt.method, "http://placeholder"+tt.target, nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			newRedirect(t, tt.origin).ServeHTTP(w, r)
			if w.Code != http.StatusPermanentRedirect {
				t.Fatalf("status = %d, want 308", w.Code)
			}
			if got := w.Header().Get("Location"); got != tt.want {
				t.Errorf("Location = %q, want %q", got, tt.want)
			}
		})
	}
}

// An attacker who points a name at the redirect port, or sends a forged Host, must not get a
// redirect to a host of their choosing (CWE-601): such requests get 400 and no Location.
func TestRedirect_ForeignHostRefusedNotReflected(t *testing.T) {
	t.Parallel()
	h := newRedirect(t, "https://id.example.org")
	for _, host := range []string{"evil.example", "id.example.org.evil.example", "evil.example:80",
		"evilid.example.org", "", "id.example.org@evil.example", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "http://placeholder/v1/users", nil)
			r.Host = host
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", w.Code)
			}
			if loc := w.Header().Get("Location"); loc != "" {
				t.Fatalf("Location = %q, want none", loc)
			}
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != "invalid" {
				t.Fatalf("body = %s (%v), want an invalid error", w.Body, err)
			}
		})
	}
}

// The absolute form of a request line ("GET http://evil.example/ HTTP/1.1") names a host too;
// Go's server takes it over the Host header, and it is checked the same way. This goes through a
// real listener so the request line is parsed as a client would send it.
func TestRedirect_AbsoluteFormTargetChecked(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newRedirect(t, "https://id.example.org"))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		line     string
		status   int
		location string
	}{
		{"GET http://evil.example/phish HTTP/1.1\r\nHost: id.example.org", 400, ""},
		{"GET http://id.example.org/ok?a=1 HTTP/1.1\r\nHost: evil.example", 308, "https://id.example.org/ok?a=1"},
		{"GET /ok HTTP/1.1\r\nHost: evil.example", 400, ""},
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, tt.line+"\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
			t.Errorf("%q: %d Location %q, want %d %q", tt.line, resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
		}
	}
}

// countingBody fails the test if anything reads it: the redirect is decided on the request line
// and headers alone, so an unauthenticated client cannot make this listener buffer a body.
type countingBody struct{ reads int }

func (b *countingBody) Read(p []byte) (int, error) { b.reads++; return 0, io.EOF }
func (b *countingBody) Close() error               { return nil }

func TestRedirect_BodyNeverRead(t *testing.T) {
	t.Parallel()
	h := newRedirect(t, "https://id.example.org")
	for _, host := range []string{"id.example.org", "evil.example"} {
		body := &countingBody{}
		r := httptest.NewRequest("POST", "http://placeholder/v1/login", nil)
		r.Host = host
		r.Body = body
		r.ContentLength = 1 << 20
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if body.reads != 0 {
			t.Errorf("host %s: body read %d times, want never", host, body.reads)
		}
		if w.Header().Get("Connection") != "close" {
			t.Errorf("host %s: Connection = %q, want close (the unread body must not be parsed as a request)", host, w.Header().Get("Connection"))
		}
	}
}

func TestRedirect_HealthzAnsweredDirectly(t *testing.T) {
	t.Parallel()
	h := newRedirect(t, "https://id.example.org")
	for _, host := range []string{"id.example.org", "10.0.0.7:80"} {
		r := httptest.NewRequest("GET", "http://placeholder/healthz", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"ok"`) || w.Header().Get("Location") != "" {
			t.Errorf("host %s: /healthz = %d %s, want 200 ok without redirect", host, w.Code, w.Body)
		}
	}
	// Only the probe path: anything under it still redirects.
	r := httptest.NewRequest("GET", "http://placeholder/healthz/x", nil)
	r.Host = "id.example.org"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusPermanentRedirect {
		t.Errorf("/healthz/x = %d, want 308", w.Code)
	}
}

func TestRedirectHandler_NeedsAnHTTPSOrigin(t *testing.T) {
	t.Parallel()
	for _, origin := range []string{"", "http://id.example.org", "https://", "id.example.org", "https://user@id.example.org"} {
		if _, err := httpapi.RedirectHandler(origin); err == nil {
			t.Errorf("RedirectHandler(%q) = nil error, want refused", origin)
		}
	}
}
