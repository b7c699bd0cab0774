package httpapi_test

import (
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// A known path with a method no route serves answers 405 method_not_allowed in the JSON error
// shape, with Allow naming the methods that are served (RFC 9110 §15.5.6), not 404 "no such
// endpoint", which would tell a client the path does not exist.
func TestWrongMethod_405WithAllow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	id := tutela.NewID()
	tests := []struct {
		method, path, allow string
	}{
		{"POST", "/healthz", "GET, HEAD"},
		{"DELETE", "/v1/auth/login", "POST"},
		{"GET", "/v1/auth/login", "POST"},
		{"HEAD", "/v1/auth/login", "POST"},
		{"PUT", "/v1/tenants", "GET, HEAD, POST"},
		{"POST", "/v1/tenants/" + id, "GET, HEAD, PATCH"},
		{"PATCH", "/v1/tenants/" + id + "/users/" + id + "/roles/viewer", "DELETE, PUT"},
		{"OPTIONS", "/v1/tenants/" + id + "/users", "GET, HEAD, POST"},
		{"OPTIONS", "/v1/auth/sessions", "DELETE, GET, HEAD"},
	}
	for _, tt := range tests {
		res, body := e.do(t, tt.method, tt.path, "")
		if tt.method == "HEAD" {
			// net/http drops a HEAD answer's body on the wire; the status and Allow still tell.
			if res.StatusCode != 405 {
				t.Errorf("HEAD %s = %d, want 405", tt.path, res.StatusCode)
			}
		} else {
			eb := wantError(t, res, body, 405, tutela.EMETHODNOTALLOWED)
			if eb.Error.Message == "" {
				t.Errorf("%s %s: empty message", tt.method, tt.path)
			}
		}
		if got := res.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tt.method, tt.path, got, tt.allow)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: security headers missing on 405", tt.method, tt.path)
		}
	}
	// HEAD of a GET route is that route without its body; an unknown path is still 404 for
	// every method, with no Allow.
	if res, _ := e.do(t, "HEAD", "/healthz", ""); res.StatusCode != 200 {
		t.Errorf("HEAD /healthz = %d", res.StatusCode)
	}
	for _, m := range []string{"GET", "POST", "OPTIONS"} {
		res, body := e.do(t, m, "/v1/no-such-thing", "")
		wantError(t, res, body, 404, tutela.ENOTFOUND)
		if res.Header.Get("Allow") != "" {
			t.Errorf("%s on an unknown path sends Allow %q", m, res.Header.Get("Allow"))
		}
	}
}

// An empty path parameter (/v1/tenants//users) is no route: 404 in JSON, never the mux's 307
// redirect to the clean path /v1/tenants/users, which is another resource. The same goes for
// "." and ".." segments.
func TestEmptyOrDotPathSegment_404NotRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	for _, p := range []string{"/v1/tenants//users", "/v1/tenants//", "/v1/tenants/./users", "/v1/tenants/x/../y", "/v1//tenants"} {
		for _, m := range []string{"GET", "POST"} {
			res, body := e.do(t, m, p, "")
			wantError(t, res, body, 404, tutela.ENOTFOUND)
			if loc := res.Header.Get("Location"); loc != "" {
				t.Errorf("%s %s redirects to %q", m, p, loc)
			}
		}
	}
}
