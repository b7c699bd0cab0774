package web_test

import (
	"context"
	"crypto/sha256"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"

	"tutela"
	"tutela/identity"
	"tutela/identity/identitytest"
	"tutela/sqlstore"
)

const account = "/t/" + slug + "/account"

// accountSignIn signs browser c in on the account page's own sign-in (password, then the TOTP
// code when the user has one).
func (e *env) accountSignIn(c *http.Client, pw, totpSecret string) {
	e.t.Helper()
	res, body := e.postAs(c, account+"/login", url.Values{"email": {"ann@example.org"}, "password": {pw}})
	if totpSecret != "" {
		wantStatus(e.t, res, body, http.StatusOK)
		if !strings.Contains(body, `id="code"`) {
			e.t.Fatalf("no second-factor step:\n%s", body)
		}
		res, body = e.postAs(c, account+"/login", url.Values{"code": {e.totp(totpSecret)}})
	}
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != account {
		e.t.Fatalf("account sign-in: %d %s\n%s", res.StatusCode, res.Header.Get("Location"), body)
	}
}

func (e *env) factor(u *tutela.User, typ string) *sqlstore.MFAFactor {
	e.t.Helper()
	fs, err := e.ids.Identity.MFA.Factors(context.Background(), u.TenantID, u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range fs {
		if f.Type == typ {
			return f
		}
	}
	return nil
}

func wantReauth(t *testing.T, res *http.Response, body, field string) {
	t.Helper()
	wantStatus(t, res, body, http.StatusOK)
	if !strings.Contains(body, `id="reauth-form"`) || !strings.Contains(body, `id="`+field+`"`) {
		t.Fatalf("want the re-authentication page asking %s:\n%s", field, body)
	}
}

func TestAccount_NeedsASessionOfThisTenant(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	res, _ := e.get(account)
	wantRedirect(t, res, account+"/login")
	res, body := e.get(account + "/login")
	wantStatus(t, res, body, http.StatusOK)
	for _, want := range []string{`id="email"`, `autocomplete="username webauthn"`, `id="password"`, `passkey-login.js`} {
		if !strings.Contains(body, want) {
			t.Errorf("account sign-in lacks %s", want)
		}
	}
	// Wrong password: the sign-in's one message, no session.
	res, body = e.post(account+"/login", url.Values{"email": {"ann@example.org"}, "password": {"not it at all"}})
	wantStatus(t, res, body, http.StatusUnauthorized)
	e.accountSignIn(e.client, userPW, "")
	res, body = e.get(account)
	wantStatus(t, res, body, http.StatusOK)
	if !strings.Contains(body, "ann@example.org") || !strings.Contains(body, `data-session-id="`) || !strings.Contains(body, "(this device)") {
		t.Fatalf("account page:\n%s", body)
	}
	// Another tenant's pages do not accept this tenant's session.
	ctx := context.Background()
	if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(ctx, &tutela.Tenant{Slug: "beta", Name: "Beta", Region: "eu"})
	}); err != nil {
		t.Fatal(err)
	}
	res, _ = e.get("/t/beta/account")
	wantRedirect(t, res, "/t/beta/account/login")
}

func TestAccount_RevokeAnotherSessionNeedsFreshPassword(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		e.accountSignIn(e.client, userPW, "")
		other := e.newBrowser()
		e.accountSignIn(other, userPW, "")
		e.clock.Add(10 * time.Minute) // past identity.ReauthWindow
		res, body := e.do(other, http.MethodGet, account, nil)
		wantStatus(t, res, body, http.StatusOK)
		otherID := regexp.MustCompile(`data-session-id="([^"]+)"`).FindStringSubmatch(body)[1] // its own, listed first
		res, body = e.get(account)
		wantStatus(t, res, body, http.StatusOK)
		if !strings.Contains(body, `data-session-id="`+otherID+`"`) || !strings.Contains(body, `id="revoke-`+otherID+`"`) {
			t.Fatalf("the other session is not listed with its revoke button:\n%s", body)
		}
		res, body = e.post(account+"/sessions/revoke", url.Values{"session_id": {otherID}})
		wantReauth(t, res, body, "password")
		if len(e.sessions(e.user)) != 2 {
			t.Fatal("revoked without a fresh authentication")
		}
		res, body = e.post(account+"/reauth", url.Values{"password": {"wrong password here"}})
		wantStatus(t, res, body, http.StatusUnauthorized)
		res, _ = e.post(account+"/reauth", url.Values{"password": {userPW}})
		wantRedirect(t, res, account+"?done=reauth")
		res, _ = e.post(account+"/sessions/revoke", url.Values{"session_id": {otherID}})
		wantRedirect(t, res, account+"?done=session_revoked")
		if ss := e.sessions(e.user); len(ss) != 1 || ss[0].ID == otherID {
			t.Fatalf("sessions after revoke: %v", ss)
		}
		res, _ = e.do(other, http.MethodGet, account, nil)
		wantRedirect(t, res, account+"/login")
	})
}

