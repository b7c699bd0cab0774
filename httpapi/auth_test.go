package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tutela"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

type grant struct {
	AccessToken        string `json:"access_token"`
	RefreshToken       string `json:"refresh_token"`
	SessionID          string `json:"session_id"`
	UserID             string `json:"user_id"`
	TenantID           string `json:"tenant_id"`
	MustChangePassword bool   `json:"must_change_password"`
	cookie             *http.Cookie
}

// req sends a request as the given client IP with optional bearer token or cookie.
func (e *env) req(t testing.TB, method, path, body, ip string, auth any) (*http.Response, []byte) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if ip == "" {
		ip = "192.0.2.1"
	}
	r.RemoteAddr = ip + ":40000"
	switch a := auth.(type) {
	case string:
		r.Header.Set("Authorization", "Bearer "+a)
	case *http.Cookie:
		r.AddCookie(a)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	res := rec.Result()
	// Like a browser, keep the session cookie the server renews (step-up, re-authentication).
	if c, ok := auth.(*http.Cookie); ok {
		for _, nc := range res.Cookies() {
			if nc.Name == c.Name && nc.Value != "" {
				c.Value = nc.Value
			}
		}
	}
	return res, rec.Body.Bytes()
}

func loginBody(tenant, email, pw string) string {
	b, _ := json.Marshal(map[string]string{"tenant": tenant, "email": email, "password": pw})
	return string(b)
}

func (e *env) login(t testing.TB, tenant, email, pw, ip string) grant {
	t.Helper()
	res, body := e.req(t, "POST", "/v1/auth/login", loginBody(tenant, email, pw), ip, nil)
	if res.StatusCode != 200 {
		t.Fatalf("login %s: %d %s", email, res.StatusCode, body)
	}
	var g grant
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies() {
		if c.Name == httpapi.SessionCookie {
			g.cookie = c
		}
	}
	return g
}

// seed creates tenant slug with a user who has a password and the given roles.
func (e *env) seed(t testing.TB, slug, email, pw string, roles ...string) (*tutela.Tenant, *tutela.User) {
	t.Helper()
	ctx := context.Background()
	var tn *tutela.Tenant
	var u *tutela.User
	err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
		var err error
		tn, err = tx.TenantBySlug(ctx, slug)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			tn = &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
			if err = tx.CreateTenant(ctx, tn); err == nil {
				err = declareTestPurposes(ctx, tx, tn.ID)
			}
		}
		if err != nil {
			return err
		}
		u = &tutela.User{Email: email, DisplayName: "Person " + slug}
		if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
			return err
		}
		for _, r := range roles {
			if err := tx.Users(tn.ID).Grant(ctx, u.ID, r, "", nil); err != nil {
				return err
			}
		}
		h, err := fastHasher(t).Hash(ctx, pw)
		if err != nil {
			return err
		}
		return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, h)
	})
	if err != nil {
		t.Fatal(err)
	}
	return tn, u
}

const pw = "amber falcon meadow 93 tidewater"

func TestLogin_IssuesSessionCookieAndTokens(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			_, u := e.seed(t, "acme", "ana@example.org", pw)
			g := e.login(t, "acme", "ANA@example.org", pw, "")
			c := g.cookie
			if c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Fatalf("session cookie %+v", c)
			}
			if len(c.Value) != 43 || g.UserID != u.ID || g.AccessToken == "" || len(g.RefreshToken) != 43 {
				t.Fatalf("grant %+v", g)
			}
			// Both credentials authenticate.
			for _, auth := range []any{g.AccessToken, c} {
				res, body := e.req(t, "GET", "/v1/auth/me", "", "", auth)
				if res.StatusCode != 200 || !strings.Contains(string(body), u.ID) {
					t.Fatalf("me with %T: %d %s", auth, res.StatusCode, body)
				}
			}
			// The stored session holds only a hash of the cookie value.
			var raw []byte
			_ = e.db.View(context.Background(), func(tx *sqlstore.Tx) error {
				s, err := tx.SessionBySecret(context.Background(), sqlstore.HashToken(c.Value))
				if err == nil {
					raw = []byte(s.ID)
				}
				return err
			})
			if len(raw) == 0 {
				t.Fatal("session not found by hash")
			}
		})
	}
}

