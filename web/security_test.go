package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"tutela/identity"
	"tutela/oidc"
	"tutela/sqlstore"
)

var (
	scriptTagRE  = regexp.MustCompile(`<script\b[^>]*>`)
	styleTagRE   = regexp.MustCompile(`<style\b[^>]*>`)
	inlineAttrRE = regexp.MustCompile(`(?i)\s(on[a-z]+|style)\s*=`)
)

// checkPage asserts the headers and markup every page must have: a CSP whose nonce is on every
// script and style element, no inline handlers or style attributes, no caching, no referrer.
func checkPage(t *testing.T, name string, res *http.Response, body string) {
	t.Helper()
	csp := res.Header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]{20,})' 'strict-dynamic'`).FindStringSubmatch(csp)
	if m == nil {
		t.Errorf("%s: CSP without a script nonce: %q", name, csp)
		return
	}
	nonce := m[1]
	for _, want := range []string{"default-src 'none'", "style-src 'self' 'nonce-" + nonce + "'", "img-src 'self' https: data:",
		"form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP lacks %q: %s", name, want, csp)
		}
	}
	for _, h := range [][2]string{{"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"}, {"X-Frame-Options", "DENY"},
		{"X-Content-Type-Options", "nosniff"}} {
		if got := res.Header.Get(h[0]); got != h[1] {
			t.Errorf("%s: %s = %q, want %q", name, h[0], got, h[1])
		}
	}
	for _, tag := range append(scriptTagRE.FindAllString(body, -1), styleTagRE.FindAllString(body, -1)...) {
		if !strings.Contains(tag, `nonce="`+nonce+`"`) {
			t.Errorf("%s: %s without this response's nonce", name, tag)
		}
	}
	if loc := inlineAttrRE.FindString(body); loc != "" {
		t.Errorf("%s: inline handler or style attribute %q", name, loc)
	}
	if !strings.Contains(body, `<html lang="`) || !strings.Contains(body, `class="skip" href="#main"`) || !strings.Contains(body, `<h1>`) {
		t.Errorf("%s: page without lang, skip link or heading", name)
	}
}

func TestPages_CSPNonceAndHeadersOnEveryPage(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{MFAAllUsers: true})
	if err := e.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.SetTenantBranding(context.Background(), e.tenant.ID, sqlstore.Branding{PrimaryColor: "#1a4d8f", AccentColor: "#8a1538"})
	}); err != nil {
		t.Fatal(err)
	}
	id := e.request(nil)
	pages := map[string]string{
		"login": "/t/" + slug + "/login?id=" + id, "forgot": "/t/" + slug + "/forgot", "reset": "/t/" + slug + "/reset",
		"logged-out": "/t/" + slug + "/logged-out", "error": "/t/nowhere/login", "expired": "/t/" + slug + "/login?id=gone",
	}
	for name, path := range pages {
		res, body := e.get(path)
		checkPage(t, name, res, body)
	}
	// Signed in (every user must enrol a factor here): the enrolment page, with its script.
	loc := wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "/t/"+slug+"/enroll?id=")
	res, body := e.get(loc)
	wantStatus(t, res, body, http.StatusOK)
	checkPage(t, "enroll", res, body)
	if !strings.Contains(body, `src="/t/acme/assets/passkey.js"`) || !strings.Contains(body, `<style nonce=`) {
		t.Fatalf("enrolment page without its script or the branding style:\n%s", body)
	}
	res, body = e.get("/t/" + slug + "/logout")
	wantStatus(t, res, body, http.StatusOK)
	checkPage(t, "logout", res, body)
	// The assets are served, typed, and nothing else is.
	res, _ = e.get("/t/" + slug + "/assets/passkey.js")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("passkey.js: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	res, _ = e.get("/t/" + slug + "/assets/..%2flocales%2fen.json")
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("asset path escape answered %d", res.StatusCode)
	}
}

func TestCSRF_RefusedPostsChangeNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		token := e.csrf(e.client)
		form := func(csrf string) url.Values {
			return url.Values{"id": {id}, "email": {"ann@example.org"}, "password": {userPW}, "csrf": {csrf}}
		}
		stranger := e.newBrowser()
		strangerToken := e.csrf(stranger) // valid for another browser's cookie only
		for name, c := range map[string]struct {
			client *http.Client
			form   url.Values
			hdr    []string
		}{
			"missing token":       {e.client, url.Values{"id": {id}, "email": {"ann@example.org"}, "password": {userPW}}, nil},
			"wrong token":         {e.client, form(strings.Repeat("A", 43)), nil},
			"other browser token": {e.client, form(strangerToken), nil},
			"no cookie":           {e.newBrowser(), form(token), nil},
			"cross-site origin":   {e.client, form(token), []string{"Origin", "https://evil.example"}},
			"null origin":         {e.client, form(token), []string{"Origin", "null"}},
			"cross-site fetch":    {e.client, form(token), []string{"Sec-Fetch-Site", "cross-site"}},
			"same-site fetch":     {e.client, form(token), []string{"Sec-Fetch-Site", "same-site"}},
		} {
			res, body := e.do(c.client, http.MethodPost, "/t/"+slug+"/login", c.form, c.hdr...)
			if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "This form has expired or did not come from this site") {
				t.Errorf("%s: status %d, want the 403 page", name, res.StatusCode)
			}
			for _, ck := range res.Cookies() {
				if ck.Name == "__Host-tutela_session" {
					t.Errorf("%s: a session cookie was set", name)
				}
			}
		}
		if len(e.sessions(e.user)) != 0 || len(e.flow.completed) != 0 {
			t.Fatal("a refused POST signed the user in")
		}
		// The same post with the token and a same-origin browser goes through.
		res, _ := e.do(e.client, http.MethodPost, "/t/"+slug+"/login", form(token), "Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin")
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
		// The token is bound to the tenant too: another tenant's pages refuse it.
		res, _ = e.do(e.client, http.MethodPost, "/t/"+slug+"/logout", url.Values{"csrf": {token + "x"}})
		wantStatus(t, res, "", http.StatusForbidden)
		if len(e.sessions(e.user)) != 1 {
			t.Fatal("a refused logout ended the session")
		}
	})
}

func TestForms_BodyLimited(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	big := url.Values{"csrf": {e.csrf(e.client)}, "email": {strings.Repeat("a", 70<<10)}}
	res, body := e.do(e.client, http.MethodPost, "/t/"+slug+"/forgot", big)
	wantStatus(t, res, body, http.StatusRequestEntityTooLarge)
}

func TestPages_ParametersNeverBecomeMarkup(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	evil := url.QueryEscape(`"><script>alert(1)</script>`)
	for _, path := range []string{"/t/" + slug + "/login?id=" + evil, "/t/" + slug + "/forgot?id=" + evil, "/t/" + slug + "/reset?id=" + evil + "&lang=" + evil} {
		res, body := e.get(path)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, `"><script`) {
			t.Fatalf("%s echoed markup (%d):\n%s", path, res.StatusCode, body)
		}
	}
}