func TestAccount_RevokeOthersNeedsFreshAuthentication(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	for range 2 {
		e.accountSignIn(e.newBrowser(), userPW, "")
	}
	e.accountSignIn(e.client, userPW, "")
	e.clock.Add(10 * time.Minute)
	res, body := e.post(account+"/sessions/revoke-others", url.Values{})
	wantReauth(t, res, body, "password")
	if len(e.sessions(e.user)) != 3 {
		t.Fatal("revoked without a fresh authentication")
	}
	res, _ = e.post(account+"/reauth", url.Values{"password": {userPW}})
	wantRedirect(t, res, account+"?done=reauth")
	res, _ = e.post(account+"/sessions/revoke-others", url.Values{})
	wantRedirect(t, res, account+"?done=others_revoked")
	if len(e.sessions(e.user)) != 1 {
		t.Fatal("other sessions remain")
	}
	res, body = e.get(account + "?done=others_revoked")
	wantStatus(t, res, body, http.StatusOK)
	if !strings.Contains(body, "Every other session was ended.") {
		t.Fatal("no notice")
	}
}

func TestAccount_RenameAndRemovePasskeyNeedStepUp(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		secret := e.enrolTOTP(e.user)
		e.registerPasskey(e.user)
		pk := e.factor(e.user, "webauthn")
		e.accountSignIn(e.client, userPW, secret)
		e.clock.Add(10 * time.Minute) // the sign-in's second factor is no longer fresh
		res, body := e.get(account)
		wantStatus(t, res, body, http.StatusOK)
		for _, want := range []string{`data-factor-id="` + pk.ID + `"`, `id="rename-` + pk.ID + `"`, `id="remove-` + pk.ID + `"`, `id="name-` + pk.ID + `"`} {
			if !strings.Contains(body, want) {
				t.Fatalf("account page lacks %s:\n%s", want, body)
			}
		}
		res, body = e.post(account+"/factors/rename", url.Values{"factor_id": {pk.ID}, "name": {"work key"}})
		wantReauth(t, res, body, "code")
		if !strings.Contains(body, `id="passkey-button"`) {
			t.Fatal("the step-up does not offer the passkey")
		}
		// A re-entered password is not a second factor: still refused.
		e.post(account+"/reauth", url.Values{"password": {userPW}})
		res, body = e.post(account+"/factors/rename", url.Values{"factor_id": {pk.ID}, "name": {"work key"}})
		wantReauth(t, res, body, "code")
		if e.factor(e.user, "webauthn").Name != "laptop" {
			t.Fatal("renamed without a step-up")
		}
		res, _ = e.post(account+"/reauth", url.Values{"factor": {"1"}, "code": {e.totp(secret)}})
		wantRedirect(t, res, account+"?done=reauth")
		// Not plain text: refused at the field.
		res, body = e.post(account+"/factors/rename", url.Values{"factor_id": {pk.ID}, "name": {"bad\u202ename"}})
		wantStatus(t, res, body, http.StatusBadRequest)
		if !strings.Contains(body, `id="name-`+pk.ID+`" name="name" type="text" autocomplete="off" required maxlength="100" value="laptop" aria-invalid="true"`) {
			t.Fatalf("error not at the field:\n%s", body)
		}
		res, _ = e.post(account+"/factors/rename", url.Values{"factor_id": {pk.ID}, "name": {"work key"}})
		wantRedirect(t, res, account+"?done=factor_renamed")
		if e.factor(e.user, "webauthn").Name != "work key" {
			t.Fatal("not renamed")
		}
		e.clock.Add(10 * time.Minute)
		res, body = e.post(account+"/factors/remove", url.Values{"factor_id": {pk.ID}})
		wantReauth(t, res, body, "code")
		if e.factor(e.user, "webauthn") == nil {
			t.Fatal("removed without a step-up")
		}
		e.clock.Add(30 * time.Second) // the next TOTP step
		e.post(account+"/reauth", url.Values{"factor": {"1"}, "code": {e.totp(secret)}})
		res, _ = e.post(account+"/factors/remove", url.Values{"factor_id": {pk.ID}})
		wantRedirect(t, res, account+"?done=factor_removed")
		if e.factor(e.user, "webauthn") != nil {
			t.Fatal("not removed")
		}
		// Recovery codes, shown once.
		res, body = e.post(account+"/recovery", url.Values{})
		wantStatus(t, res, body, http.StatusOK)
		if n := strings.Count(body, "<li><code>"); n < 8 {
			t.Fatalf("%d recovery codes:\n%s", n, body)
		}
	})
}