func TestLogin_FailuresAreIndistinguishable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "acme", "off@example.org", pw)
	_ = e.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		tn, _ := tx.TenantBySlug(context.Background(), "acme")
		u, _ := tx.Users(tn.ID).ByEmail(context.Background(), "off@example.org")
		u.Status = tutela.StatusDisabled
		return tx.Users(tn.ID).Update(context.Background(), u)
	})
	cases := []string{
		loginBody("acme", "ana@example.org", pw+"x"), // wrong password
		loginBody("acme", "nobody@example.org", pw),  // unknown user
		loginBody("nope", "ana@example.org", pw),     // unknown tenant
		loginBody("acme", "off@example.org", pw),     // disabled user, right password
	}
	var bodies []string
	for i, c := range cases {
		res, body := e.req(t, "POST", "/v1/auth/login", c, fmt.Sprintf("198.51.100.%d", 1+i), nil)
		eb := wantError(t, res, body, 401, tutela.EINVALIDCREDENTIALS)
		bodies = append(bodies, eb.Error.Message)
		if len(res.Cookies()) != 0 {
			t.Fatal("cookie set on failed login")
		}
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("failure messages differ: %q", bodies)
		}
	}
}

func TestLogin_LockoutThenAutoUnlockWithFakeClock(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			e.seed(t, "acme", "ana@example.org", pw)
			// Five failures from five sources (a distributed guess) lock the account.
			for i := range 5 {
				res, body := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", "wrong guess"),
					fmt.Sprintf("203.0.113.%d", 1+i), nil)
				wantError(t, res, body, 401, tutela.EINVALIDCREDENTIALS)
			}
			// Now even the right password from a new source is refused, without checking it.
			res, body := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "192.0.2.200", nil)
			wantError(t, res, body, 429, tutela.ETOOMANYATTEMPTS)
			if ra := res.Header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Fatalf("Retry-After %q", ra)
			}
			// A nonexistent account under the same attack looks exactly the same.
			for i := range 5 {
				e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ghost@example.org", "wrong guess"),
					fmt.Sprintf("203.0.113.%d", 1+i), nil)
			}
			res, body = e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ghost@example.org", pw), "192.0.2.200", nil)
			wantError(t, res, body, 429, tutela.ETOOMANYATTEMPTS)
			// Auto-unlock after the first lock period (1 minute).
			e.clock.Add(61 * time.Second)
			e.login(t, "acme", "ana@example.org", pw, "192.0.2.200")
			// The lock was recorded for security staff.
			var kinds []string
			_ = e.db.View(context.Background(), func(tx *sqlstore.Tx) error {
				tn, _ := tx.TenantBySlug(context.Background(), "acme")
				ev, err := tx.SecurityEvents(context.Background(), tn.ID, 50)
				for _, x := range ev {
					kinds = append(kinds, x.Kind)
				}
				return err
			})
			if !strings.Contains(strings.Join(kinds, ","), "account_locked") {
				t.Fatalf("no account_locked event: %v", kinds)
			}
		})
	}
}

func TestLogin_BackoffGrowsExponentially(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	var waits []string
	for round := range 3 {
		for i := range 5 {
			e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", "nope"), fmt.Sprintf("203.0.113.%d", 1+i+5*round), nil)
		}
		res, _ := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "192.0.2.9", nil)
		if res.StatusCode != 429 {
			t.Fatalf("round %d not locked: %d", round, res.StatusCode)
		}
		waits = append(waits, res.Header.Get("Retry-After"))
		e.clock.Add(16 * time.Minute)
	}
	if strings.Join(waits, ",") != "60,120,240" {
		t.Fatalf("lock durations %v, want 60,120,240 s", waits)
	}
}

func TestLogin_OneIPCannotLockTheUserOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	attacker, victim := "203.0.113.66", "192.0.2.10"
	// The attacker hammers the account for an hour from one IP, as fast as it is allowed.
	throttled := 0
	for minute := 0; minute < 60; minute++ {
		for range 10 {
			res, _ := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", "guess"), attacker, nil)
			if res.StatusCode == 429 {
				throttled++
			}
		}
		e.clock.Add(time.Minute)
		// The real user, from their own IP, can sign in at any moment.
		if minute%7 == 0 {
			e.login(t, "acme", "ana@example.org", pw, victim)
		}
	}
	if throttled == 0 {
		t.Fatal("the attacking IP was never throttled")
	}
}

func TestLogin_CredentialStuffingFromOneIPIsBlocked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	stuffer := "203.0.113.77"
	var status int
	for i := range 60 {
		res, _ := e.req(t, "POST", "/v1/auth/login", loginBody("acme", fmt.Sprintf("user%d@example.org", i), "Password1!"), stuffer, nil)
		status = res.StatusCode
	}
	if status != 429 {
		t.Fatalf("after 60 accounts from one IP: %d, want 429", status)
	}
	// The IP is blocked even for a correct password; other IPs are not.
	res, _ := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), stuffer, nil)
	if res.StatusCode != 429 {
		t.Fatalf("blocked IP got %d", res.StatusCode)
	}
	e.login(t, "acme", "ana@example.org", pw, "192.0.2.55")
}

