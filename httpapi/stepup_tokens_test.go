package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tutela/authz"
	"tutela/sqlstore"
)

// claimsOf decodes an access token's payload (the signature is the server's concern here).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// A step-up must be visible to resource servers: the check API decides with the caller's
// session, and a token refreshed after the step-up carries it as auth_time (RFC 9470), while a
// token refreshed without one keeps the sign-in time.
func TestStepUp_VisibleToCheckAPIAndInRefreshedTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	first := e.login(t, "acme", "admin@example.org", pw, "")
	secret := e.enrolTOTP(t, first.cookie)
	ch := e.passwordStep(t, "acme", "admin@example.org", "")
	status, g, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`)
	if status != 200 {
		t.Fatalf("sign-in: %d %s", status, b)
	}
	signIn := claimsOf(t, g.AccessToken)["auth_time"].(float64)

	refresh := func(rt string) grant {
		t.Helper()
		res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+rt+`"}`, "", nil)
		var out grant
		if err := json.Unmarshal(body, &out); err != nil || res.StatusCode != 200 {
			t.Fatalf("refresh: %d %s", res.StatusCode, body)
		}
		return out
	}
	check := func(tok string) authz.Decision {
		t.Helper()
		res, body := e.req(t, "POST", "/v1/authz/check", `{"action":"DELETE","resource":"users"}`, "", tok)
		var d authz.Decision
		if err := json.Unmarshal(body, &d); err != nil || res.StatusCode != 200 || !d.Allow {
			t.Fatalf("check: %d %s", res.StatusCode, body)
		}
		return d
	}
	if d := check(g.AccessToken); d.Obligations.StepUpRequired {
		t.Fatal("check API asks for a step-up right after an MFA sign-in")
	}

	e.clock.Add(10 * time.Minute)
	g = refresh(g.RefreshToken)
	if got := claimsOf(t, g.AccessToken)["auth_time"].(float64); got != signIn {
		t.Fatalf("refresh without step-up moved auth_time from %v to %v", signIn, got)
	}
	if d := check(g.AccessToken); !d.Obligations.StepUpRequired {
		t.Fatal("check API does not ask for a step-up ten minutes after the sign-in")
	}
	if res, body := e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", g.AccessToken); res.StatusCode != 204 {
		t.Fatalf("step-up: %d %s", res.StatusCode, body)
	}
	stepUp := float64(e.clock.Now().Unix())
	if d := check(g.AccessToken); d.Obligations.StepUpRequired {
		t.Fatal("check API ignores the session's step-up")
	}
	g = refresh(g.RefreshToken)
	c := claimsOf(t, g.AccessToken)
	if got := c["auth_time"].(float64); got < stepUp-1 || got > stepUp+1 {
		t.Fatalf("token refreshed after step-up has auth_time %v, want about %v", got, stepUp)
	}
	if c["acr"] != "urn:tutela:acr:mfa" {
		t.Fatalf("acr = %v", c["acr"])
	}

	// A password change opens a session on the password alone: its tokens do not claim a
	// second factor, so a resource server cannot mistake them for a fresh MFA sign-in.
	res, body := e.req(t, "POST", "/v1/auth/password", `{"current_password":"`+pw+`","new_password":"another long passphrase 77"}`, "", g.AccessToken)
	var changed grant
	if err := json.Unmarshal(body, &changed); err != nil || res.StatusCode != 200 {
		t.Fatalf("password change: %d %s", res.StatusCode, body)
	}
	c = claimsOf(t, changed.AccessToken)
	if amr, _ := json.Marshal(c["amr"]); string(amr) != `["pwd"]` || c["acr"] == "urn:tutela:acr:mfa" {
		t.Fatalf("token after password change: amr %s, acr %v", amr, c["acr"])
	}
	if d := check(changed.AccessToken); !d.Obligations.StepUpRequired {
		t.Fatal("check API waives the step-up after a password change")
	}
}