func TestAccount_PasswordChangeEndsOtherSessions(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		e.accountSignIn(e.client, userPW, "")
		other := e.newBrowser()
		e.accountSignIn(other, userPW, "")
		const next = "copper lantern orchard 47 riverbank"
		res, body := e.post(account+"/password", url.Values{"current_password": {"not the password"}, "new_password": {next}, "confirm": {next}})
		wantStatus(t, res, body, http.StatusUnauthorized)
		if !strings.Contains(body, `id="current_password" name="current_password" type="password" autocomplete="current-password" required maxlength="1024" aria-invalid="true"`) {
			t.Fatalf("error not at the current password:\n%s", body)
		}
		res, body = e.post(account+"/password", url.Values{"current_password": {userPW}, "new_password": {next}, "confirm": {next + "x"}})
		wantStatus(t, res, body, http.StatusBadRequest)
		res, body = e.post(account+"/password", url.Values{"current_password": {userPW}, "new_password": {"password"}, "confirm": {"password"}})
		wantStatus(t, res, body, http.StatusBadRequest)
		if !strings.Contains(body, `id="new_password" name="new_password" type="password" autocomplete="new-password" required maxlength="1024" aria-invalid="true"`) {
			t.Fatalf("policy error not at the new password:\n%s", body)
		}
		if len(e.sessions(e.user)) != 2 {
			t.Fatal("a refused change ended sessions")
		}
		res, _ = e.post(account+"/password", url.Values{"current_password": {userPW}, "new_password": {next}, "confirm": {next}})
		wantRedirect(t, res, account+"?done=password")
		// This browser has the renewed session; the other is signed out.
		res, body = e.get(account + "?done=password")
		wantStatus(t, res, body, http.StatusOK)
		if ss := e.sessions(e.user); len(ss) != 1 {
			t.Fatalf("%d sessions after the change", len(ss))
		}
		res, _ = e.do(other, http.MethodGet, account, nil)
		wantRedirect(t, res, account+"/login")
	})
}

func TestAccount_ConsentRevokeEndsTheClientsSessions(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		e.accountSignIn(e.client, userPW, "")
		parent := e.sessions(e.user)[0]
		ctx := context.Background()
		child := &sqlstore.Session{TenantID: e.tenant.ID, UserID: e.user.ID, AMR: []string{"pwd"}, IdleTimeout: time.Hour,
			AbsoluteExpiry: parent.AbsoluteExpiry, ClientID: e.clientID, ParentID: parent.ID, Scope: "openid profile"}
		h := sha256.Sum256([]byte(tutela.NewID()))
		if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
			if err := tx.OIDCConsents(e.tenant.ID).Grant(ctx, e.user.ID, e.clientID, []string{"openid", "profile"}); err != nil {
				return err
			}
			return tx.CreateSession(ctx, child, h[:])
		}); err != nil {
			t.Fatal(err)
		}
		res, body := e.get(account)
		wantStatus(t, res, body, http.StatusOK)
		for _, want := range []string{`data-client-id="` + e.clientID + `"`, `id="revoke-app-` + e.clientID + `"`, "Patient Portal",
			`<li data-session-id="` + child.ID + `">Patient Portal`} {
			if !strings.Contains(body, want) {
				t.Fatalf("account page lacks %s:\n%s", want, body)
			}
		}
		res, _ = e.post(account+"/applications/revoke", url.Values{"client_id": {e.clientID}})
		wantRedirect(t, res, account+"?done=app_revoked")
		for _, s := range e.sessions(e.user) {
			if s.ClientID != "" {
				t.Fatal("the application's session survived the revoked consent")
			}
		}
		if len(e.sessions(e.user)) != 1 {
			t.Fatal("the sign-in session ended with the application's")
		}
		var list []*sqlstore.OIDCConsent
		if err := e.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
			list, err = tx.OIDCConsents(e.tenant.ID).List(ctx, e.user.ID)
			return err
		}); err != nil || len(list) != 0 {
			t.Fatalf("consent remains: %v %v", list, err)
		}
		res, body = e.post(account+"/applications/revoke", url.Values{"client_id": {e.clientID}})
		wantStatus(t, res, body, http.StatusNotFound)
	})
}

