package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"

	"tutela"
	"tutela/identity"
	"tutela/identity/identitytest"
	"tutela/oidc"
	"tutela/sqlstore"
)

var testRP = virtualwebauthn.RelyingParty{Name: "Tutela", ID: identitytest.RPID, Origin: identitytest.RPOrigin}

// softKey is a software authenticator holding one discoverable passkey of a user.
type softKey struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

// registerPasskey registers a passkey for u through the mfa service (as the account page and the
// enrolment page do) and returns the authenticator, which answers with u's user handle.
func (e *env) registerPasskey(u *tutela.User) softKey {
	e.t.Helper()
	ctx := context.Background()
	m := e.ids.Identity.MFA
	handle := uuid.MustParse(u.ID)
	k := softKey{auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: handle[:]}),
		cred: identitytest.NewPasskeyCredential(e.t)}
	opts, err := m.BeginWebAuthnRegistration(ctx, u.TenantID, u.ID, u.Email, u.DisplayName)
	if err != nil {
		e.t.Fatal(err)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts))
	if err != nil {
		e.t.Fatal(err)
	}
	att := virtualwebauthn.CreateAttestationResponse(testRP, k.auth, k.cred, *ao)
	if _, err := m.FinishWebAuthnRegistration(ctx, u.TenantID, u.ID, "laptop", []byte(att), nil); err != nil {
		e.t.Fatal(err)
	}
	return k
}

// passkeyAssertion fetches passkey sign-in options of tenant slug and signs them with k.
func (e *env) passkeyAssertion(c *http.Client, tenantSlug string, k softKey) (challengeID, assertion string) {
	e.t.Helper()
	res, body := e.do(c, http.MethodGet, "/t/"+tenantSlug+"/passkey/options", nil)
	wantStatus(e.t, res, body, http.StatusOK)
	var o struct {
		Options     json.RawMessage `json:"options"`
		ChallengeID string          `json:"challenge_id"`
	}
	if err := json.Unmarshal([]byte(body), &o); err != nil || o.ChallengeID == "" {
		e.t.Fatalf("options %s: %v", body, err)
	}
	if strings.Contains(string(o.Options), "allowCredentials") {
		e.t.Fatalf("discoverable options name credentials: %s", o.Options)
	}
	aso, err := virtualwebauthn.ParseAssertionOptions(string(o.Options))
	if err != nil {
		e.t.Fatal(err)
	}
	return o.ChallengeID, virtualwebauthn.CreateAssertionResponse(testRP, k.auth, k.cred, *aso)
}

func (e *env) postAs(c *http.Client, path string, form url.Values) (*http.Response, string) {
	e.t.Helper()
	if form.Get("csrf") == "" {
		form.Set("csrf", e.csrf(c))
	}
	return e.do(c, http.MethodPost, path, form)
}

func TestPasskey_SignInWithoutPasswordIsMultiFactor(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		k := e.registerPasskey(e.user)
		// The client asks for a second factor and the consent is not needed: a passkey alone
		// answers both.
		id := e.request(func(p *oidc.Pending) { p.RequireMFA, p.SkipConsent = true, true })
		res, body := e.get("/t/" + slug + "/login?id=" + id)
		wantStatus(t, res, body, http.StatusOK)
		if !strings.Contains(body, `autocomplete="username webauthn"`) || !strings.Contains(body, `/assets/passkey-login.js" nonce="`) {
			t.Fatalf("sign-in page lacks the conditional UI:\n%s", body)
		}
		// The script's passkey button label comes with the options, in the page's language.
		res, body = e.get("/t/"+slug+"/passkey/options", "Accept-Language", "fr")
		wantStatus(t, res, body, http.StatusOK)
		if !strings.Contains(body, `"label":"Se connecter avec une clé d’accès"`) || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("options: %s %v", body, res.Header)
		}
		ch, a := e.passkeyAssertion(e.client, slug, k)
		res, body = e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
		got := e.flow.completed[id]
		if got.UserID != e.user.ID || !slices.Contains(got.AMR, "hwk") || !slices.Contains(got.AMR, "mfa") || slices.Contains(got.AMR, "pwd") {
			t.Fatalf("Complete got %+v (%s)", got, body)
		}
		if len(e.sessions(e.user)) != 1 {
			t.Fatal("want one session")
		}
	})
}

func TestPasskey_ReplayedAssertionRefused(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		k := e.registerPasskey(e.user)
		ch, a := e.passkeyAssertion(e.client, slug, k)
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		res, _ := e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
		// The same assertion from another browser (an attacker who captured it): the ceremony
		// is spent.
		thief := e.newBrowser()
		id2 := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		res, body := e.postAs(thief, "/t/"+slug+"/passkey", url.Values{"id": {id2}, "challenge_id": {ch}, "webauthn": {a}})
		wantStatus(t, res, body, http.StatusUnauthorized)
		if !strings.Contains(body, "The passkey was not accepted") || !strings.Contains(body, `id="form-error"`) {
			t.Fatalf("refusal page:\n%s", body)
		}
		if _, ok := e.flow.completed[id2]; ok || len(e.sessions(e.user)) != 1 {
			t.Fatal("replayed assertion signed in")
		}
		// A forged ceremony handle is refused too.
		ch3, a3 := e.passkeyAssertion(thief, slug, k)
		res, body = e.postAs(thief, "/t/"+slug+"/passkey", url.Values{"id": {id2}, "challenge_id": {ch3[:len(ch3)-2] + "AA"}, "webauthn": {a3}})
		wantStatus(t, res, body, http.StatusUnauthorized)
	})
}

