package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// authEvents returns the action's events, oldest first, after checking each is a failure that
// holds none of secrets: not in its details, and — for secrets long enough never to turn up by
// chance in an ID or a timestamp — nowhere in the event or its canonical encoding.
func authEvents(t *testing.T, e *env, action string, secrets ...string) []audit.Event {
	t.Helper()
	recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for i := len(recs) - 1; i >= 0; i-- {
		ev := recs[i].Event
		details, _ := json.Marshal(ev.Details)
		whole, _ := json.Marshal(ev)
		for _, s := range secrets {
			if s == "" {
				continue
			}
			if strings.Contains(string(details), s) ||
				len(s) >= 16 && (strings.Contains(string(whole), s) || strings.Contains(string(recs[i].Canonical), s)) {
				t.Fatalf("%s event holds a secret %q: %s", action, s, recs[i].Canonical)
			}
		}
		if ev.Outcome != audit.OutcomeFailure {
			t.Errorf("%s event outcome %q, want failure", action, ev.Outcome)
		}
		out = append(out, ev)
	}
	return out
}

// onEveryDialect runs test in parallel on a fresh env (newEnv with mod) of every store dialect.
func onEveryDialect(t *testing.T, mod func(*httpapi.Deps), test func(t *testing.T, e *env)) {
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			test(t, newEnv(t, d, mod))
		})
	}
}

// wantAuthEvent checks an event's tenant, actor, target and details.
func wantAuthEvent(t *testing.T, ev audit.Event, tenantID, actorType, actorID, targetType, targetID string, details map[string]any) {
	t.Helper()
	if ev.TenantID != tenantID || ev.ActorType != actorType || ev.ActorID != actorID ||
		ev.TargetType != targetType || ev.TargetID != targetID {
		t.Errorf("%s event: tenant %q actor %s/%q target %s/%q; want tenant %q actor %s/%q target %s/%q",
			ev.Action, ev.TenantID, ev.ActorType, ev.ActorID, ev.TargetType, ev.TargetID,
			tenantID, actorType, actorID, targetType, targetID)
	}
	if len(ev.Details) != len(details) {
		t.Errorf("%s event details %v, want %v", ev.Action, ev.Details, details)
	}
	for k, v := range details {
		if ev.Details[k] != v {
			t.Errorf("%s event details[%s] = %v, want %v (all: %v)", ev.Action, k, ev.Details[k], v, ev.Details)
		}
	}
}

