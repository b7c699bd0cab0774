package httpapi_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"tutela/sqlstore"
)

// TestRunbook_CredentialStuffing rehearses docs/RUNBOOKS.md "Mass credential stuffing": the
// per-source throttle stops one address trying many accounts, the account lockout stops many
// addresses guessing one account, and the administrator's steps work: end the account's
// sessions (the stolen access token is refused at once), issue a password reset, unlock; the
// old password is dead and the new one signs in.
func TestRunbook_CredentialStuffing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, victim := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	admin := e.login(t, "acme", "admin@example.org", pw, "192.0.2.2")
	stolen := e.login(t, "acme", "ana@example.org", pw, "198.51.100.9") // the attacker's hit

	// Detection signals engage: one source, many accounts → 429 for that source.
	var status int
	for i := range 60 {
		res, _ := e.req(t, "POST", "/v1/auth/login", loginBody("acme", fmt.Sprintf("u%d@example.org", i), "Password1!"), "203.0.113.77", nil)
		status = res.StatusCode
	}
	if status != 429 {
		t.Fatalf("one source after 60 accounts: %d, want 429", status)
	}
	// Many sources, one account → the account locks (even the right password is refused).
	for i := range 5 {
		e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", "wrong guess"), fmt.Sprintf("198.18.0.%d", 1+i), nil)
	}
	if res, _ := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "192.0.2.60", nil); res.StatusCode != 429 {
		t.Fatalf("account not locked after distributed guessing: %d", res.StatusCode)
	}

	// Step: end every session of the account; the stolen token stops working.
	base := "/v1/tenants/" + tn.ID + "/users/" + victim.ID
	if res, body := e.req(t, "POST", base+"/revoke-sessions", "", "", admin.AccessToken); res.StatusCode/100 != 2 {
		t.Fatalf("revoke-sessions: %d %s", res.StatusCode, body)
	}
	if res, _ := e.req(t, "GET", "/v1/auth/sessions", "", "", stolen.AccessToken); res.StatusCode != 401 {
		t.Fatalf("stolen access token after revoke-sessions: %d, want 401", res.StatusCode)
	}
	if res, _ := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+stolen.RefreshToken+`"}`, "198.51.100.9", nil); res.StatusCode/100 == 2 {
		t.Fatal("stolen refresh token still refreshes")
	}
	// Step: force a password change through a one-time reset token handed over out of band.
	res, body := e.req(t, "POST", base+"/password-reset", "", "", admin.AccessToken)
	if res.StatusCode != 201 {
		t.Fatalf("password-reset: %d %s", res.StatusCode, body)
	}
	var reset struct {
		Token string `json:"reset_token"`
	}
	if err := json.Unmarshal(body, &reset); err != nil || reset.Token == "" {
		t.Fatalf("reset token: %v %s", err, body)
	}
	const fresh = "amber orchard telescope 41 meadow"
	b, _ := json.Marshal(map[string]string{"token": reset.Token, "new_password": fresh})
	if res, body := e.req(t, "POST", "/v1/auth/password/reset", string(b), "192.0.2.61", nil); res.StatusCode/100 != 2 {
		t.Fatalf("reset with the token: %d %s", res.StatusCode, body)
	}
	// Step: unlock, so the owner signs in with the new password; the old one is dead.
	if res, body := e.req(t, "POST", base+"/unlock", "", "", admin.AccessToken); res.StatusCode != 204 {
		t.Fatalf("unlock: %d %s", res.StatusCode, body)
	}
	if res, _ := e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), "192.0.2.62", nil); res.StatusCode != 401 {
		t.Fatalf("old password after the reset: %d, want 401", res.StatusCode)
	}
	e.login(t, "acme", "ana@example.org", fresh, "192.0.2.63")
}
