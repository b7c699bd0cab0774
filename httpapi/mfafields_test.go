package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// A missing field on the MFA endpoints is the client's mistake: 400 invalid naming the field,
// not a refused credential (and it does not count as an attempt).
func TestMFA_MissingFieldsAre400NamingThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "ana@example.org", pw)
	a := e.login(t, "acme", "ana@example.org", pw, "")
	var en struct{ FactorID, Secret string }
	en.FactorID, en.Secret = e.beginTOTPFor(t, a.AccessToken)
	for _, c := range []struct {
		name, path, body, field string
		auth                    any
	}{
		{"confirm without factor_id", "/v1/auth/mfa/totp/confirm", `{"code":"123456"}`, "factor_id", a.AccessToken},
		{"confirm with a malformed factor_id", "/v1/auth/mfa/totp/confirm", `{"factor_id":"x","code":"123456"}`, "factor_id", a.AccessToken},
		{"confirm without code", "/v1/auth/mfa/totp/confirm", `{"factor_id":"` + en.FactorID + `"}`, "code", a.AccessToken},
		{"sign-in without challenge", "/v1/auth/mfa", `{"code":"123456"}`, "challenge", nil},
		{"sign-in without a factor", "/v1/auth/mfa", `{"challenge":"` + strings.Repeat("a", 64) + `"}`, "code", nil},
		{"passkey options without challenge", "/v1/auth/mfa/webauthn/options", `{}`, "challenge", nil},
		{"step-up without a factor", "/v1/auth/step-up", `{}`, "code", a.AccessToken},
		{"passkey registration without response", "/v1/auth/mfa/webauthn/register", `{"name":"laptop"}`, "response", a.AccessToken},
	} {
		res, b := e.req(t, "POST", c.path, c.body, "", c.auth)
		eb := wantError(t, res, b, 400, tutela.EINVALID)
		if eb.Error.Field != c.field {
			t.Errorf("%s: field %q, want %q (%s)", c.name, eb.Error.Field, c.field, b)
		}
	}
	// The pending factor is still there to confirm: none of the above was an attempt on it.
	if status, eb := e.confirmWith(t, a.AccessToken, en.FactorID, en.Secret, ""); status != 204 {
		t.Fatalf("confirm: %d %+v", status, eb)
	}
}

// The code that confirmed the authenticator cannot also finish the first sign-in (its time
// step is spent); the refusal stays 401 invalid_credentials but tells the user to wait for the
// next code, and the next code works.
func TestMFA_ConfirmingCodeAtSignInSaysWaitForTheNextCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "ana@example.org", pw)
	a := e.login(t, "acme", "ana@example.org", pw, "")
	var en struct{ FactorID, Secret string }
	en.FactorID, en.Secret = e.beginTOTPFor(t, a.AccessToken)
	code := e.code(t, en.Secret)
	if res, b := e.req(t, "POST", "/v1/auth/mfa/totp/confirm", `{"factor_id":"`+en.FactorID+`","code":"`+code+`"}`, "", a.AccessToken); res.StatusCode != 204 {
		t.Fatalf("confirm: %d %s", res.StatusCode, b)
	}
	ch := e.passwordStep(t, "acme", "ana@example.org", "")
	status, _, body := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+code+`"`)
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	if status != 401 || eb.Error.Code != tutela.EINVALIDCREDENTIALS || !strings.Contains(eb.Error.Message, "wait") ||
		!strings.Contains(eb.Error.Message, "next code") {
		t.Fatalf("spent confirming code at sign-in: %d %s", status, body)
	}
	// A wrong code says nothing of the kind.
	status, _, body = e.completeMFA(t, ch.MFA.Challenge, "code", `"000000"`)
	if code == "000000" || status != 401 || strings.Contains(string(body), "wait") {
		t.Fatalf("wrong code: %d %s", status, body)
	}
	// The newcomer's mistake raises no replay alarm: no security event, no "someone used your
	// code" e-mail (the factor-added notice is the only mail).
	deliver(t, e.ids)
	if kinds, err := securityEventKinds(e, a.TenantID); err != nil || strings.Contains(kinds, "totp_replay_refused") {
		t.Fatalf("security events %q, %v", kinds, err)
	}
	for _, m := range e.mail.Messages() {
		if strings.Contains(m.Subject, "used sign-in code") {
			t.Fatalf("replay alarm for the confirming code: %q", m.Subject)
		}
	}
	e.clock.Add(30e9)
	next := e.code(t, en.Secret)
	if status, _, body := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+next+`"`); status != 200 {
		t.Fatalf("next code: %d %s", status, body)
	}
	// A code that already signed in, tried again, is a replay: recorded, and the user is told.
	ch = e.passwordStep(t, "acme", "ana@example.org", "")
	if status, _, body := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+next+`"`); status != 401 || !strings.Contains(string(body), "next code") {
		t.Fatalf("replayed code: %d %s", status, body)
	}
	deliver(t, e.ids)
	if kinds, err := securityEventKinds(e, a.TenantID); err != nil || !strings.Contains(kinds, "totp_replay_refused") {
		t.Fatalf("security events after a replay %q, %v", kinds, err)
	}
	if msgs := e.mail.Messages(); len(msgs) == 0 || !strings.Contains(msgs[len(msgs)-1].Subject, "used sign-in code") {
		t.Fatalf("no replay alarm: %+v", msgs)
	}
}
