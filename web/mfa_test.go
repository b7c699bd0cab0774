package web_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"tutela/identity"
	"tutela/identity/identitytest"
	"tutela/oidc"
	"tutela/sqlstore"
)

func TestMFA_PasswordThenCode(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		secret := e.enrolTOTP(e.user)
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		res := e.signIn(id, "ann@example.org", userPW)
		loc := wantRedirect(t, res, "/t/"+slug+"/mfa?id="+id)
		for _, c := range res.Cookies() {
			if c.Name == "__Host-tutela_session" {
				t.Fatal("a session before the second factor")
			}
		}
		res, body := e.get(loc)
		wantStatus(t, res, body, http.StatusOK)
		if !strings.Contains(body, `autocomplete="one-time-code"`) || !strings.Contains(body, `<label for="code">`) {
			t.Fatalf("second-factor page:\n%s", body)
		}
		res, body = e.post("/t/"+slug+"/mfa", url.Values{"id": {id}, "code": {"000000"}})
		wantStatus(t, res, body, http.StatusUnauthorized)
		if !strings.Contains(body, `role="alert"`) || len(e.flow.completed) != 0 {
			t.Fatal("a wrong code was not refused with an identified error")
		}
		res, _ = e.post("/t/"+slug+"/mfa", url.Values{"id": {id}, "code": {e.totp(secret)}})
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
		a := e.flow.completed[id]
		if !slices.Contains(a.AMR, "otp") || !slices.Contains(a.AMR, "mfa") {
			t.Fatalf("AMR %v lacks the second factor", a.AMR)
		}
		// The challenge cookie is spent: a second post is sent back to sign in.
		id2 := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		res, _ = e.get("/t/" + slug + "/mfa?id=" + id2)
		if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusOK {
			t.Fatalf("mfa page after sign-in: %d", res.StatusCode)
		}
	})
}

func TestMFA_RequireMFAStepsUpPasswordOnlySession(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		first := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		wantRedirect(t, e.signIn(first, "ann@example.org", userPW), "https://app.example/cb")
		secret := e.enrolTOTP(e.user) // after the sign-in: the session proved the password only
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true; p.RequireMFA = true })
		res, _ := e.get("/t/" + slug + "/login?id=" + id)
		loc := wantRedirect(t, res, "/t/"+slug+"/mfa?id="+id)
		res, body := e.get(loc)
		wantStatus(t, res, body, http.StatusOK)
		if !strings.Contains(body, "This application asks for a second factor") {
			t.Fatalf("not the step-up page:\n%s", body)
		}
		// prompt=none cannot show that page.
		none := e.request(func(p *oidc.Pending) { p.SkipConsent = true; p.RequireMFA = true; p.Prompt = []string{"none"} })
		res, _ = e.get("/t/" + slug + "/login?id=" + none)
		wantRedirect(t, res, "https://app.example/cb?error=interaction_required")

		before := e.sessions(e.user)[0].ID
		res, _ = e.post("/t/"+slug+"/mfa", url.Values{"id": {id}, "code": {e.totp(secret)}})
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
		a := e.flow.completed[id]
		if a.SessionID != before || !slices.Contains(a.AMR, "otp") || !a.AuthTime.Equal(e.clock.Now()) {
			t.Fatalf("step-up completed with %+v (session %s)", a, before)
		}
		// The old cookie value no longer works (a new secret on re-authentication); the jar has
		// the new one, so the next request needing MFA goes straight through.
		again := e.request(func(p *oidc.Pending) { p.SkipConsent = true; p.RequireMFA = true })
		res, _ = e.get("/t/" + slug + "/login?id=" + again)
		wantRedirect(t, res, "https://app.example/cb?code=c-"+again)
	})
}

var (
	qrRE     = regexp.MustCompile(`<img class="qr" src="data:image/png;base64,iVBOR[A-Za-z0-9+/=&#;]+"`)
	secretRE = regexp.MustCompile(`id="totp-secret" class="secret">([A-Z2-7]+)<`)
	codeRE   = regexp.MustCompile(`<li><code>([^<]+)</code></li>`)
)