func TestAuditAuthFailure_WrongSecondFactorAtSignInAndStepUp(t *testing.T) {
	t.Parallel()
	onEveryDialect(t, withMFA, func(t *testing.T, e *env) {
		tn, u := e.seed(t, "acme", "ana@example.org", pw)
		first := e.login(t, "acme", "ana@example.org", pw, "")
		secret := e.enrolTOTP(t, first.AccessToken)

		ch := e.passwordStep(t, "acme", "ana@example.org", "")
		good := e.code(t, secret)
		wrong := "000000"
		if good == wrong {
			wrong = "000001"
		}
		const notRecovery = "zzzz-zzzz-zzzz"
		if code, _, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+wrong+`"`); code != 401 {
			t.Fatalf("wrong code: %d %s", code, b)
		}
		code, g, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+good+`"`)
		if code != 200 {
			t.Fatalf("right code: %d %s", code, b)
		}
		ch2 := e.passwordStep(t, "acme", "ana@example.org", "")
		if code, _, _ := e.completeMFA(t, ch2.MFA.Challenge, "code", `"`+good+`"`); code != 401 {
			t.Fatalf("replayed code: %d", code)
		}
		if code, _, _ := e.completeMFA(t, ch2.MFA.Challenge, "code", `"`+notRecovery+`"`); code != 401 {
			t.Fatalf("wrong recovery code: %d", code)
		}
		res, body := e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+wrong+`"}`, "", g.AccessToken)
		wantError(t, res, body, 401, tutela.EINVALIDCREDENTIALS)
		// The fifth failure since the success locks the factor; the attempt after it is refused
		// unchecked.
		for range 2 {
			if code, _, _ := e.completeMFA(t, ch2.MFA.Challenge, "code", `"`+wrong+`"`); code != 401 {
				t.Fatalf("wrong code: %d", code)
			}
		}
		e.clock.Add(30 * time.Second)
		if code, _, _ := e.completeMFA(t, ch2.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`); code != 429 {
			t.Fatalf("locked: %d", code)
		}

		evs := authEvents(t, e, "auth.mfa", secret, ch.MFA.Challenge, ch2.MFA.Challenge, wrong, good, notRecovery,
			g.AccessToken, g.RefreshToken, pw)
		want := []struct{ method, reason, step string }{
			{"otp", "invalid_code", "sign_in"}, {"otp", "replayed", "sign_in"}, {"rcv", "invalid_code", "sign_in"},
			{"otp", "invalid_code", "step_up"}, {"otp", "invalid_code", "sign_in"}, {"otp", "invalid_code", "sign_in"},
			{"otp", "locked", "sign_in"},
		}
		if len(evs) != len(want) {
			t.Fatalf("%d auth.mfa events, want %d: %+v", len(evs), len(want), evs)
		}
		for i, w := range want {
			// The user is the actor even before the sign-in completes: the password showed who it is.
			wantAuthEvent(t, evs[i], tn.ID, audit.ActorUser, u.ID, "user", u.ID,
				map[string]any{"method": w.method, "reason": w.reason, "step": w.step})
		}
		// The successful MFA sign-in is recorded by its auth.login event.
		recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "auth.login", TargetID: u.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range recs {
			found = found || r.Event.Outcome == audit.OutcomeSuccess && r.Event.Details["reason"] == "mfa_otp"
		}
		if !found {
			t.Error("no auth.login success event for the MFA sign-in")
		}
	})
}

func TestAuditAuthFailure_ClientSecret(t *testing.T) {
	t.Parallel()
	onEveryDialect(t, nil, func(t *testing.T, e *env) {
		tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
		a := e.login(t, "acme", "admin@example.org", pw, "")
		sa := e.createSA(t, tn.ID, a.AccessToken, `{"name":"etl","permissions":[{"resource":"users","action":"READ"}],"ip_allowlist":["192.0.2.0/24"]}`)
		wrong := sa.Secret + "x"
		unknown := "sa_" + strings.Repeat("ab", 16)
		junk := strings.Repeat("J", 60)

		if code, _ := e.clientToken(t, sa.SA.ClientID, wrong, ""); code != 401 {
			t.Fatalf("wrong secret: %d", code)
		}
		if code, _ := e.clientToken(t, unknown, sa.Secret, ""); code != 401 {
			t.Fatalf("unknown client: %d", code)
		}
		if code, _ := e.clientToken(t, junk, sa.Secret, ""); code != 401 {
			t.Fatalf("junk client ID: %d", code)
		}
		if code, _ := e.clientToken(t, sa.SA.ClientID, sa.Secret, "198.51.100.1"); code != 401 {
			t.Fatalf("outside the allowlist: %d", code)
		}
		if code, _ := e.introspectFrom(t, a.AccessToken, sa.SA.ClientID, wrong, "192.0.2.10"); code != 401 {
			t.Fatalf("introspection with a wrong secret: %d", code)
		}
		if res, _ := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/service-accounts/"+sa.SA.ID+"/disable", "", "", a.AccessToken); res.StatusCode != 204 {
			t.Fatal("disable failed")
		}
		if code, _ := e.clientToken(t, sa.SA.ClientID, sa.Secret, ""); code != 401 {
			t.Fatalf("disabled account: %d", code)
		}

		evs := authEvents(t, e, "auth.client", sa.Secret, wrong, junk, a.AccessToken)
		if len(evs) != 6 {
			t.Fatalf("%d auth.client events, want 6: %+v", len(evs), evs)
		}
		detail := func(clientID, reason string) map[string]any {
			d := map[string]any{"method": "client_secret", "reason": reason}
			if clientID != "" {
				d["client_id"] = clientID
			}
			return d
		}
		anon := audit.ActorAnonymous
		wantAuthEvent(t, evs[0], tn.ID, anon, "", "service_account", sa.SA.ID, detail(sa.SA.ClientID, "bad_secret"))
		// An unknown client has no tenant; a client ID that is not of the form sa_<hex> is not copied.
		wantAuthEvent(t, evs[1], "", anon, "", "", "", detail(unknown, "unknown_client"))
		wantAuthEvent(t, evs[2], "", anon, "", "", "", detail("", "unknown_client"))
		wantAuthEvent(t, evs[3], tn.ID, anon, "", "service_account", sa.SA.ID, detail(sa.SA.ClientID, "ip_not_allowed"))
		wantAuthEvent(t, evs[4], tn.ID, anon, "", "service_account", sa.SA.ID, detail(sa.SA.ClientID, "bad_secret"))
		wantAuthEvent(t, evs[5], tn.ID, anon, "", "service_account", sa.SA.ID, detail(sa.SA.ClientID, "disabled"))
		for _, ev := range evs {
			if ev.RequestID == "" || ev.SourceIP == "" {
				t.Errorf("auth.client event not attributed to its request: %+v", ev)
			}
		}
	})
}

func TestAuditAuthFailure_ClientAssertion(t *testing.T) {
	t.Parallel()
	onEveryDialect(t, withMFA, func(t *testing.T, e *env) {
		tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
		a := e.login(t, "acme", "admin@example.org", pw, "")
		secret := e.enrolTOTP(t, a.cookie)
		e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", a.cookie)
		sa := e.createSA(t, tn.ID, a.cookie, `{"name":"etl","permissions":[{"resource":"users","action":"READ"}]}`)
		jwk, key := jwkOf(t, "k1")
		if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/service-accounts/"+sa.SA.ID+"/keys", jwk, "", a.cookie); res.StatusCode != 201 {
			t.Fatalf("register key: %d %s", res.StatusCode, b)
		}
		_, otherKey := jwkOf(t, "k1")
		forged := e.signedAssertion(t, otherKey, "k1", sa.SA.ClientID)
		good := e.signedAssertion(t, key, "k1", sa.SA.ClientID)
		unknown := e.signedAssertion(t, key, "k1", "sa_"+strings.Repeat("cd", 16))
		if code, _ := e.assertionToken(t, forged); code != 401 {
			t.Fatalf("assertion signed with another key: %d", code)
		}
		if code, _ := e.assertionToken(t, good); code != 200 {
			t.Fatalf("good assertion: %d", code)
		}
		if code, _ := e.assertionToken(t, good); code != 401 {
			t.Fatalf("replayed assertion: %d", code)
		}
		if code, _ := e.assertionToken(t, unknown); code != 401 {
			t.Fatalf("unknown client: %d", code)
		}
		if code, _ := e.assertionToken(t, "not.a.jwt"); code != 401 {
			t.Fatalf("garbage: %d", code)
		}

		evs := authEvents(t, e, "auth.client", forged, good, unknown, "not.a.jwt")
		if len(evs) != 4 {
			t.Fatalf("%d auth.client events, want 4: %+v", len(evs), evs)
		}
		const m = "private_key_jwt"
		anon := audit.ActorAnonymous
		wantAuthEvent(t, evs[0], tn.ID, anon, "", "service_account", sa.SA.ID,
			map[string]any{"method": m, "reason": "bad_assertion", "client_id": sa.SA.ClientID})
		wantAuthEvent(t, evs[1], tn.ID, anon, "", "service_account", sa.SA.ID,
			map[string]any{"method": m, "reason": "assertion_replayed", "client_id": sa.SA.ClientID})
		wantAuthEvent(t, evs[2], "", anon, "", "", "",
			map[string]any{"method": m, "reason": "unknown_client", "client_id": "sa_" + strings.Repeat("cd", 16)})
		wantAuthEvent(t, evs[3], "", anon, "", "", "", map[string]any{"method": m, "reason": "bad_assertion"})
	})
}

func TestAuditAuthFailure_RefreshTokens(t *testing.T) {
	t.Parallel()
	onEveryDialect(t, nil, func(t *testing.T, e *env) {
		tn, u := e.seed(t, "acme", "ana@example.org", pw)
		refresh := func(rt string) {
			t.Helper()
			res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+rt+`"}`, "", nil)
			wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
		}
		unknown := strings.Repeat("A", 43)
		refresh("x")
		refresh(unknown)
		g := e.login(t, "acme", "ana@example.org", pw, "")
		if res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+g.RefreshToken+`"}`, "", nil); res.StatusCode != 200 {
			t.Fatalf("refresh: %d %s", res.StatusCode, body)
		}
		refresh(g.RefreshToken) // reuse: a security event too, as before
		h := e.login(t, "acme", "ana@example.org", pw, "")
		e.clock.Add(16 * time.Minute) // past the idle timeout
		refresh(h.RefreshToken)

		evs := authEvents(t, e, "auth.refresh", g.RefreshToken, h.RefreshToken, unknown, g.AccessToken, h.AccessToken, pw)
		if len(evs) != 4 {
			t.Fatalf("%d auth.refresh events, want 4: %+v", len(evs), evs)
		}
		anon := audit.ActorAnonymous
		wantAuthEvent(t, evs[0], "", anon, "", "", "", map[string]any{"reason": "malformed"})
		wantAuthEvent(t, evs[1], "", anon, "", "", "", map[string]any{"reason": "unknown_token"})
		wantAuthEvent(t, evs[2], tn.ID, anon, "", "user", u.ID, map[string]any{"reason": "reused", "session_id": g.SessionID})
		wantAuthEvent(t, evs[3], tn.ID, anon, "", "user", u.ID, map[string]any{"reason": "session_expired", "session_id": h.SessionID})
		var kinds []string
		_ = e.db.View(ctxBG, func(tx *sqlstore.Tx) error {
			ev, err := tx.SecurityEvents(ctxBG, tn.ID, 10)
			for _, x := range ev {
				kinds = append(kinds, x.Kind)
			}
			return err
		})
		if !strings.Contains(strings.Join(kinds, ","), "refresh_reuse_detected") {
			t.Fatalf("reuse no longer a security event: %v", kinds)
		}
	})
}

