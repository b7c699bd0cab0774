package password

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
)

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hexUpper(sum[:])
}

// rangeServer is a fake range API. respond returns the body for a prefix; it records every
// request so tests can check what left the process.
type rangeServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newRangeServer(t *testing.T, handler http.HandlerFunc) *rangeServer {
	t.Helper()
	rs := &rangeServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.requests = append(rs.requests, r.Clone(context.Background()))
		rs.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *rangeServer) paths() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []string
	for _, r := range rs.requests {
		out = append(out, r.URL.Path)
	}
	return out
}

// rangeBody answers like the real API: the entries, then padding entries with count 0.
func rangeBody(entries map[string]int, padding ...string) string {
	var b strings.Builder
	for suffix, n := range entries {
		fmt.Fprintf(&b, "%s:%d\r\n", suffix, n)
	}
	for _, p := range padding {
		fmt.Fprintf(&b, "%s:0\r\n", p)
	}
	return strings.TrimSuffix(b.String(), "\r\n")
}

func TestRangeClient_SendsOnlyThePrefixWithPadding(t *testing.T) {
	t.Parallel()
	const pw = "P@ssw0rd"
	digest := sha1Hex(pw)
	rs := newRangeServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, rangeBody(map[string]int{digest[5:]: 42}))
	})
	c := NewRangeClient(rs.URL+"/", rs.Client(), false)
	hit, err := c.Breached(context.Background(), pw)
	if err != nil || !hit {
		t.Fatalf("Breached = %v, %v; want true, nil", hit, err)
	}
	if len(rs.requests) != 1 {
		t.Fatalf("%d requests, want 1", len(rs.requests))
	}
	r := rs.requests[0]
	if r.Method != http.MethodGet || r.URL.Path != "/range/"+digest[:5] || r.URL.RawQuery != "" {
		t.Errorf("request %s %s, want GET /range/%s", r.Method, r.URL, digest[:5])
	}
	if got := r.Header.Get("Add-Padding"); got != "true" {
		t.Errorf("Add-Padding = %q, want true", got)
	}
	var dump bytes.Buffer
	r.Write(&dump)
	for _, leak := range []string{digest[5:], strings.ToLower(digest[5:]), digest[4:10], pw} {
		if strings.Contains(dump.String(), leak) {
			t.Errorf("request contains %q beyond the 5-character prefix:\n%s", leak, dump.String())
		}
	}
}

func TestRangeClient_Answers(t *testing.T) {
	t.Parallel()
	const pw = "hunter2hunter2"
	suffix := sha1Hex(pw)[5:]
	other := strings.Repeat("A", 35)
	pad := strings.Repeat("F", 35)
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"hit", rangeBody(map[string]int{other: 3, suffix: 17}, pad), true},
		{"hit lowercase", rangeBody(map[string]int{strings.ToLower(suffix): 1}), true},
		{"hit LF only", other + ":3\n" + suffix + ":9\n", true},
		{"miss", rangeBody(map[string]int{other: 3}, pad), false},
		{"padding entry is not a hit", rangeBody(map[string]int{other: 3}, suffix), false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs := newRangeServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tt.body) })
			hit, err := NewRangeClient(rs.URL, rs.Client(), false).Breached(context.Background(), pw)
			if err != nil || hit != tt.want {
				t.Fatalf("Breached = %v, %v; want %v, nil", hit, err, tt.want)
			}
		})
	}
}

func TestRangeClient_ChecksNormalisedAndTypedForms(t *testing.T) {
	t.Parallel()
	const typed = "ｐａｓｓｗｏｒｄ" // full-width
	norm, raw := sha1Hex("password"), sha1Hex(typed)
	rs := newRangeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/range/"+raw[:5] {
			fmt.Fprint(w, rangeBody(map[string]int{raw[5:]: 5}))
		}
	})
	hit, err := NewRangeClient(rs.URL, rs.Client(), false).Breached(context.Background(), typed)
	if err != nil || !hit {
		t.Fatalf("Breached = %v, %v; want true (typed form is breached)", hit, err)
	}
	want := []string{"/range/" + norm[:5], "/range/" + raw[:5]}
	if got := rs.paths(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("requested %v, want %v", got, want)
	}
}

func TestRangeClient_Failures(t *testing.T) {
	t.Parallel()
	const pw = "correct horse battery staple"
	prefix := sha1Hex(pw)[:5]
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }},
		{"rate limited", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }},
		{"oversized body", func(w http.ResponseWriter, r *http.Request) {
			line := strings.Repeat("A", 35) + ":1\r\n"
			for range maxRangeResponse/len(line) + 2 {
				fmt.Fprint(w, line)
			}
		}},
		{"malformed line", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>maintenance</html>") }},
		{"short suffix", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ABCDEF:1") }},
		{"bad count", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, strings.Repeat("A", 35)+":many") }},
		{"hangs past the deadline", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs := newRangeServer(t, tt.handler)
			client := rs.Client()
			client.Timeout = 200 * time.Millisecond

			var logged bytes.Buffer
			open := NewRangeClient(rs.URL, client, true)
			open.Logger = slog.New(slog.NewTextHandler(&logged, nil))
			hit, err := open.Breached(context.Background(), pw)
			if hit || err != nil {
				t.Errorf("fail open: Breached = %v, %v; want false, nil", hit, err)
			}
			if !strings.Contains(logged.String(), "breached-password check unavailable") {
				t.Errorf("fail open did not log the failure: %q", logged.String())
			}

			closed := NewRangeClient(rs.URL, client, false)
			hit, err = closed.Breached(context.Background(), pw)
			var e *tutela.Error
			if hit || !errors.As(err, &e) || e.Code != tutela.EUNAVAILABLE || e.Message != "breached-password check unavailable" {
				t.Fatalf("fail closed: Breached = %v, %v; want EUNAVAILABLE", hit, err)
			}
			if strings.Contains(err.Error(), prefix) || strings.Contains(logged.String(), prefix) {
				t.Errorf("error or log reveals the hash prefix: %v / %s", err, logged.String())
			}
		})
	}
}

func TestRangeClient_UnreachableServer(t *testing.T) {
	t.Parallel()
	rs := httptest.NewServer(http.NotFoundHandler())
	url := rs.URL
	rs.Close()
	_, err := NewRangeClient(url, nil, false).Breached(context.Background(), "pw")
	if tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		t.Fatalf("err = %v, want EUNAVAILABLE", err)
	}
	if strings.Contains(err.Error(), "/range/") {
		t.Errorf("error %q repeats the request URL", err)
	}
}

// A redirect is not followed: the range API cannot send the query (or the client) to another
// host or to plain HTTP; the check fails closed instead.
func TestRangeClient_DoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(other.Close)
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(rs.Close)
	hit, err := NewRangeClient(rs.URL, nil, false).Breached(context.Background(), "correct horse battery staple")
	if hit || tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		t.Fatalf("Breached = %v, %v; want EUNAVAILABLE", hit, err)
	}
	if hits.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
}

// Both checkers satisfy the interface Policy uses.
var (
	_ Checker = (*RangeClient)(nil)
	_ Checker = (*Index)(nil)
)
