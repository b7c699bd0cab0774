package httpapi_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/mail"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// breachedPassword passes length and strength rules, so only the breach check can refuse it.
const breachedPassword = "crimson otter ledger 41 snowfall"

// breachIndex builds an offline breach index holding the SHA-1 of each password.
func breachIndex(t *testing.T, passwords ...string) *password.Index {
	t.Helper()
	var lines strings.Builder
	for _, p := range passwords {
		sum := sha1.Sum([]byte(p))
		fmt.Fprintf(&lines, "%s:%d\n", strings.ToUpper(hex.EncodeToString(sum[:])), 42)
	}
	path := filepath.Join(t.TempDir(), "breach.idx")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := password.ImportIndex(strings.NewReader(lines.String()), f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ix, err := password.OpenIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

// newBreachEnv is newEnv with a breach checker and the given sign-in configuration.
func newBreachEnv(t *testing.T, d sqlstore.Dialect, cfg identity.Config, breach password.Checker) *env {
	t.Helper()
	c := clocktest.New(time.Now().UTC())
	db := sqltest.Open(t, d, sqlstore.Options{Clock: c.Now})
	mailer := &mail.Recorder{}
	ids := newIdentity(t, db, c.Now, cfg, mailer)
	ids.Breach = breach // Deps are embedded; set before the server sees the service
	srv := httpapi.New(httpapi.Deps{DB: db, Identity: ids, Clock: c.Now, RateRPS: 1000, RateBurst: 1000})
	return &env{srv: checkedServer{Server: srv, t: t}, db: db, clock: c, ids: ids, mail: mailer}
}

func TestBreach_SetupAndChangeRefuseBreachedPassword(t *testing.T) {
	t.Parallel()
	ix := breachIndex(t, breachedPassword)
	if hit, err := ix.Breached(context.Background(), breachedPassword); err != nil || !hit {
		t.Fatalf("index does not hold the test password: %v %v", hit, err)
	}
	e := newBreachEnv(t, sqlstore.SQLite, identity.Config{}, ix)

	// Setup: the breached password is refused on the password field, and the token survives.
	tok := bootstrap(t, e)
	res, body := e.do(t, "POST", "/v1/auth/setup", setupBody(tok, breachedPassword))
	eb := wantError(t, res, body, 400, tutela.EINVALID)
	if eb.Error.Field != "password" || !strings.Contains(eb.Error.Message, "breach") {
		t.Fatalf("setup refusal: field %q message %q", eb.Error.Field, eb.Error.Message)
	}
	if res, body := e.do(t, "POST", "/v1/auth/setup", setupBody(tok, pw)); res.StatusCode != 204 {
		t.Fatalf("setup with a clean password after the refusal: %d %s", res.StatusCode, body)
	}

	// Change: the breached password is refused on new_password, and the old one still works.
	g := e.login(t, "acme", "ana@example.org", pw, "192.0.2.1")
	res, body = e.req(t, "POST", "/v1/auth/password",
		`{"current_password":"`+pw+`","new_password":"`+breachedPassword+`"}`, "", g.AccessToken)
	eb = wantError(t, res, body, 400, tutela.EINVALID)
	if eb.Error.Field != "new_password" || !strings.Contains(eb.Error.Message, "breach") {
		t.Fatalf("change refusal: field %q message %q", eb.Error.Field, eb.Error.Message)
	}
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken); res.StatusCode != 200 {
		t.Fatalf("refused change ended the session: %d", res.StatusCode)
	}
	e.login(t, "acme", "ana@example.org", pw, "192.0.2.2")
}

func TestBreach_AtLoginAllowsOnlyAPasswordChange(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ix := breachIndex(t, breachedPassword)
			e := newBreachEnv(t, d, identity.Config{BreachCheckAtLogin: true}, ix)
			tn, u := e.seed(t, "acme", "ana@example.org", breachedPassword)
			e.seed(t, "acme", "ben@example.org", pw)

			// A clean password signs in unrestricted.
			if g := e.login(t, "acme", "ben@example.org", pw, "192.0.2.9"); g.MustChangePassword {
				t.Fatal("clean password flagged must_change_password")
			}

			g := e.login(t, "acme", "ana@example.org", breachedPassword, "192.0.2.1")
			if !g.MustChangePassword {
				t.Fatal("breached password at login: must_change_password = false")
			}
			// The restricted session can do nothing else, with either credential.
			for _, auth := range []any{g.AccessToken, g.cookie} {
				res, body := e.req(t, "GET", "/v1/auth/sessions", "", "", auth)
				wantError(t, res, body, 403, tutela.EFORBIDDEN)
			}
			// The flag is stored, not only reported: a second sign-in is restricted too.
			if g2 := e.login(t, "acme", "ana@example.org", breachedPassword, "192.0.2.2"); !g2.MustChangePassword {
				t.Fatal("second sign-in with the breached password is not restricted")
			}
			// The new password is breach-checked too.
			res, body := e.req(t, "POST", "/v1/auth/password",
				`{"current_password":"`+breachedPassword+`","new_password":"`+breachedPassword+`"}`, "", g.AccessToken)
			if eb := wantError(t, res, body, 400, tutela.EINVALID); eb.Error.Field != "new_password" {
				t.Fatalf("field %q", eb.Error.Field)
			}

			const next = "copper willow canyon 58 horizon"
			res, body = e.req(t, "POST", "/v1/auth/password",
				`{"current_password":"`+breachedPassword+`","new_password":"`+next+`"}`, "", g.AccessToken)
			if res.StatusCode != 200 {
				t.Fatalf("password change from a restricted session: %d %s", res.StatusCode, body)
			}
			fresh := decodeGrant(t, body)
			if fresh.MustChangePassword {
				t.Fatal("must_change_password still true after the change")
			}
			if res, body := e.req(t, "GET", "/v1/auth/sessions", "", "", fresh.AccessToken); res.StatusCode != 200 {
				t.Fatalf("sessions after the change: %d %s", res.StatusCode, body)
			}
			if g := e.login(t, "acme", "ana@example.org", next, "192.0.2.3"); g.MustChangePassword {
				t.Fatal("sign-in with the new password is restricted")
			}

			var kinds []string
			_ = e.db.View(context.Background(), func(tx *sqlstore.Tx) error {
				ev, err := tx.SecurityEvents(context.Background(), tn.ID, 50)
				for _, x := range ev {
					if x.UserID == u.ID {
						kinds = append(kinds, x.Kind)
					}
				}
				return err
			})
			// Newest first: one breached_password_at_login (the second sign-in found the flag
			// already set), then the change.
			if got := strings.Join(kinds, ","); got != "password_changed,breached_password_at_login" {
				t.Fatalf("security events %q", got)
			}
		})
	}
}