func TestAuditAuthFailure_ResetAndSetupCodes(t *testing.T) {
	t.Parallel()
	onEveryDialect(t, nil, func(t *testing.T, e *env) {
		bootstrap(t, e)
		bogus := strings.Repeat("ab", 32)
		const next = "saffron glacier parcel 17 orchard"
		res, body := e.req(t, "POST", "/v1/auth/password/reset", `{"token":"`+bogus+`","new_password":"`+next+`"}`, "", nil)
		wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
		res, body = e.req(t, "POST", "/v1/auth/setup", setupBody(bogus, next), "", nil)
		wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)

		for _, action := range []string{"auth.reset", "auth.setup"} {
			evs := authEvents(t, e, action, bogus, next)
			if len(evs) != 1 {
				t.Fatalf("%d %s events, want 1", len(evs), action)
			}
			// An invalid code identifies no one.
			wantAuthEvent(t, evs[0], "", audit.ActorAnonymous, "", "", "", map[string]any{"reason": "invalid_code"})
		}
	})
}

func TestAuditAuthFailure_WrongPasswordAtReauthenticationAndChange(t *testing.T) {
	t.Parallel()
	onEveryDialect(t, nil, func(t *testing.T, e *env) {
		tn, u := e.seed(t, "acme", "ana@example.org", pw)
		g := e.login(t, "acme", "ana@example.org", pw, "")
		const wrongPw = "not-the-password-but-secret"
		const next = "saffron glacier parcel 17 orchard"
		res, body := e.req(t, "POST", "/v1/auth/password", `{"current_password":"`+wrongPw+`","new_password":"`+next+`"}`, "", g.AccessToken)
		wantError(t, res, body, 400, tutela.EINVALID)
		for range 4 { // with the change above, the fifth wrong password locks
			res, body := e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"`+wrongPw+`"}`, "", g.cookie)
			wantError(t, res, body, 401, tutela.EINVALIDCREDENTIALS)
		}
		res, body = e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"`+pw+`"}`, "", g.cookie)
		wantError(t, res, body, 429, tutela.ETOOMANYATTEMPTS)

		secrets := []string{wrongPw, pw, next, g.AccessToken, g.cookie.Value}
		change := authEvents(t, e, "auth.password_change", secrets...)
		if len(change) != 1 {
			t.Fatalf("%d auth.password_change events, want 1", len(change))
		}
		wantAuthEvent(t, change[0], tn.ID, audit.ActorUser, u.ID, "user", u.ID, map[string]any{"reason": "wrong_password"})
		reauth := authEvents(t, e, "auth.reauthenticate", secrets...)
		if len(reauth) != 5 {
			t.Fatalf("%d auth.reauthenticate events, want 5", len(reauth))
		}
		for i, ev := range reauth {
			reason := "wrong_password"
			if i == 4 {
				reason = "locked"
			}
			wantAuthEvent(t, ev, tn.ID, audit.ActorUser, u.ID, "user", u.ID, map[string]any{"reason": reason})
		}
	})
}