func TestAdmin_UnlockClearsLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, u := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	admin := e.login(t, "acme", "admin@example.org", pw, "192.0.2.2")
	for i := range 5 {
		e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", "nope"), fmt.Sprintf("203.0.113.%d", 1+i), nil)
	}
	if res, _ := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "", nil); res.StatusCode != 429 {
		t.Fatal("not locked")
	}
	res, body := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/unlock", "", "", admin.AccessToken)
	if res.StatusCode != 204 {
		t.Fatalf("unlock: %d %s", res.StatusCode, body)
	}
	e.login(t, "acme", "ana@example.org", pw, "")
}

func TestSessions_ListRevokeAndTimeouts(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			e.seed(t, "acme", "ana@example.org", pw)
			a := e.login(t, "acme", "ana@example.org", pw, "192.0.2.1")
			b := e.login(t, "acme", "ana@example.org", pw, "192.0.2.2")
			c := e.login(t, "acme", "ana@example.org", pw, "192.0.2.3")
			res, body := e.req(t, "GET", "/v1/auth/sessions", "", "", a.cookie)
			var list struct {
				Sessions []struct {
					ID      string `json:"id"`
					Current bool   `json:"current"`
					IP      string `json:"ip"`
				} `json:"sessions"`
			}
			_ = json.Unmarshal(body, &list)
			if res.StatusCode != 200 || len(list.Sessions) != 3 {
				t.Fatalf("list: %d %s", res.StatusCode, body)
			}
			for _, s := range list.Sessions {
				if s.Current != (s.ID == a.SessionID) {
					t.Fatalf("current flag wrong: %+v", list.Sessions)
				}
			}
			// Revoke b by ID: its cookie and its access token stop at once.
			if res, _ := e.req(t, "DELETE", "/v1/auth/sessions/"+b.SessionID, "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("delete: %d", res.StatusCode)
			}
			for _, auth := range []any{b.cookie, b.AccessToken} {
				res, body := e.req(t, "GET", "/v1/auth/me", "", "", auth)
				wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
			}
			// Another user's session ID is not found.
			res, body = e.req(t, "DELETE", "/v1/auth/sessions/"+tutela.NewID(), "", "", a.cookie)
			wantError(t, res, body, 404, tutela.ENOTFOUND)
			// Delete all others keeps the current one.
			if res, _ := e.req(t, "DELETE", "/v1/auth/sessions", "", "", a.cookie); res.StatusCode != 200 {
				t.Fatalf("delete others: %d", res.StatusCode)
			}
			if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", c.cookie); res.StatusCode != 401 {
				t.Fatalf("other session survived: %d", res.StatusCode)
			}
			if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", a.cookie); res.StatusCode != 200 {
				t.Fatalf("current session revoked: %d", res.StatusCode)
			}
			// Idle timeout: 15 minutes without activity.
			e.clock.Add(16 * time.Minute)
			res, body = e.req(t, "GET", "/v1/auth/me", "", "", a.cookie)
			wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
			// Absolute timeout: activity every 10 minutes does not stretch a session past 12 h.
			f := e.login(t, "acme", "ana@example.org", pw, "192.0.2.4")
			for elapsed := time.Duration(0); elapsed < 12*time.Hour-10*time.Minute; elapsed += 10 * time.Minute {
				e.clock.Add(10 * time.Minute)
				if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", f.cookie); res.StatusCode != 200 {
					t.Fatalf("active session dropped after %v", elapsed)
				}
			}
			e.clock.Add(11 * time.Minute)
			res, body = e.req(t, "GET", "/v1/auth/me", "", "", f.cookie)
			wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
			// Logout ends the session.
			g := e.login(t, "acme", "ana@example.org", pw, "")
			if res, _ := e.req(t, "POST", "/v1/auth/logout", "", "", g.AccessToken); res.StatusCode != 204 {
				t.Fatalf("logout %d", res.StatusCode)
			}
			if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", g.cookie); res.StatusCode != 401 {
				t.Fatalf("session alive after logout: %d", res.StatusCode)
			}
		})
	}
}

func TestSessions_CrossSiteCookieWriteRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	r := httptest.NewRequest("POST", "/v1/auth/logout", nil)
	r.AddCookie(g.cookie)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	if rec.Code != 403 {
		t.Fatalf("cross-site logout with cookie: %d", rec.Code)
	}
	r = httptest.NewRequest("POST", "/v1/auth/logout", nil)
	r.AddCookie(g.cookie)
	r.Header.Set("Origin", "https://evil.example")
	rec = httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	if rec.Code != 403 {
		t.Fatalf("foreign-origin logout with cookie: %d", rec.Code)
	}
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", g.cookie); res.StatusCode != 200 {
		t.Fatal("refused request still ended the session")
	}
	// Reads too: a cross-site GET (say, a link to an export) must not ride on the cookie.
	for _, site := range []string{"cross-site", "same-site"} {
		r = httptest.NewRequest("GET", "/v1/auth/sessions", nil)
		r.AddCookie(g.cookie)
		r.Header.Set("Sec-Fetch-Site", site)
		rec = httptest.NewRecorder()
		e.srv.ServeHTTP(rec, r)
		if rec.Code != 403 {
			t.Fatalf("%s GET with cookie: %d", site, rec.Code)
		}
	}
	// The same request from the same origin, or with a bearer token, is fine.
	r = httptest.NewRequest("GET", "/v1/auth/sessions", nil)
	r.AddCookie(g.cookie)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	rec = httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	if rec.Code != 200 {
		t.Fatalf("same-origin GET with cookie: %d", rec.Code)
	}
	r = httptest.NewRequest("GET", "/v1/auth/sessions", nil)
	r.Header.Set("Authorization", "Bearer "+g.AccessToken)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	rec = httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	if rec.Code != 200 {
		t.Fatalf("cross-site GET with a bearer token: %d", rec.Code)
	}
}

func TestRefresh_RotatesAndReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, _ := e.seed(t, "acme", "ana@example.org", pw)
			g := e.login(t, "acme", "ana@example.org", pw, "")
			refresh := func(rt string) (*http.Response, grant, []byte) {
				res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+rt+`"}`, "", nil)
				var ng grant
				_ = json.Unmarshal(body, &ng)
				return res, ng, body
			}
			res, g2, body := refresh(g.RefreshToken)
			if res.StatusCode != 200 || g2.RefreshToken == g.RefreshToken || g2.SessionID != g.SessionID {
				t.Fatalf("refresh: %d %s", res.StatusCode, body)
			}
			_, g3, _ := refresh(g2.RefreshToken)
			// An attacker replays the first, already used token.
			res, _, body = refresh(g.RefreshToken)
			wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
			// The whole family is dead, including the newest token, and the session too.
			res, _, body = refresh(g3.RefreshToken)
			wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
			if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", g.cookie); res.StatusCode != 401 {
				t.Fatal("session survived refresh-token reuse")
			}
			if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", g3.AccessToken); res.StatusCode != 401 {
				t.Fatal("access token survived refresh-token reuse")
			}
			var kinds []string
			_ = e.db.View(context.Background(), func(tx *sqlstore.Tx) error {
				ev, err := tx.SecurityEvents(context.Background(), tn.ID, 10)
				for _, x := range ev {
					kinds = append(kinds, x.Kind)
				}
				return err
			})
			if !strings.Contains(strings.Join(kinds, ","), "refresh_reuse_detected") {
				t.Fatalf("no refresh_reuse_detected event: %v", kinds)
			}
			// Garbage and unknown tokens are refused the same way.
			for _, bad := range []string{"", "x", strings.Repeat("A", 43)} {
				res, _, body := refresh(bad)
				wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
			}
		})
	}
}

func TestRefresh_BoundedBySessionLifetime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	rt := g.RefreshToken
	for elapsed := time.Duration(0); elapsed < 11*time.Hour; elapsed += 10 * time.Minute {
		e.clock.Add(10 * time.Minute)
		res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+rt+`"}`, "", nil)
		if res.StatusCode != 200 {
			t.Fatalf("refresh at %v: %d %s", elapsed, res.StatusCode, body)
		}
		var ng grant
		_ = json.Unmarshal(body, &ng)
		rt = ng.RefreshToken
	}
	e.clock.Add(70 * time.Minute) // past 12 h absolute
	res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+rt+`"}`, "", nil)
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
}

