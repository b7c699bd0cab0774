package httpapi_test

import (
	"strings"
	"testing"

	"github.com/descope/virtualwebauthn"

	"tutela/identity/identitytest"
	"tutela/sqlstore"
)

// A cloned passkey presented at the MFA step of a sign-in: the mfa.webauthn_cloned event carries
// the attacker's address. It must stay under the tenant keyset, not the victim's person key.
func TestMFA_ClonedPasskeyEvidenceStaysUnderTenantKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "ana@example.org", pw)
	first := e.login(t, "acme", "ana@example.org", pw, "")
	rp := virtualwebauthn.RelyingParty{Name: "Tutela", ID: "tutela.test", Origin: "https://tutela.test"}
	auth := virtualwebauthn.NewAuthenticator()
	cred := identitytest.NewPasskeyCredential(t)
	cred.Counter = 5
	_, opts := e.req(t, "POST", "/v1/auth/mfa/webauthn/register/options", "", "", first.AccessToken)
	ao, _ := virtualwebauthn.ParseAttestationOptions(string(opts))
	att := virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao)
	if res, b := e.req(t, "POST", "/v1/auth/mfa/webauthn/register", `{"name":"laptop","response":`+att+`}`, "", first.AccessToken); res.StatusCode != 201 {
		t.Fatalf("register: %d %s", res.StatusCode, b)
	}
	signIn := func(c virtualwebauthn.Credential) int {
		ch := e.passwordStep(t, "acme", "ana@example.org", "")
		_, lo := e.req(t, "POST", "/v1/auth/mfa/webauthn/options", `{"challenge":"`+ch.MFA.Challenge+`"}`, "", nil)
		aso, err := virtualwebauthn.ParseAssertionOptions(string(lo))
		if err != nil {
			t.Fatal(err)
		}
		code, _, _ := e.completeMFA(t, ch.MFA.Challenge, "webauthn", virtualwebauthn.CreateAssertionResponse(rp, auth, c, *aso))
		return code
	}
	cred.Counter = 10
	if c := signIn(cred); c != 200 {
		t.Fatalf("genuine: %d", c)
	}
	clone := cred
	clone.Counter = 7
	if c := signIn(clone); c == 200 {
		t.Fatal("clone accepted")
	}
	rows, err := e.db.SQL().Query(`SELECT action, actor_type, CAST(canonical AS TEXT) FROM audit_events WHERE action = 'mfa.webauthn_cloned' ORDER BY pos`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	bad, seen := false, 0
	for rows.Next() {
		seen++
		var a, at, ip string
		_, _ = a, at
		if err := rows.Scan(&a, &at, &ip); err != nil {
			t.Fatal(err)
		}
		i := strings.Index(ip, "sealed:v1:")
		if i < 0 || strings.Contains(ip, "sealed:v1:u:") {
			bad = true
		}
	}
	if seen != 1 {
		t.Fatalf("%d mfa.webauthn_cloned events, want 1", seen)
	}
	if bad {
		t.Fatal("evidence of a cloned-passkey attempt is sealed under the victim's person key: erasing them destroys it")
	}
}
