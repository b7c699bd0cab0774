package httpapi_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"tutela"
	"tutela/httpapi"
	"tutela/sqlstore"
)

// ASVS 13.4.6, 14.3.3: the API listener does not serve /metrics, whose build info names the
// version and Go release, and none of its answers (probes included) tells the version either.
func TestMetrics_NotOnTheAPIListenerAndNoVersionLeaks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	for _, m := range []string{"GET", "HEAD", "POST"} {
		res, body := e.do(t, m, "/metrics", "")
		if m == "HEAD" {
			if res.StatusCode != 404 {
				t.Errorf("HEAD /metrics on the API = %d, want 404", res.StatusCode)
			}
			continue
		}
		wantError(t, res, body, 404, tutela.ENOTFOUND)
		if strings.Contains(string(body), "tutela_build_info") {
			t.Errorf("%s /metrics on the API serves metrics", m)
		}
	}
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `tutela_build_info{goversion=`) {
		t.Fatalf("metrics listener: %d %.200s", rec.Code, rec.Body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/v1/openapi.json", "/.well-known/jwks.json", "/v1/nothing"} {
		res, body := e.do(t, "GET", p, "")
		for _, h := range []string{"Server", "X-Powered-By"} {
			if v := res.Header.Get(h); v != "" {
				t.Errorf("%s: %s header %q", p, h, v)
			}
		}
		if p != "/v1/openapi.json" && (strings.Contains(string(body), "go1.") || strings.Contains(string(body), `"version"`)) {
			t.Errorf("%s tells the version: %s", p, body)
		}
	}
}

// With a metrics token set, a scrape must present it as a bearer token; a wrong, truncated or
// extended token, another scheme, or none is refused with 401 and no metric.
func TestMetrics_BearerTokenRequiredWhenSet(t *testing.T) {
	t.Parallel()
	const token = "m3tr1cs-t0ken-0123456789abcdef0123"
	e := newEnv(t, sqlstore.SQLite, func(d *httpapi.Deps) { d.MetricsToken = tutela.NewSecret(token) })
	h := e.srv.MetricsHandler()
	scrape := func(auth string) (int, string, string) {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code, rec.Body.String(), rec.Header().Get("WWW-Authenticate")
	}
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + token[:len(token)-1],
		"Bearer " + token + "x", "Basic " + token, token} {
		code, body, challenge := scrape(auth)
		if code != 401 || strings.Contains(body, "tutela_") || !strings.Contains(body, `"unauthenticated"`) {
			t.Errorf("Authorization %q: %d %.120s", auth, code, body)
		}
		if !strings.HasPrefix(challenge, "Bearer ") {
			t.Errorf("Authorization %q: WWW-Authenticate %q", auth, challenge)
		}
	}
	if code, body, _ := scrape("Bearer " + token); code != 200 || !strings.Contains(body, "tutela_build_info") {
		t.Fatalf("right token: %d %.200s", code, body)
	}
	if code, body, _ := scrape("bearer " + token); code != 200 || !strings.Contains(body, "tutela_build_info") {
		t.Fatalf("scheme is case-insensitive (RFC 9110 §11.1): %d", code)
	}
	// The metrics listener serves nothing else: the API is not reachable through it.
	for _, c := range [][2]string{{"GET", "/healthz"}, {"GET", "/v1/auth/me"}, {"POST", "/metrics"}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c[0], c[1], nil))
		want := 404
		if c[1] == "/metrics" {
			want = 405
		}
		if rec.Code != want || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s %s on the metrics listener = %d %s", c[0], c[1], rec.Code, rec.Body)
		}
	}
}