func decodeGrant(t *testing.T, body []byte) grant {
	t.Helper()
	var g grant
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatalf("grant %s: %v", body, err)
	}
	return g
}

func TestLoginHistory_RecordsEachAttemptWithResultAndReason(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, u := e.seed(t, "acme", "ana@example.org", pw)
			type want struct{ ip, userID, result, reason string }
			var wants []want
			try := func(email, password, ip string, status int, w want) {
				t.Helper()
				e.clock.Add(time.Second) // distinct created_at, so newest-first order is defined
				res, body := e.req(t, "POST", "/v1/auth/login", loginBody("acme", email, password), ip, nil)
				if res.StatusCode != status {
					t.Fatalf("%s from %s: %d %s, want %d", email, ip, res.StatusCode, body, status)
				}
				wants = append(wants, w)
			}
			try("ana@example.org", pw, "192.0.2.1", 200, want{"192.0.2.1", u.ID, "success", ""})
			try("ana@example.org", "wrong", "192.0.2.2", 401, want{"192.0.2.2", u.ID, "failure", "wrong_password"})
			try("ghost@example.org", pw, "192.0.2.3", 401, want{"192.0.2.3", "", "failure", "unknown_user"})
			// Four more wrong passwords from four sources: five account failures lock it.
			for i := range 4 {
				ip := fmt.Sprintf("198.51.100.%d", 1+i)
				try("ana@example.org", "wrong", ip, 401, want{ip, u.ID, "failure", "wrong_password"})
			}
			// A throttled attempt appears too, attributed to the account it aimed at.
			e.clock.Add(time.Second)
			res, body := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "192.0.2.4", nil)
			wantError(t, res, body, 429, tutela.ETOOMANYATTEMPTS)
			wants = append(wants, want{"192.0.2.4", u.ID, "throttled", "locked"})

			var got []*sqlstore.LoginRecord
			err := e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) {
				got, err = tx.LoginHistory(context.Background(), tn.ID, "", 50)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, r := range got {
				lines = append(lines, fmt.Sprintf("%s %s %s %s", r.IP, r.UserID, r.Result, r.Reason))
				if r.TenantID != tn.ID {
					t.Errorf("record %+v", r)
				}
			}
			var wantLines []string
			for i := len(wants) - 1; i >= 0; i-- { // newest first
				w := wants[i]
				wantLines = append(wantLines, fmt.Sprintf("%s %s %s %s", w.ip, w.userID, w.result, w.reason))
			}
			if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
				t.Fatalf("login history:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
			}
			// Filtering by user leaves out the unknown-account attempt.
			err = e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) {
				got, err = tx.LoginHistory(context.Background(), tn.ID, u.ID, 50)
				return err
			})
			if err != nil || len(got) != len(wants)-1 {
				t.Fatalf("history for the user: %d records, %v; want %d", len(got), err, len(wants)-1)
			}
		})
	}
}

// TestLoginHistory_ThrottledAttemptVisibleToTenant: an attempt refused because the account is
// locked must show in the tenant's login history, attributed to the account, so security staff
// see an attack continuing against a locked account.
func TestLoginHistory_ThrottledAttemptVisibleToTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, u := e.seed(t, "acme", "ana@example.org", pw)
	for i := range 5 {
		e.clock.Add(time.Second)
		e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", "wrong"), fmt.Sprintf("198.51.100.%d", 1+i), nil)
	}
	e.clock.Add(time.Second)
	res, body := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "192.0.2.4", nil)
	wantError(t, res, body, 429, tutela.ETOOMANYATTEMPTS)
	var got []*sqlstore.LoginRecord
	err := e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) {
		got, err = tx.LoginHistory(context.Background(), tn.ID, "", 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("no login history")
	}
	if got[0].Result != "throttled" || got[0].Reason != "locked" || got[0].UserID != u.ID ||
		got[0].IP != "192.0.2.4" {
		t.Fatalf("newest history record %+v, want the throttled attempt", *got[0])
	}
}