func TestPasswordChange_EndsEverySessionAndToken(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			e.seed(t, "acme", "ana@example.org", pw)
			old := e.login(t, "acme", "ana@example.org", pw, "")
			other := e.login(t, "acme", "ana@example.org", pw, "")
			const next = "copper willow canyon 58 horizon"
			body := `{"current_password":"wrong","new_password":"` + next + `"}`
			res, b := e.req(t, "POST", "/v1/auth/password", body, "", old.AccessToken)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "current_password" {
				t.Fatalf("field %q", eb.Error.Field)
			}
			body = `{"current_password":"` + pw + `","new_password":"` + pw + `"}`
			res, b = e.req(t, "POST", "/v1/auth/password", body, "", old.AccessToken)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "new_password" {
				t.Fatalf("reusing the current password: field %q", eb.Error.Field)
			}
			body = `{"current_password":"` + pw + `","new_password":"` + next + `"}`
			res, b = e.req(t, "POST", "/v1/auth/password", body, "", old.AccessToken)
			if res.StatusCode != 200 {
				t.Fatalf("change: %d %s", res.StatusCode, b)
			}
			var fresh grant
			_ = json.Unmarshal(b, &fresh)
			// Old access tokens (tv is stale), cookies and refresh tokens all stop working.
			for _, auth := range []any{old.AccessToken, old.cookie, other.AccessToken, other.cookie} {
				if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", auth); res.StatusCode != 401 {
					t.Fatalf("credential survived password change: %T %d", auth, res.StatusCode)
				}
			}
			if res, _ := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+other.RefreshToken+`"}`, "", nil); res.StatusCode != 401 {
				t.Fatal("refresh token survived password change")
			}
			if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", fresh.AccessToken); res.StatusCode != 200 {
				t.Fatal("fresh grant does not work")
			}
			// The old password no longer signs in; the new one does; the old one is in history.
			res, b = e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "192.0.2.77", nil)
			wantError(t, res, b, 401, tutela.EINVALIDCREDENTIALS)
			e.login(t, "acme", "ana@example.org", next, "192.0.2.78")
		})
	}
}

func TestAccessToken_ForgedExpiredAndAlgNoneRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	parts := strings.Split(g.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", g.AccessToken)
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	claims["tv"] = 99
	forgedPayload, _ := json.Marshal(claims)
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forgedPayload) + "." + parts[2]
	sig := []byte(parts[2])
	sig[5] ^= 1
	flipped := parts[0] + "." + parts[1] + "." + string(sig)
	for name, tok := range map[string]string{"alg none": none, "forged claims": forged, "flipped signature": flipped, "garbage": "abc"} {
		res, body := e.req(t, "GET", "/v1/auth/me", "", "", tok)
		wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
		if res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	e.clock.Add(6 * time.Minute)
	res, body := e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken)
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
}

func TestTenantIsolation_AdminsCannotReachOtherTenants(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			ta, _ := e.seed(t, "tenant-a", "admin-a@example.org", pw, "program_admin")
			tb, ub := e.seed(t, "tenant-b", "user-b@example.org", pw)
			e.seed(t, "tenant-a", "plain-a@example.org", pw)
			adminA := e.login(t, "tenant-a", "admin-a@example.org", pw, "")
			plainA := e.login(t, "tenant-a", "plain-a@example.org", pw, "")
			// Every users endpoint aimed at tenant B, by ID or slug, with B's real user ID,
			// answers 404 exactly like a tenant that does not exist.
			for _, ref := range []string{tb.ID, tb.Slug, tutela.NewID(), "no-such-tenant"} {
				for _, c := range []struct{ method, path, body string }{
					{"GET", "/v1/tenants/" + ref, ""},
					{"GET", "/v1/tenants/" + ref + "/users", ""},
					{"POST", "/v1/tenants/" + ref + "/users", `{"email":"x@example.org"}`},
					{"GET", "/v1/tenants/" + ref + "/users/" + ub.ID, ""},
					{"PATCH", "/v1/tenants/" + ref + "/users/" + ub.ID, `{"display_name":"pwned"}`},
					{"DELETE", "/v1/tenants/" + ref + "/users/" + ub.ID, ""},
					{"POST", "/v1/tenants/" + ref + "/users/" + ub.ID + "/disable", ""},
					{"POST", "/v1/tenants/" + ref + "/users/" + ub.ID + "/revoke-sessions", ""},
					{"POST", "/v1/tenants/" + ref + "/users/" + ub.ID + "/unlock", ""},
					{"POST", "/v1/tenants/" + ref + "/users/" + ub.ID + "/password-reset", ""},
				} {
					res, body := e.req(t, c.method, c.path, c.body, "", adminA.AccessToken)
					wantError(t, res, body, 404, tutela.ENOTFOUND)
				}
			}
			// B's user ID through A's own tenant path is not found either.
			res, body := e.req(t, "GET", "/v1/tenants/"+ta.ID+"/users/"+ub.ID, "", "", adminA.AccessToken)
			wantError(t, res, body, 404, tutela.ENOTFOUND)
			// A non-admin of A is forbidden in A, and tenants API is super-admin only.
			res, body = e.req(t, "GET", "/v1/tenants/"+ta.ID+"/users", "", "", plainA.AccessToken)
			wantError(t, res, body, 403, tutela.EFORBIDDEN)
			res, body = e.req(t, "GET", "/v1/tenants", "", "", adminA.AccessToken)
			wantError(t, res, body, 403, tutela.EFORBIDDEN)
			// And A's admin can manage A.
			res, body = e.req(t, "POST", "/v1/tenants/"+ta.Slug+"/users", `{"email":"new@example.org","display_name":"New"}`, "", adminA.AccessToken)
			if res.StatusCode != 201 {
				t.Fatalf("admin create in own tenant: %d %s", res.StatusCode, body)
			}
			var ubAfter *tutela.User
			_ = e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) {
				ubAfter, err = tx.Users(tb.ID).Get(context.Background(), ub.ID)
				return err
			})
			if ubAfter == nil || ubAfter.Status != tutela.StatusActive || ubAfter.DisplayName == "pwned" {
				t.Fatalf("tenant B user changed: %+v", ubAfter)
			}
		})
	}
}

