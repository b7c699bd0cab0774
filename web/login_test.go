package web_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela/identity"
	"tutela/oidc"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

func eachDialect(t *testing.T, fn func(t *testing.T, d sqlstore.Dialect)) {
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestLogin_PasswordConsentThenSSOSkipsBoth(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		id := e.request(nil)
		res, body := e.get("/t/" + slug + "/login?id=" + id)
		wantStatus(t, res, body, http.StatusOK)
		for _, want := range []string{`id="email"`, `autocomplete="username webauthn"`, `autocomplete="current-password"`, `id="submit"`, `<label for="password">`} {
			if !strings.Contains(body, want) {
				t.Errorf("login page lacks %s", want)
			}
		}
		res = e.signIn(id, "ann@example.org", userPW)
		loc := wantRedirect(t, res, "/t/"+slug+"/consent?id=")
		if !slices.ContainsFunc(res.Cookies(), func(c *http.Cookie) bool {
			return c.Name == "__Host-tutela_session" && c.Secure && c.HttpOnly && c.SameSite == http.SameSiteLaxMode && c.Path == "/"
		}) {
			t.Fatalf("no session cookie with the shared attributes: %v", res.Cookies())
		}
		res, body = e.get(loc)
		wantStatus(t, res, body, http.StatusOK)
		for _, want := range []string{"Patient Portal", "app.example", "Your identifier", "Your name", "Your e-mail address", `id="allow"`, `id="deny"`} {
			if !strings.Contains(body, want) {
				t.Errorf("consent page lacks %q", want)
			}
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://app.example;") {
			t.Errorf("consent page CSP does not let the form post redirect to the client: %s", csp)
		}
		res, _ = e.post("/t/"+slug+"/consent", url.Values{"id": {id}, "decision": {"allow"}})
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
		a := e.flow.completed[id]
		if a.UserID != e.user.ID || a.SessionID == "" || !slices.Equal(a.AMR, []string{"pwd"}) || a.AuthTime.IsZero() {
			t.Fatalf("Complete got %+v", a)
		}

		// A second request of the same client: the session answers (SSO) and the consent is
		// remembered, so the browser goes straight back.
		id2 := e.request(nil)
		res, _ = e.get("/t/" + slug + "/login?id=" + id2)
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id2)
		if e.flow.completed[id2].SessionID != a.SessionID {
			t.Fatal("SSO completed with another session")
		}
		// A scope never allowed asks again.
		id3 := e.request(func(p *oidc.Pending) { p.Scopes = append(p.Scopes, "offline_access") })
		res, _ = e.get("/t/" + slug + "/login?id=" + id3)
		wantRedirect(t, res, "/t/"+slug+"/consent?id="+id3)
		// prompt=consent shows the page although the consent covers the scopes.
		id4 := e.request(func(p *oidc.Pending) { p.Prompt = []string{"consent"} })
		res, _ = e.get("/t/" + slug + "/login?id=" + id4)
		loc = wantRedirect(t, res, "/t/"+slug+"/consent?id="+id4)
		res, body = e.get(loc)
		wantStatus(t, res, body, http.StatusOK)
		res, _ = e.post("/t/"+slug+"/consent", url.Values{"id": {id4}, "decision": {"deny"}})
		wantRedirect(t, res, "https://app.example/cb?error=access_denied")
		if e.flow.denied[id4] != oidc.DenyAccessDenied {
			t.Fatalf("deny recorded %q", e.flow.denied[id4])
		}
	})
}

func TestLogin_SkipConsentClientNeverAsks(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
	wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "https://app.example/cb?code=c-"+id)
}