func TestEnroll_FirstFactorThenRecoveryCodes(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{MFAAllUsers: true})
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		loc := wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "/t/"+slug+"/enroll?id="+id)
		res, body := e.get(loc)
		wantStatus(t, res, body, http.StatusOK)
		m := secretRE.FindStringSubmatch(body)
		if !qrRE.MatchString(body) || m == nil || field(body, "factor_id") == "" {
			t.Fatalf("enrolment page without QR, key or factor:\n%s", body)
		}
		// Nothing is completed before the factor is.
		if len(e.flow.completed) != 0 {
			t.Fatal("completed before enrolment")
		}
		form := url.Values{"id": {id}, "factor_id": {field(body, "factor_id")}, "code": {"123456"}}
		res, body = e.post("/t/"+slug+"/enroll", form)
		wantStatus(t, res, body, http.StatusUnauthorized)
		// The page made a new pending factor: confirm that one.
		form.Set("factor_id", field(body, "factor_id"))
		form.Set("code", e.totp(secretRE.FindStringSubmatch(body)[1]))
		res, body = e.post("/t/"+slug+"/enroll", form)
		wantStatus(t, res, body, http.StatusOK)
		codes := codeRE.FindAllStringSubmatch(body, -1)
		if len(codes) < 8 || !strings.Contains(body, `id="continue"`) {
			t.Fatalf("recovery codes not shown:\n%s", body)
		}
		// Continue: the session goes on (the factor is enrolled), consent skipped for this client.
		res, _ = e.get("/t/" + slug + "/login?id=" + id)
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id)
		// The enrolment page cannot add a factor to a user who has one.
		id2 := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		res, _ = e.get("/t/" + slug + "/enroll?id=" + id2)
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id2)
		e.clock.Add(time.Minute)
		// A recovery code works as the second factor of a new sign-in.
		other := e.newBrowser()
		e.client = other
		id3 := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		wantRedirect(t, e.signIn(id3, "ann@example.org", userPW), "/t/"+slug+"/mfa?id="+id3)
		res, _ = e.post("/t/"+slug+"/mfa", url.Values{"id": {id3}, "code": {codes[0][1]}})
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id3)
	})
}

var optionsRE = regexp.MustCompile(`data-options="([^"]+)"`)

func TestPasskey_EnrolThenSecondFactor(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{MFAAllUsers: true})
		rp := virtualwebauthn.RelyingParty{ID: identitytest.RPID, Name: "Tutela", Origin: identitytest.RPOrigin}
		auth := virtualwebauthn.NewAuthenticator()
		cred := identitytest.NewPasskeyCredential(t)
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		loc := wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "/t/"+slug+"/enroll?id="+id)
		_, body := e.get(loc)
		m := optionsRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no passkey options on the enrolment page:\n%s", body)
		}
		ao, err := virtualwebauthn.ParseAttestationOptions(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		res, body := e.post("/t/"+slug+"/enroll", url.Values{"id": {id}, "name": {"Laptop"},
			"webauthn": {virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao)}})
		wantStatus(t, res, body, http.StatusOK)
		if !strings.Contains(body, `id="recovery-codes"`) {
			t.Fatalf("no recovery codes after the passkey:\n%s", body)
		}
		// A new browser: password, then the passkey as the second factor.
		e.client = e.newBrowser()
		id2 := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		loc = wantRedirect(t, e.signIn(id2, "ann@example.org", userPW), "/t/"+slug+"/mfa?id="+id2)
		_, body = e.get(loc)
		m = optionsRE.FindStringSubmatch(body)
		if m == nil || !strings.Contains(body, `id="passkey-button"`) {
			t.Fatalf("no passkey on the second-factor page:\n%s", body)
		}
		as, err := virtualwebauthn.ParseAssertionOptions(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		// An assertion made for another origin is refused.
		evil := virtualwebauthn.RelyingParty{ID: rp.ID, Name: rp.Name, Origin: "https://tutela.test.evil.example"}
		res, body = e.post("/t/"+slug+"/mfa", url.Values{"id": {id2}, "webauthn": {virtualwebauthn.CreateAssertionResponse(evil, auth, cred, *as)}})
		wantStatus(t, res, body, http.StatusUnauthorized)
		_, body = e.get(loc)
		as, _ = virtualwebauthn.ParseAssertionOptions(html.UnescapeString(optionsRE.FindStringSubmatch(body)[1]))
		res, _ = e.post("/t/"+slug+"/mfa", url.Values{"id": {id2}, "webauthn": {virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *as)}})
		wantRedirect(t, res, "https://app.example/cb?code=c-"+id2)
		if amr := e.flow.completed[id2].AMR; !slices.Contains(amr, "hwk") {
			t.Fatalf("AMR %v lacks hwk", amr)
		}
	})
}