func TestEveryProtectedRoute_RequiresAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	for _, r := range e.srv.Routes() {
		if r.Public {
			continue
		}
		path := strings.NewReplacer("{tenant}", "acme", "{id}", tutela.NewID()).Replace(r.Pattern)
		res, body := e.req(t, r.Method, path, "", "", nil)
		wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
		res, body = e.req(t, r.Method, path, "", "", "not-a-token")
		wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
	}
}

func TestAdminReset_SingleUseTokenSetsPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, u := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	user := e.login(t, "acme", "ana@example.org", pw, "")
	res, body := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/password-reset", "", "", admin.AccessToken)
	var out struct {
		Token string `json:"reset_token"`
	}
	_ = json.Unmarshal(body, &out)
	if res.StatusCode != 201 || len(out.Token) != 64 {
		t.Fatalf("reset issue: %d %s", res.StatusCode, body)
	}
	const next = "saffron glacier parcel 17 orchard"
	reset := `{"token":"` + out.Token + `","new_password":"` + next + `"}`
	if res, b := e.req(t, "POST", "/v1/auth/password/reset", reset, "", nil); res.StatusCode != 204 {
		t.Fatalf("reset: %d %s", res.StatusCode, b)
	}
	res, body = e.req(t, "POST", "/v1/auth/password/reset", reset, "", nil)
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", user.cookie); res.StatusCode != 401 {
		t.Fatal("session survived reset")
	}
	e.login(t, "acme", "ana@example.org", next, "")
	// Expiry: a second token is dead after 30 minutes.
	_, body = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/password-reset", "", "", admin.AccessToken)
	_ = json.Unmarshal(body, &out)
	e.clock.Add(httpapi.ResetTokenTTL + time.Second)
	res, body = e.req(t, "POST", "/v1/auth/password/reset", `{"token":"`+out.Token+`","new_password":"another fine pass 99 zebra"}`, "", nil)
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
}

func TestAdmin_DisableEndsSessionsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, u := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	user := e.login(t, "acme", "ana@example.org", pw, "")
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/disable", "", "", admin.AccessToken); res.StatusCode != 200 {
		t.Fatalf("disable: %d %s", res.StatusCode, b)
	}
	for _, auth := range []any{user.AccessToken, user.cookie} {
		if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", auth); res.StatusCode != 401 {
			t.Fatalf("disabled user still authenticated with %T", auth)
		}
	}
	res, body := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "192.0.2.99", nil)
	wantError(t, res, body, 401, tutela.EINVALIDCREDENTIALS)
}

// A failed sign-in costs the same argon2id work whether or not the account (or the tenant)
// exists: one computation, over a dummy hash when there is no account, so its time does not tell
// which. Counted rather than timed, so the test says the same on a loaded machine.
func TestLogin_UnknownAccountCostsTheSameHashWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	work := func(tenant, email string, i int) int64 {
		t.Helper()
		before := e.ids.Hasher.Computed()
		res, b := e.req(t, "POST", "/v1/auth/login", loginBody(tenant, email, "wrong password"), fmt.Sprintf("198.18.0.%d", 1+i), nil)
		wantError(t, res, b, 401, tutela.EINVALIDCREDENTIALS)
		e.clock.Add(20 * time.Minute) // keep throttles out of it
		return e.ids.Hasher.Computed() - before
	}
	if known := work("acme", "ana@example.org", 0); known != 1 {
		t.Fatalf("a wrong password cost %d hash computations, want 1", known)
	}
	for i, c := range []struct{ tenant, email string }{{"acme", "nobody@example.org"}, {"nowhere", "ana@example.org"}} {
		if got := work(c.tenant, c.email, i+1); got != 1 {
			t.Errorf("%s/%s: %d hash computations, want 1 like an existing account", c.tenant, c.email, got)
		}
	}
}