func TestPasskey_OtherTenantAndDisabledUserRefused(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		ctx := context.Background()
		beta := &tutela.Tenant{Slug: "beta", Name: "Beta", Region: "eu"}
		if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, beta) }); err != nil {
			t.Fatal(err)
		}
		bob := e.ids.SeedUser(t, e.db, beta.ID, "bob@example.org", userPW)
		bk := e.registerPasskey(bob)
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		// Beta's passkey at acme's sign-in: acme has no such user.
		ch, a := e.passkeyAssertion(e.client, slug, bk)
		res, body := e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
		wantStatus(t, res, body, http.StatusUnauthorized)
		// A ceremony begun at beta, finished at acme: sealed to beta.
		ch, a = e.passkeyAssertion(e.client, "beta", bk)
		res, body = e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
		wantStatus(t, res, body, http.StatusUnauthorized)
		if _, ok := e.flow.completed[id]; ok {
			t.Fatal("another tenant's passkey signed in")
		}

		// A disabled user's passkey.
		k := e.registerPasskey(e.user)
		u := *e.user
		u.Status = tutela.StatusDisabled
		if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(u.TenantID).Update(ctx, &u) }); err != nil {
			t.Fatal(err)
		}
		ch, a = e.passkeyAssertion(e.client, slug, k)
		res, body = e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
		wantStatus(t, res, body, http.StatusUnauthorized)
		if _, ok := e.flow.completed[id]; ok || len(e.sessions(e.user)) != 0 {
			t.Fatal("a disabled user signed in")
		}
	})
}

func TestPasskey_ThrottledLikePasswords(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	k := e.registerPasskey(e.user)
	id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
	// Wrong passwords lock the account; the passkey path is refused while it is locked.
	for range 12 {
		e.signIn(id, "ann@example.org", "wrong password entirely")
	}
	ch, a := e.passkeyAssertion(e.client, slug, k)
	res, body := e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
	wantStatus(t, res, body, http.StatusTooManyRequests)
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

func TestPasskey_CSRFRefused(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	k := e.registerPasskey(e.user)
	id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
	ch, a := e.passkeyAssertion(e.client, slug, k)
	res, body := e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}, "csrf": {"forged"}})
	wantStatus(t, res, body, http.StatusForbidden)
	// Nothing was spent: the same assertion with the right token signs in.
	res, _ = e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
	wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
}

func TestPasskey_ExpiredCeremonyRefused(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	k := e.registerPasskey(e.user)
	id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
	ch, a := e.passkeyAssertion(e.client, slug, k)
	e.clock.Add(5*time.Minute + time.Second)
	res, body := e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
	wantStatus(t, res, body, http.StatusUnauthorized)
	if _, ok := e.flow.completed[id]; ok {
		t.Fatal("an expired ceremony signed in")
	}
}

func TestPasskey_AccountSignIn(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	k := e.registerPasskey(e.user)
	ch, a := e.passkeyAssertion(e.client, slug, k)
	res, _ := e.post("/t/"+slug+"/passkey", url.Values{"next": {"account"}, "challenge_id": {ch}, "webauthn": {a}})
	wantRedirect(t, res, "/t/"+slug+"/account")
	res, body := e.get("/t/" + slug + "/account")
	wantStatus(t, res, body, http.StatusOK)
	// Without an authorization request or next=account there is nothing to continue.
	ch, a = e.passkeyAssertion(e.client, slug, k)
	res, body = e.post("/t/"+slug+"/passkey", url.Values{"challenge_id": {ch}, "webauthn": {a}})
	wantStatus(t, res, body, http.StatusBadRequest)
}

func TestPasskey_ClonedAuthenticatorRefusedAndRecorded(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	k := e.registerPasskey(e.user)
	k.cred.Counter = 5
	ch, a := e.passkeyAssertion(e.client, slug, k)
	id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
	res, _ := e.post("/t/"+slug+"/passkey", url.Values{"id": {id}, "challenge_id": {ch}, "webauthn": {a}})
	wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
	// A copy of the key whose counter is behind: correctly signed, and refused.
	k.cred.Counter = 3
	thief := e.newBrowser()
	ch, a = e.passkeyAssertion(thief, slug, k)
	id2 := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
	res, body := e.postAs(thief, "/t/"+slug+"/passkey", url.Values{"id": {id2}, "challenge_id": {ch}, "webauthn": {a}})
	wantStatus(t, res, body, http.StatusUnauthorized)
	ctx := context.Background()
	var evs []*sqlstore.SecurityEvent
	if err := e.db.View(ctx, func(tx *sqlstore.Tx) (err error) { evs, err = tx.SecurityEvents(ctx, e.tenant.ID, 50); return err }); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs, func(ev *sqlstore.SecurityEvent) bool {
		return ev.Kind == "passkey_clone_detected" && ev.UserID == e.user.ID
	}) {
		t.Fatalf("no clone event: %+v", evs)
	}
}