func TestLogin_MaxAgeAndPromptLoginForcePassword(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "https://app.example/cb")
		zero, hour := time.Duration(0), time.Hour
		for name, mod := range map[string]func(*oidc.Pending){
			"max_age=0":    func(p *oidc.Pending) { p.MaxAge = &zero },
			"prompt=login": func(p *oidc.Pending) { p.Prompt = []string{"login"} },
			"other user":   func(p *oidc.Pending) { p.UserID = "0190a0a0-0000-7000-8000-000000000001" },
		} {
			id := e.request(func(p *oidc.Pending) { p.SkipConsent = true; mod(p) })
			res, body := e.get("/t/" + slug + "/login?id=" + id)
			if res.StatusCode != http.StatusOK || !strings.Contains(body, `id="password"`) {
				t.Errorf("%s: status %d, want the password form", name, res.StatusCode)
			}
		}
		// max_age=1h: an hour and a minute after the sign-in, the password again; within it, not.
		within := e.request(func(p *oidc.Pending) { p.SkipConsent = true; p.MaxAge = &hour })
		res, _ := e.get("/t/" + slug + "/login?id=" + within)
		wantRedirect(t, res, "https://app.example/cb?code=c-"+within)
		e.clock.Add(61 * time.Minute)
		past := e.request(func(p *oidc.Pending) { p.SkipConsent = true; p.MaxAge = &hour })
		res, body := e.get("/t/" + slug + "/login?id=" + past)
		if res.StatusCode != http.StatusOK || !strings.Contains(body, `id="password"`) {
			t.Fatalf("max_age exceeded: status %d, want the password form", res.StatusCode)
		}
		// Signing in again answers it, with the new authentication time.
		wantRedirect(t, e.signIn(past, "ann@example.org", userPW), "https://app.example/cb?code=c-"+past)
		if got := e.flow.completed[past].AuthTime; !got.Equal(e.clock.Now()) {
			t.Fatalf("auth_time %v, want the new sign-in %v", got, e.clock.Now())
		}
	})
}

func TestLogin_PromptNone(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		id := e.request(func(p *oidc.Pending) { p.Prompt = []string{"none"} })
		res, _ := e.get("/t/" + slug + "/login?id=" + id)
		wantRedirect(t, res, "https://app.example/cb?error=login_required")
		if e.flow.denied[id] != oidc.DenyLoginRequired {
			t.Fatalf("denied %q, want login_required", e.flow.denied[id])
		}
		// Signed in, but the client has no consent yet: consent_required, no page.
		first := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		wantRedirect(t, e.signIn(first, "ann@example.org", userPW), "https://app.example/cb")
		id = e.request(func(p *oidc.Pending) { p.Prompt = []string{"none"} })
		res, _ = e.get("/t/" + slug + "/login?id=" + id)
		wantRedirect(t, res, "https://app.example/cb?error=consent_required")
		// With the consent remembered, prompt=none completes silently.
		id = e.request(func(p *oidc.Pending) { p.Prompt = []string{"none"}; p.SkipConsent = true })
		res, _ = e.get("/t/" + slug + "/login?id=" + id)
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
	})
}

func TestLogin_NoEnumeration(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		id := e.request(nil)
		page := func(email, pw string) (int, string) {
			res, body := e.post("/t/"+slug+"/login", url.Values{"id": {id}, "email": {email}, "password": {pw}})
			// The nonce differs per response, and the address typed is echoed into the form.
			nonce := strings.TrimPrefix(strings.Fields(strings.SplitAfter(res.Header.Get("Content-Security-Policy"), "'nonce-")[1])[0], "")
			body = strings.ReplaceAll(body, strings.TrimSuffix(nonce, "'"), "NONCE")
			return res.StatusCode, strings.ReplaceAll(body, email, "EMAIL")
		}
		s1, unknown := page("nobody@example.org", userPW)
		s2, wrong := page("ann@example.org", "not the password at all")
		if s1 != http.StatusUnauthorized || s1 != s2 || unknown != wrong {
			t.Fatalf("unknown user (%d) and wrong password (%d) answer differently:\n%s\n---\n%s", s1, s2, unknown, wrong)
		}
		if !strings.Contains(wrong, "The e-mail address or the password is not right.") || !strings.Contains(wrong, `aria-describedby="form-error"`) {
			t.Fatalf("the error is not identified in text and linked to the fields:\n%s", wrong)
		}
		if len(e.sessions(e.user)) != 0 {
			t.Fatal("a refused sign-in made a session")
		}
	})
}

func TestLogin_ThrottledShowsWait(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	id := e.request(nil)
	var res *http.Response
	var body string
	for range 12 {
		res, body = e.post("/t/"+slug+"/login", url.Values{"id": {id}, "email": {"ann@example.org"}, "password": {"wrong guess"}})
		if res.StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	wantStatus(t, res, body, http.StatusTooManyRequests)
	if res.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many attempts") || !strings.Contains(body, "minutes") {
		t.Fatalf("429 page without the wait: %v\n%s", res.Header, body)
	}
	// The right password is refused too while locked.
	res, body = e.post("/t/"+slug+"/login", url.Values{"id": {id}, "email": {"ann@example.org"}, "password": {userPW}})
	wantStatus(t, res, body, http.StatusTooManyRequests)
}