func TestAdmin_RevokeTenantSessionsSignsEveryoneOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	ta, _ := e.seed(t, "tenant-a", "admin@example.org", pw, "program_admin")
	e.seed(t, "tenant-a", "ana@example.org", pw)
	e.seed(t, "tenant-b", "bob@example.org", pw)
	admin := e.login(t, "tenant-a", "admin@example.org", pw, "")
	ana := e.login(t, "tenant-a", "ana@example.org", pw, "")
	bob := e.login(t, "tenant-b", "bob@example.org", pw, "")
	res, body := e.req(t, "POST", "/v1/tenants/tenant-b/revoke-sessions", "", "", admin.AccessToken)
	wantError(t, res, body, 404, tutela.ENOTFOUND)
	res, body = e.req(t, "POST", "/v1/tenants/"+ta.ID+"/revoke-sessions", "", "", admin.AccessToken)
	if res.StatusCode != 200 || !strings.Contains(string(body), `"revoked":2`) {
		t.Fatalf("revoke: %d %s", res.StatusCode, body)
	}
	for _, auth := range []any{ana.AccessToken, ana.cookie, admin.AccessToken} {
		if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", auth); res.StatusCode != 401 {
			t.Fatalf("tenant A credential survived: %T", auth)
		}
	}
	if res, _ := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+ana.RefreshToken+`"}`, "", nil); res.StatusCode != 401 {
		t.Fatal("refresh token survived")
	}
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", bob.AccessToken); res.StatusCode != 200 {
		t.Fatal("tenant B was signed out too")
	}
}

func TestLogin_AfterLongIdleSigningKeyIsRenewed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	e.login(t, "acme", "ana@example.org", pw, "")
	// No rotation runs in tests: after 100 days the only key is past its hard retirement.
	e.clock.Add(100 * 24 * time.Hour)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	if res, b := e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken); res.StatusCode != 200 {
		t.Fatalf("token after renewal: %d %s", res.StatusCode, b)
	}
}

