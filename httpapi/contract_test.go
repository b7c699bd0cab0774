package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"tutela"
	"tutela/httpapi"
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

// ?tenant= on /v1/security-events names a tenant like the {tenant} path parameter: an unknown
// ID or slug is 404 (it was an empty 200, which reads as "no events"), a slug works like the ID,
// and a tenant-scoped caller may name only their own tenant.
func TestSecurityEvents_TenantQueryNamesATenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	acme, _ := e.seed(t, "acme", "admin@acme.test", pw, "program_admin")
	other, _ := e.seed(t, "other", "admin@other.test", pw, "program_admin")
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	ctx := context.Background()
	if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
		for _, tn := range []*tutela.Tenant{acme, other} {
			if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tn.ID, Kind: "account_locked", IP: "192.0.2.9"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	root := e.login(t, "root", "root@example.org", pw, "")
	admin := e.login(t, "acme", "admin@acme.test", pw, "")
	events := func(tok, query string) ([]string, int, []byte) {
		t.Helper()
		res, b := e.req(t, "GET", "/v1/security-events"+query, "", "", tok)
		var body struct {
			Events []struct {
				TenantID string `json:"tenant_id"`
			}
		}
		_ = json.Unmarshal(b, &body)
		var tenants []string
		for _, ev := range body.Events {
			tenants = append(tenants, ev.TenantID)
		}
		return tenants, res.StatusCode, b
	}
	for _, q := range []string{"?tenant=" + other.ID, "?tenant=other"} {
		if got, code, b := events(root.AccessToken, q); code != 200 || len(got) != 1 || got[0] != other.ID {
			t.Errorf("super-admin %s: %d %v %s", q, code, got, b)
		}
	}
	for _, q := range []string{"?tenant=" + tutela.NewID(), "?tenant=no-such-tenant", "?tenant=" + strings.Repeat("x", 70)} {
		res, b := e.req(t, "GET", "/v1/security-events"+q, "", "", root.AccessToken)
		if res.StatusCode != 404 && res.StatusCode != 400 {
			t.Errorf("super-admin %s: %d %s, want 404 (or 400)", q, res.StatusCode, b)
		}
	}
	// A programme administrator reads their own tenant, by ID, slug or default; another
	// tenant is 404, as in a path.
	for _, q := range []string{"", "?tenant=" + acme.ID, "?tenant=acme"} {
		if got, code, b := events(admin.AccessToken, q); code != 200 || len(got) != 1 || got[0] != acme.ID {
			t.Errorf("programme admin %q: %d %v %s", q, code, got, b)
		}
	}
	for _, q := range []string{"?tenant=" + other.ID, "?tenant=other"} {
		res, b := e.req(t, "GET", "/v1/security-events"+q, "", "", admin.AccessToken)
		wantError(t, res, b, 404, tutela.ENOTFOUND)
	}
}

// Every path parameter in the document is bounded below: an empty {tenant} would match
// /v1/tenants//users, which the server refuses (404, never a redirect).
func TestOpenAPI_PathParametersNeverEmpty(t *testing.T) {
	t.Parallel()
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, p := range append(append(openapi3.Parameters{}, item.Parameters...), op.Parameters...) {
				if p.Value == nil || p.Value.In != "path" {
					continue
				}
				sc := p.Value.Schema.Value
				if sc.MinLength < 1 && sc.Format != "uuid" && sc.Pattern == "" {
					t.Errorf("%s %s: path parameter %s may be empty", method, path, p.Value.Name)
				}
			}
		}
	}
	e := newEnv(t, sqlstore.SQLite, nil)
	res, body := e.do(t, "GET", "/v1/tenants//access-reviews", "")
	wantError(t, res, body, 404, tutela.ENOTFOUND)
}

// Every operation that takes a body documents 413 (over http.body_limit, refused before the
// handler) and, for JSON bodies, 415 (another Content-Type): checkedServer fails the test if
// the answer's status is not in the document. File uploads are the one exception.
func TestEveryBodyRoute_413And415Documented(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, func(d *httpapi.Deps) { d.EnforceStepUp = true; d.BodyLimit = 1 << 10 })
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	id := tutela.NewID()
	fill := strings.NewReplacer("{tenant}", "acme", "{id}", id, "{sa}", id, "{review}", id, "{item}", id,
		"{role}", "caseworker", "{grant}", id, "{secret}", id)
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil {
				continue
			}
			if method == "POST" && path == "/v1/tenants/{tenant}/files" {
				// An upload is bounded by the tenant's file policy, not by http.body_limit: too
				// large is 422 file_refused (reason too_large), and any media type is a raw upload.
				continue
			}
			n++
			url := fill.Replace(path)
			big := `{"x":"` + strings.Repeat("a", 2<<10) + `"}`
			res, b := e.do(t, method, url, big)
			wantError(t, res, b, 413, tutela.ETOOLARGE)
			if op.RequestBody.Value.Content.Get("application/json") == nil {
				continue
			}
			// Public routes read the body first; the others answer 401 before decoding, which
			// is documented too. Either way checkedServer checks the status is in the document.
			res, b = e.do(t, method, url, `{}`, "Content-Type", "text/plain")
			if res.StatusCode != 415 && res.StatusCode != 401 {
				t.Errorf("%s %s with text/plain: %d %s", method, url, res.StatusCode, b)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d operations with a body", n)
	}
}

// A grant without expiry has no "expires" in /v1/authz/explain, and the document says so (it
// required the property); checkedServer validates the answer against PolicyGrant.
func TestAuthzExplain_GrantWithoutExpiryMatchesDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, u := e.seed(t, "acme", "op@example.org", pw, "operator")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	base := "/v1/tenants/" + tn.ID + "/users/" + u.ID
	if res, b := e.req(t, "POST", base+"/permissions", `{"resource":"records","action":"UPDATE","effect":"deny"}`, "", a.AccessToken); res.StatusCode != 201 {
		t.Fatalf("deny: %d %s", res.StatusCode, b)
	}
	res, b := e.req(t, "GET", "/v1/authz/explain?user="+u.ID+"&action=UPDATE&resource=records", "", "", a.AccessToken)
	var ex struct{ Grants []map[string]any }
	if err := json.Unmarshal(b, &ex); err != nil || res.StatusCode != 200 || len(ex.Grants) == 0 {
		t.Fatalf("explain: %d %s", res.StatusCode, b)
	}
	for _, g := range ex.Grants {
		if _, ok := g["expires"]; ok {
			t.Errorf("a grant without expiry carries expires: %v", g)
		}
	}
}