// tokenEventOf returns the one auth.token event of the request answered by res (nil if none),
// checking the request's api.request event is there too and holds no more than its own.
func tokenEventOf(t *testing.T, e *env, res *http.Response, secrets ...string) *audit.Event {
	t.Helper()
	reqID := res.Header.Get("X-Request-ID")
	var found *audit.Event
	call := false
	for _, ev := range authEvents(t, e, "auth.token", secrets...) {
		if ev.RequestID == reqID {
			if found != nil {
				t.Fatalf("request %s has two auth.token events", reqID)
			}
			found = &ev
		}
	}
	recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "api.request", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		call = call || r.Event.RequestID == reqID
	}
	if !call {
		t.Fatalf("request %s has no api.request event", reqID)
	}
	return found
}

func TestAuditAuthFailure_RejectedTokensAndCookies(t *testing.T) {
	t.Parallel()
	onEveryDialect(t, nil, func(t *testing.T, e *env) {
		tn, u := e.seed(t, "acme", "ana@example.org", pw)
		g := e.login(t, "acme", "ana@example.org", pw, "")
		h := e.login(t, "acme", "ana@example.org", pw, "")
		res, body := e.req(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+h.RefreshToken+`","resource":"`+testResource+`"}`, "", nil)
		var forResource grant
		if err := json.Unmarshal(body, &forResource); err != nil || res.StatusCode != 200 {
			t.Fatalf("token for a resource: %d %s", res.StatusCode, body)
		}
		parts := strings.Split(g.AccessToken, ".")
		sig := []byte(parts[2])
		sig[5] ^= 1
		flipped := parts[0] + "." + parts[1] + "." + string(sig)
		secrets := []string{g.AccessToken, g.RefreshToken, g.cookie.Value, h.AccessToken, h.cookie.Value,
			forResource.AccessToken, flipped, parts[2]}

		type want struct {
			credential, reason, target, session string
		}
		check := func(res *http.Response, w want) {
			t.Helper()
			if res.StatusCode != 401 && res.StatusCode != 403 {
				t.Fatalf("%s: status %d", w.reason, res.StatusCode)
			}
			ev := tokenEventOf(t, e, res, secrets...)
			if ev == nil {
				t.Fatalf("%s: no auth.token event", w.reason)
			}
			d := map[string]any{"credential": w.credential, "reason": w.reason}
			tenant, targetType := "", ""
			if w.target != "" {
				tenant, targetType = tn.ID, "user"
			}
			if w.session != "" {
				d["session_id"] = w.session
			}
			wantAuthEvent(t, *ev, tenant, audit.ActorAnonymous, "", targetType, w.target, d)
		}

		res, _ = e.req(t, "GET", "/v1/auth/me", "", "", flipped)
		check(res, want{"bearer", "bad_signature", "", ""})
		res, _ = e.req(t, "GET", "/v1/auth/me", "", "", forResource.AccessToken)
		check(res, want{"bearer", "wrong_audience", "", ""})
		res, _ = e.do(t, "GET", "/v1/auth/me", "", "Authorization", "Basic "+g.AccessToken)
		check(res, want{"bearer", "malformed", "", ""})
		res, _ = e.do(t, "GET", "/v1/auth/me", "", "Cookie", h.cookie.Name+"="+h.cookie.Value, "Sec-Fetch-Site", "cross-site")
		check(res, want{"session_cookie", "cross_site", "", ""})
		if res, _ := e.req(t, "POST", "/v1/auth/logout", "", "", g.AccessToken); res.StatusCode != 204 {
			t.Fatal("logout failed")
		}
		// A genuine token or cookie of an ended session names its user and session.
		res, _ = e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken)
		check(res, want{"bearer", "revoked_session", u.ID, g.SessionID})
		res, _ = e.req(t, "GET", "/v1/auth/me", "", "", g.cookie)
		check(res, want{"session_cookie", "revoked_session", u.ID, g.SessionID})
		e.clock.Add(6 * time.Minute)
		res, _ = e.req(t, "GET", "/v1/auth/me", "", "", h.AccessToken)
		check(res, want{"bearer", "expired", "", ""})
		// No credential at all is no refused credential: the api.request event's 401 is all.
		res, _ = e.req(t, "GET", "/v1/auth/me", "", "", nil)
		if res.StatusCode != 401 || tokenEventOf(t, e, res) != nil {
			t.Fatalf("request without a credential: %d, or an auth.token event", res.StatusCode)
		}
	})
}