func TestTenantPolicies_CompositionAndSessionTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	root := e.login(t, "root", "root@example.org", pw, "")
	body := `{"password_composition":{"digit":2,"symbol":1},"session_idle_seconds":120,"session_absolute_seconds":600}`
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, body, "", root.AccessToken); res.StatusCode != 200 {
		t.Fatalf("tenant policy: %d %s", res.StatusCode, b)
	}
	ana := e.login(t, "acme", "ana@example.org", pw, "")
	// The composition rule applies to the tenant's password changes.
	res, b := e.req(t, "POST", "/v1/auth/password", `{"current_password":"`+pw+`","new_password":"violet quartz lantern harbour x"}`, "", ana.cookie)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "new_password" || !strings.Contains(eb.Error.Message, "digit") {
		t.Fatalf("composition not enforced: %+v", eb)
	}
	res, b = e.req(t, "POST", "/v1/auth/password", `{"current_password":"`+pw+`","new_password":"violet quartz lantern 42 harbour!"}`, "", ana.cookie)
	if res.StatusCode != 200 {
		t.Fatalf("compliant password refused: %d %s", res.StatusCode, b)
	}
	var g grant
	_ = json.Unmarshal(b, &g)
	for _, c := range res.Cookies() {
		if c.Name == httpapi.SessionCookie {
			g.cookie = c
		}
	}
	// The tenant's idle timeout (2 min) applies, not the server default (15 min).
	e.clock.Add(3 * time.Minute)
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", g.cookie); res.StatusCode != 401 {
		t.Fatalf("tenant idle timeout not applied: %d", res.StatusCode)
	}
	res, b = e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"password_composition":{"digit":99}}`, "", root.AccessToken)
	wantError(t, res, b, 400, tutela.EINVALID)
}

func TestLogin_LegacyBcryptHashIsReplacedWithArgon2id(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, u := e.seed(t, "acme", "ana@example.org", pw)
	legacy, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	_ = e.db.Update(ctxBG, func(tx *sqlstore.Tx) error {
		return tx.Users(tn.ID).RehashPassword(ctxBG, u.ID, mustHash(t, e, tn.ID, u.ID), string(legacy))
	})
	if h := mustHash(t, e, tn.ID, u.ID); !strings.HasPrefix(h, "$2a$") {
		t.Fatalf("setup: stored %q", h)
	}
	e.login(t, "acme", "ana@example.org", pw, "")
	if h := mustHash(t, e, tn.ID, u.ID); !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("imported bcrypt hash not replaced at sign-in: %q", h)
	}
	e.login(t, "acme", "ana@example.org", pw, "") // and the new hash verifies
}

func mustHash(t *testing.T, e *env, tenantID, userID string) string {
	t.Helper()
	var h string
	if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) (err error) {
		h, _, err = tx.Users(tenantID).PasswordHash(ctxBG, userID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestOneTimeTokens_EndWithPasswordChangeResetOrDisable: a reset code, setup token or pending
// MFA challenge issued before a password change, a reset or disabling the account cannot be
// redeemed after it.
func TestOneTimeTokens_EndWithPasswordChangeResetOrDisable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, u := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	issue := func() string {
		t.Helper()
		res, body := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/password-reset", "", "", admin.AccessToken)
		var out struct {
			Token string `json:"reset_token"`
		}
		_ = json.Unmarshal(body, &out)
		if res.StatusCode != 201 {
			t.Fatalf("reset issue: %d %s", res.StatusCode, body)
		}
		return out.Token
	}
	redeem := func(tok, next string) (*http.Response, []byte) {
		return e.req(t, "POST", "/v1/auth/password/reset", `{"token":"`+tok+`","new_password":"`+next+`"}`, "", nil)
	}
	// Two codes; the first resets the password, the second is dead.
	first, second := issue(), issue()
	if res, b := redeem(first, "saffron glacier parcel 17 orchard"); res.StatusCode != 204 {
		t.Fatalf("reset: %d %s", res.StatusCode, b)
	}
	res, b := redeem(second, "another fine pass 99 zebra")
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
	// A code outstanding when the user changes their password is dead.
	user := e.login(t, "acme", "ana@example.org", "saffron glacier parcel 17 orchard", "")
	pending := issue()
	body := `{"current_password":"saffron glacier parcel 17 orchard","new_password":"copper willow canyon 58 horizon"}`
	if res, b := e.req(t, "POST", "/v1/auth/password", body, "", user.AccessToken); res.StatusCode != 200 {
		t.Fatalf("change: %d %s", res.StatusCode, b)
	}
	res, b = redeem(pending, "another fine pass 99 zebra")
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
	// A code outstanding when the user is disabled is dead, even once they are enabled again.
	pending = issue()
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/disable", "", "", admin.AccessToken); res.StatusCode != 200 {
		t.Fatalf("disable: %d %s", res.StatusCode, b)
	}
	res, b = redeem(pending, "another fine pass 99 zebra")
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/enable", "", "", admin.AccessToken); res.StatusCode != 200 {
		t.Fatalf("enable: %d %s", res.StatusCode, b)
	}
	res, b = redeem(pending, "another fine pass 99 zebra")
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
}

// TestMFAChallenge_EndsWithPasswordChange: a sign-in begun with the old password (second factor
// pending) cannot be completed once the password has changed.
func TestMFAChallenge_EndsWithPasswordChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "ana@example.org", pw)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	secret := e.enrolTOTP(t, g.cookie)
	ch := e.passwordStep(t, "acme", "ana@example.org", "")
	body := `{"current_password":"` + pw + `","new_password":"copper willow canyon 58 horizon"}`
	if res, b := e.req(t, "POST", "/v1/auth/password", body, "", g.cookie); res.StatusCode != 200 {
		t.Fatalf("change: %d %s", res.StatusCode, b)
	}
	if code, _, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`); code != 401 {
		t.Fatalf("challenge from before the password change completed: %d %s", code, b)
	}
}

// TestRefresh_LeavesSessionCookieAlone: refreshing keeps the session, so the response sets no
// session cookie (an empty one would sign the browser out).
func TestRefresh_LeavesSessionCookieAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	if g.cookie == nil || g.RefreshToken == "" {
		t.Fatalf("login gave cookie %v and refresh token %q", g.cookie, g.RefreshToken)
	}
	res, b := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+g.RefreshToken+`"}`, "", g.cookie)
	if res.StatusCode != 200 {
		t.Fatalf("refresh: %d %s", res.StatusCode, b)
	}
	for _, c := range res.Cookies() {
		if c.Name == httpapi.SessionCookie {
			t.Fatalf("refresh set the session cookie: %q", c.String())
		}
	}
	var ng grant
	_ = json.Unmarshal(b, &ng)
	if ng.AccessToken == "" || ng.SessionID != g.SessionID {
		t.Fatalf("refresh grant: %s", b)
	}
	if res, b := e.req(t, "GET", "/v1/auth/me", "", "", g.cookie); res.StatusCode != 200 {
		t.Fatalf("cookie after refresh: %d %s", res.StatusCode, b)
	}
}