func TestAccount_EveryFormRefusesCSRF(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	secret := e.enrolTOTP(e.user)
	e.accountSignIn(e.client, userPW, secret)
	other := e.newBrowser()
	e.clock.Add(30 * time.Second) // the next TOTP step
	e.accountSignIn(other, userPW, secret)
	totp := e.factor(e.user, "totp")
	forms := map[string]url.Values{
		"/login":                  {"email": {"ann@example.org"}, "password": {userPW}},
		"/reauth":                 {"password": {userPW}},
		"/sessions/revoke":        {"session_id": {e.sessions(e.user)[0].ID}},
		"/sessions/revoke-others": {},
		"/password":               {"current_password": {userPW}, "new_password": {"copper lantern orchard 47 riverbank"}, "confirm": {"copper lantern orchard 47 riverbank"}},
		"/applications/revoke":    {"client_id": {e.clientID}},
		"/factors/rename":         {"factor_id": {totp.ID}, "name": {"renamed"}},
		"/factors/remove":         {"factor_id": {totp.ID}},
		"/recovery":               {},
		"/totp":                   {"factor_id": {totp.ID}, "code": {"123456"}},
		"/passkeys":               {"webauthn": {"{}"}},
	}
	for path, f := range forms {
		for name, hdr := range map[string][]string{"forged token": nil, "cross-site": {"Sec-Fetch-Site", "cross-site"}} {
			f := url.Values(f)
			if hdr == nil {
				f.Set("csrf", "forged")
			} else {
				f.Set("csrf", e.csrf(e.client))
			}
			res, body := e.do(e.client, http.MethodPost, account+path, f, hdr...)
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s: %d\n%s", name, path, res.StatusCode, body)
			}
			f.Del("csrf")
		}
	}
	if len(e.sessions(e.user)) != 2 || e.factor(e.user, "totp").Name != totp.Name {
		t.Fatal("a refused form changed something")
	}
	res, _ := e.do(other, http.MethodGet, account, nil)
	wantStatus(t, res, "", http.StatusOK)
}

var accountOptionsRE = regexp.MustCompile(`data-options="([^"]*)"`)

func pageOptions(t *testing.T, body string) string {
	t.Helper()
	m := accountOptionsRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no passkey options on the page:\n%s", body)
	}
	return html.UnescapeString(m[1])
}

func TestAccount_AddPasskeyThenAuthenticatorApp(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	e.accountSignIn(e.client, userPW, "")
	res, body := e.get(account)
	wantStatus(t, res, body, http.StatusOK)
	if !strings.Contains(body, `id="add-passkey"`) || !strings.Contains(body, `id="add-totp"`) {
		t.Fatalf("no add links:\n%s", body)
	}
	res, body = e.get(account + "/passkeys")
	wantStatus(t, res, body, http.StatusOK)
	opts := pageOptions(t, body)
	// Discoverable (resident key preferred) with user verification: it can sign in alone.
	if !strings.Contains(opts, `"residentKey":"preferred"`) || !strings.Contains(opts, `"userVerification":"required"`) {
		t.Fatalf("creation options: %s", opts)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	handle := uuid.MustParse(e.user.ID)
	k := softKey{auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: handle[:]}),
		cred: identitytest.NewPasskeyCredential(t)}
	att := virtualwebauthn.CreateAttestationResponse(testRP, k.auth, k.cred, *ao)
	res, _ = e.post(account+"/passkeys", url.Values{"webauthn": {att}, "name": {"phone"}})
	wantRedirect(t, res, account+"?done=factor_added")
	if f := e.factor(e.user, "webauthn"); f == nil || f.Name != "phone" {
		t.Fatalf("passkey not added: %+v", f)
	}
	// It signs in without a password.
	b := e.newBrowser()
	ch, a := e.passkeyAssertion(b, slug, k)
	res, _ = e.postAs(b, "/t/"+slug+"/passkey", url.Values{"next": {"account"}, "challenge_id": {ch}, "webauthn": {a}})
	wantRedirect(t, res, account)

	// The user now has a factor and this session proved none: adding another needs a step-up,
	// here with the passkey.
	res, body = e.get(account + "/totp")
	wantReauth(t, res, body, "code")
	aso, err := virtualwebauthn.ParseAssertionOptions(pageOptions(t, body))
	if err != nil {
		t.Fatal(err)
	}
	res, _ = e.post(account+"/reauth", url.Values{"factor": {"1"}, "webauthn": {virtualwebauthn.CreateAssertionResponse(testRP, k.auth, k.cred, *aso)}})
	wantRedirect(t, res, account+"?done=reauth")
	res, body = e.get(account + "/totp")
	wantStatus(t, res, body, http.StatusOK)
	res, body = e.post(account+"/totp", url.Values{"factor_id": {field(body, "factor_id")}, "code": {"000000"}})
	wantStatus(t, res, body, http.StatusUnauthorized) // the page again, with a new secret
	secret := regexp.MustCompile(`id="totp-secret" class="secret">([A-Z2-7]+)<`).FindStringSubmatch(body)
	if secret == nil {
		t.Fatalf("no secret:\n%s", body)
	}
	res, _ = e.post(account+"/totp", url.Values{"factor_id": {field(body, "factor_id")}, "code": {e.totp(secret[1])}})
	wantRedirect(t, res, account+"?done=factor_added")
	if f := e.factor(e.user, "totp"); f == nil || !f.Active {
		t.Fatalf("authenticator app not added: %+v", f)
	}
}
