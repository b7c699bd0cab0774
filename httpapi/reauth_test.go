package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// ASVS 7.5.2: ending other sessions needs freshly re-entered credentials. A fresh sign-in
// counts; after five minutes the password (or a second factor) must be entered again. The
// password check is throttled per user, so a stolen session cannot guess the password.
func TestSessions_EndingOthersNeedsFreshAuthentication(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			e.seed(t, "acme", "ana@example.org", pw)
			a := e.login(t, "acme", "ana@example.org", pw, "192.0.2.1")
			b := e.login(t, "acme", "ana@example.org", pw, "192.0.2.2")
			c := e.login(t, "acme", "ana@example.org", pw, "192.0.2.3")

			e.clock.Add(6 * time.Minute) // the sign-ins are no longer fresh
			// A refreshed access token keeps the sign-in time: refreshing is not re-authenticating.
			res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+a.RefreshToken+`"}`, "", nil)
			var ra grant
			if err := json.Unmarshal(body, &ra); err != nil || res.StatusCode != 200 || ra.AccessToken == "" {
				t.Fatalf("refresh: %d %s", res.StatusCode, body)
			}
			for _, auth := range []any{a.cookie, ra.AccessToken} {
				for _, path := range []string{"/v1/auth/sessions", "/v1/auth/sessions/" + b.SessionID} {
					res, body := e.req(t, "DELETE", path, "", "", auth)
					wantError(t, res, body, 401, tutela.EREAUTHREQUIRED)
					if h := res.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_user_authentication"`) ||
						!strings.Contains(h, "max_age=300") {
						t.Fatalf("WWW-Authenticate = %q", h)
					}
				}
			}
			if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", b.cookie); res.StatusCode != 200 {
				t.Fatalf("a refused revocation ended the session: %d", res.StatusCode)
			}

			// Wrong passwords count per user; the fifth locks re-entry (and password change) for a while.
			for i := range 5 {
				res, body := e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"not-the-password-`+string(rune('a'+i))+`"}`, "", a.cookie)
				wantError(t, res, body, 401, tutela.EINVALIDCREDENTIALS)
				if strings.Contains(string(body), "not-the-password") {
					t.Fatal("the error echoes the password")
				}
			}
			res, body = e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"`+pw+`"}`, "", b.cookie)
			wantError(t, res, body, 429, tutela.ETOOMANYATTEMPTS)
			if res.Header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After on the lock")
			}
			res, body = e.req(t, "POST", "/v1/auth/password", `{"current_password":"`+pw+`","new_password":"an entirely new passphrase 42"}`, "", b.cookie)
			wantError(t, res, body, 429, tutela.ETOOMANYATTEMPTS)
			res, body = e.req(t, "DELETE", "/v1/auth/sessions", "", "", a.cookie)
			wantError(t, res, body, 401, tutela.EREAUTHREQUIRED)

			// The lock ends by itself; the right password then makes the session fresh.
			e.clock.Add(2 * time.Minute)
			if res, body := e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"`+pw+`"}`, "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("reauthenticate: %d %s", res.StatusCode, body)
			}
			if res, body := e.req(t, "DELETE", "/v1/auth/sessions/"+b.SessionID, "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("delete after reauthentication: %d %s", res.StatusCode, body)
			}
			// The freshness is the session's: a's access token (same session) may end c too.
			e.clock.Add(time.Minute)
			if res, body := e.req(t, "DELETE", "/v1/auth/sessions", "", "", ra.AccessToken); res.StatusCode != 200 {
				t.Fatalf("delete others with the session's token: %d %s", res.StatusCode, body)
			}
			if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", c.cookie); res.StatusCode != 401 {
				t.Fatalf("other session survived: %d", res.StatusCode)
			}
			// And it does not last: five minutes on, the password is needed again.
			d := e.login(t, "acme", "ana@example.org", pw, "192.0.2.4")
			e.clock.Add(5*time.Minute + time.Second)
			res, body = e.req(t, "DELETE", "/v1/auth/sessions/"+d.SessionID, "", "", a.cookie)
			wantError(t, res, body, 401, tutela.EREAUTHREQUIRED)
			// Ending the current session (signing out) needs nothing more.
			if res, body := e.req(t, "DELETE", "/v1/auth/sessions/"+a.SessionID, "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("end own session: %d %s", res.StatusCode, body)
			}

			recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "session.reauthenticate", Limit: 10})
			if err != nil || len(recs) != 1 || recs[0].Event.TargetID != a.SessionID {
				t.Fatalf("session.reauthenticate events: %d, %v", len(recs), err)
			}
			locks := 0
			err = e.db.View(ctxBG, func(tx *sqlstore.Tx) error {
				ev, err := tx.SecurityEvents(ctxBG, a.TenantID, 100)
				for _, x := range ev {
					if x.Kind == "password_check_locked" && x.UserID == a.UserID {
						locks++
					}
				}
				return err
			})
			if err != nil || locks != 1 {
				t.Fatalf("password_check_locked events: %d, %v", locks, err)
			}
		})
	}
}

// Re-authentication is for users in a session: a service account's token has none.
func TestReauthenticate_RefusesMalformedAndServiceAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	a := e.login(t, "acme", "ana@example.org", pw, "")
	for _, body := range []string{`{}`, `{"password":""}`, `{"password":1}`, `{"password":"x","extra":true}`, `not json`} {
		res, b := e.req(t, "POST", "/v1/auth/reauthenticate", body, "", a.cookie)
		wantError(t, res, b, 400, tutela.EINVALID)
	}
	// None of those counted towards the lock: five wrong passwords still get five answers.
	for range 5 {
		res, b := e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"wrong-password-here"}`, "", a.cookie)
		wantError(t, res, b, 401, tutela.EINVALIDCREDENTIALS)
	}
	res, b := e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"`+pw+`"}`, "", nil)
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
	// A service account has no session and no password to re-enter.
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	sa := e.createSA(t, tn.ID, admin.AccessToken, `{"name":"etl","permissions":[{"resource":"users","action":"READ"}]}`)
	_, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	res, b = e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"`+pw+`"}`, "192.0.2.10", tok["access_token"].(string))
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
}