func TestLogin_UnknownRequestAndTenant(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	res, body := e.get("/t/" + slug + "/login?id=0190a0a0-0000-7000-8000-00000000dead")
	wantStatus(t, res, body, http.StatusNotFound)
	if !strings.Contains(body, "This sign-in has expired") || !strings.Contains(body, res.Header.Get("X-Request-ID")) {
		t.Fatalf("expired request page:\n%s", body)
	}
	res, body = e.get("/t/" + slug + "/login")
	wantStatus(t, res, body, http.StatusBadRequest)
	res, body = e.get("/t/no-such-tenant/login?id=x")
	wantStatus(t, res, body, http.StatusNotFound)
	// A request of another tenant cannot be continued on this one's pages.
	other := e.request(func(p *oidc.Pending) { p.TenantID = "0190a0a0-0000-7000-8000-0000000000aa" })
	res, body = e.get("/t/" + slug + "/login?id=" + other)
	wantStatus(t, res, body, http.StatusNotFound)
}

// A user who signs in because of prompt=login or max_age=0 goes on to the next pages of the
// same request (consent, enrolment, step-up) without being sent back to sign in again, and the
// mark of that sign-in is worth nothing for another request.
func TestLogin_FreshSignInCarriesThroughTheRequest(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{MFAAllUsers: true})
		zero := time.Duration(0)
		id := e.request(func(p *oidc.Pending) { p.MaxAge = &zero; p.Prompt = []string{"login"} })
		loc := wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "/t/"+slug+"/enroll?id="+id)
		res, body := e.get(loc)
		wantStatus(t, res, body, http.StatusOK)
		secret := secretRE.FindStringSubmatch(body)[1]
		res, body = e.post("/t/"+slug+"/enroll", url.Values{"id": {id}, "factor_id": {field(body, "factor_id")}, "code": {e.totp(secret)}})
		wantStatus(t, res, body, http.StatusOK)
		res, _ = e.get("/t/" + slug + "/login?id=" + id) // the recovery page's "continue"
		loc = wantRedirect(t, res, "/t/"+slug+"/consent?id="+id)
		res, body = e.get(loc)
		wantStatus(t, res, body, http.StatusOK)
		res, _ = e.post("/t/"+slug+"/consent", url.Values{"id": {id}, "decision": {"allow"}})
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
		// Another request with max_age=0 needs the password again.
		again := e.request(func(p *oidc.Pending) { p.MaxAge = &zero })
		res, body = e.get("/t/" + slug + "/login?id=" + again)
		if res.StatusCode != http.StatusOK || !strings.Contains(body, `id="password"`) {
			t.Fatalf("max_age=0 request answered by the earlier sign-in: %d", res.StatusCode)
		}
		res, _ = e.get("/t/" + slug + "/consent?id=" + again)
		wantRedirect(t, res, "/t/"+slug+"/login?id="+again)
	})
}

// A public client's identity is not assured (anyone can use its client ID with a redirect
// they receive): its users are asked for consent every time, remembered or not, and
// prompt=none cannot complete silently (ASVS 10.7.1, RFC 8252 §8.6).
func TestConsent_PublicClientAskedEveryTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	public := func(p *oidc.Pending) { p.Public = true }
	id := e.request(public)
	loc := wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "/t/"+slug+"/consent?id=")
	res, body := e.get(loc)
	wantStatus(t, res, body, http.StatusOK)
	res, _ = e.post("/t/"+slug+"/consent", url.Values{"id": {id}, "decision": {"allow"}})
	wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
	// Signed in, consent remembered: the page is shown again all the same.
	id = e.request(public)
	res, _ = e.get("/t/" + slug + "/login?id=" + id)
	wantRedirect(t, res, "/t/"+slug+"/consent?id="+id)
	id = e.request(func(p *oidc.Pending) { p.Public, p.Prompt = true, []string{"none"} })
	res, _ = e.get("/t/" + slug + "/login?id=" + id)
	wantRedirect(t, res, "https://app.example/cb?error=consent_required")
}
