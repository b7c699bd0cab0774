package client

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/identity/token"
)

// wantStepUpChallenge is the challenge Tutela's own routes send (authz.StepUpChallenge, RFC 9470 §3); spelled out here so a change to it fails this test.
const wantStepUpChallenge = `Bearer error="insufficient_user_authentication", error_description="a fresh second factor is required", acr_values="urn:tutela:acr:mfa", max_age=300`

const testServiceAccount = "sa-2"

// stepUpPolicy allows every action on records at any classification, so that only step-up
// decides.
func stepUpPolicy(subject string) *authz.Policy {
	p := &authz.Policy{TenantID: testTenant, Subject: subject, Clearance: authz.Red}
	for _, a := range []authz.Action{authz.Read, authz.Update, authz.Export, authz.Delete, authz.Manage, authz.Approve} {
		p.Grants = append(p.Grants, authz.Grant{Permission: authz.Permission{Resource: "records", Action: a},
			Effect: authz.Allow, Source: "role:records_admin"})
	}
	return p
}

// decisionModes are the two ways a client decides: from a snapshot of the policies the fake
// Tutela holds, and by asking its check API.
var decisionModes = []struct {
	name     string
	snapshot bool
}{{"snapshot", true}, {"check API", false}}

// stepUpFake is a fake Tutela holding stepUpPolicy for the test user and a service account.
func stepUpFake(t *testing.T) *fakeTutela {
	f := newFakeTutela(t)
	f.setPolicy(stepUpPolicy(testSubject))
	f.setPolicy(stepUpPolicy(testServiceAccount))
	return f
}

func modeClient(f *fakeTutela, snapshot bool) *Client {
	if snapshot {
		return f.client(func(cfg *Config) { cfg.Policies = f.snapshot })
	}
	return f.client()
}

// serviceToken is shaped like Tutela's client-credentials tokens: a scope, no session, no
// second factor.
func serviceToken(c *token.Claims) {
	c.Subject, c.SessionID, c.TokenVersion = testServiceAccount, "", 0
	c.AMR, c.AuthTime, c.Scope = []string{"client_secret"}, time.Time{}, "records:DELETE records:EXPORT records:MANAGE"
}

// authorizing is middleware that authenticates, asks Authorize and answers a refusal with
// Refuse: what a handler for classified records does.
func authorizing(c *Client, req authz.Request) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return c.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, err := c.Authorize(r.Context(), req)
			if err != nil {
				c.writeError(w, r, err)
				return
			}
			if !d.Allow {
				c.Refuse(w, r, d)
				return
			}
			next.ServeHTTP(w, r)
		}))
	}
}

func wantStepUp(t *testing.T, what string, res result) {
	t.Helper()
	if res.status != http.StatusUnauthorized || res.code != tutela.ESTEPUPREQUIRED || res.challenge != wantStepUpChallenge ||
		!strings.Contains(res.message, "second factor") || res.reached {
		t.Errorf("%s: got %d %q %q, challenge %q, handler reached %v; want 401 step_up_required", what,
			res.status, res.code, res.message, res.challenge, res.reached)
	}
}

func wantOK(t *testing.T, what string, res result) {
	t.Helper()
	if res.status != http.StatusOK || !res.reached {
		t.Errorf("%s: got %d %q %q, want the handler", what, res.status, res.code, res.message)
		return
	}
	if res.decision != nil && res.decision.Obligations.StepUpRequired {
		t.Errorf("%s: an allow reached the handler still asking for step-up: %+v", what, res.decision)
	}
}

// TestRequire_PasswordOnlyTokenRefusedSensitiveActions: without a second factor every
// sensitive action is 401 with the RFC 9470 challenge and the handler never runs; other
// actions pass, and a deny stays 403 without asking for a step-up that would not help.
func TestRequire_PasswordOnlyTokenRefusedSensitiveActions(t *testing.T) {
	t.Parallel()
	for _, m := range decisionModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f := stepUpFake(t)
			c := modeClient(f, m.snapshot)
			tok := f.issue() // amr pwd, signed in just now
			for _, a := range authz.SensitiveActions {
				wantStepUp(t, string(a), serve(t, c.Require(a, "records"), tok))
			}
			for _, a := range []authz.Action{authz.Read, authz.Update} {
				wantOK(t, string(a), serve(t, c.Require(a, "records"), tok))
			}
			res := serve(t, c.Require(authz.Delete, "users"), tok) // no grant
			if res.status != http.StatusForbidden || res.code != tutela.EFORBIDDEN || res.challenge != "" {
				t.Errorf("denied DELETE: %+v", res)
			}
			if n := f.checkCalls.Load(); m.snapshot != (n == 0) {
				t.Errorf("%d check calls", n)
			}
		})
	}
}

// TestRequire_SecondFactorFreshForStepUpWindow: a token from an MFA sign-in passes until
// authz.StepUpWindow after its auth_time (inclusive, as on the server); the same token, or one
// refreshed from the session (same auth_time), a second later is refused.
func TestRequire_SecondFactorFreshForStepUpWindow(t *testing.T) {
	t.Parallel()
	for _, m := range decisionModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f := stepUpFake(t)
			c := modeClient(f, m.snapshot)
			signIn := f.clock.Now()
			refreshed := func(cl *token.Claims) { withMFA(cl); cl.AuthTime = signIn }
			tok := f.issue(refreshed)
			wantOK(t, "at sign-in", serve(t, c.Require(authz.Delete, "records"), tok))

			f.clock.Add(4 * time.Minute)
			wantOK(t, "4 min later", serve(t, c.Require(authz.Export, "records"), tok))
			f.clock.Add(authz.StepUpWindow - 4*time.Minute)
			wantOK(t, "refreshed, at the window's end", serve(t, c.Require(authz.Manage, "records"), f.issue(refreshed)))

			f.clock.Add(time.Second)
			wantStepUp(t, "same token after the window", serve(t, c.Require(authz.Export, "records"), tok))
			later := f.issue(refreshed)
			for _, a := range authz.SensitiveActions {
				wantStepUp(t, "refreshed after the window: "+string(a), serve(t, c.Require(a, "records"), later))
			}
			wantOK(t, "READ needs no step-up", serve(t, c.Require(authz.Read, "records"), later))
		})
	}
}

// TestRequire_ServiceAccountNotAskedToStepUp: as on the server, a service account has no second
// factor and its permission set is the control.
func TestRequire_ServiceAccountNotAskedToStepUp(t *testing.T) {
	t.Parallel()
	for _, m := range decisionModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f := stepUpFake(t)
			c := modeClient(f, m.snapshot)
			tok := f.issue(serviceToken)
			for _, a := range authz.SensitiveActions {
				res := serve(t, c.Require(a, "records"), tok)
				wantOK(t, string(a), res)
				if res.claims == nil || res.claims.Subject != testServiceAccount {
					t.Errorf("%s: claims %+v", a, res.claims)
				}
			}
			wantOK(t, "RED", serve(t, authorizing(c, authz.Request{Action: authz.Update, Resource: "records", Class: authz.Red}), tok))
		})
	}
}

// TestAuthorize_StepUpIsARefusal: Authorize never returns an allow that still needs step-up,
// so a handler testing Allow alone is safe; Refuse turns the refusal into the 401 challenge.
func TestAuthorize_StepUpIsARefusal(t *testing.T) {
	t.Parallel()
	for _, m := range decisionModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f := stepUpFake(t)
			c := modeClient(f, m.snapshot)
			pwd, mfa := f.issue(), f.issue(withMFA)
			redRead := authz.Request{Action: authz.Read, Resource: "records", Class: authz.Red, Purpose: "case review"}

			var got []authz.Decision
			h := c.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for _, req := range []authz.Request{
					redRead,
					{Action: authz.Update, Resource: "records", Class: authz.Red},
					{Action: authz.Delete, Resource: "records", Class: authz.Green},
					// A handler cannot vouch for a factor: StepUpAt is the client's to set.
					{Action: authz.Delete, Resource: "records", StepUpAt: f.clock.Now()},
				} {
					d, err := c.Authorize(r.Context(), req)
					if err != nil {
						t.Error(err)
					}
					got = append(got, d)
				}
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Authorization", "Bearer "+pwd)
			h.ServeHTTP(httptest.NewRecorder(), req)
			if len(got) != 4 {
				t.Fatalf("decisions %+v", got)
			}
			for i, d := range got {
				if d.Allow || !d.Obligations.StepUpRequired || !strings.Contains(d.Reason, "second factor") {
					t.Errorf("password-only request %d: %+v, want a step-up refusal", i, d)
				}
			}

			wantStepUp(t, "RED read, password only", serve(t, authorizing(c, redRead), pwd))
			wantOK(t, "RED read, fresh factor", serve(t, authorizing(c, redRead), mfa))
			wantOK(t, "GREEN read, password only", serve(t, authorizing(c, authz.Request{Action: authz.Read, Resource: "records"}), pwd))
			// Missing purpose is a deny step-up would not fix: 403, no challenge.
			res := serve(t, authorizing(c, authz.Request{Action: authz.Read, Resource: "records", Class: authz.Red}), pwd)
			if res.status != http.StatusForbidden || res.challenge != "" || !strings.Contains(res.message, "purpose") {
				t.Errorf("RED read without purpose: %+v", res)
			}
		})
	}
}

// TestRefuse_AnAllowIsABug: Refuse does not guess what an allow handed to it means.
func TestRefuse_AnAllowIsABug(t *testing.T) {
	t.Parallel()
	c := newFakeTutela(t).client()
	rec := httptest.NewRecorder()
	c.Refuse(rec, httptest.NewRequest(http.MethodGet, "/", nil), authz.Decision{Allow: true})
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("%d %q", rec.Code, rec.Body)
	}
}

// TestStepUp_TokenClaimsThatProveNoFreshFactor attacks the factor time: only a Tutela second
// factor in amr, with an auth_time in the window and not after the token's own issue, counts.
func TestStepUp_TokenClaimsThatProveNoFreshFactor(t *testing.T) {
	t.Parallel()
	for _, m := range decisionModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f := stepUpFake(t)
			c := modeClient(f, m.snapshot)
			now := f.clock.Now()
			tests := []struct {
				name string
				mod  func(*token.Claims)
			}{
				{"password only", func(cl *token.Claims) { cl.AMR = []string{"pwd"} }},
				{"no amr", func(cl *token.Claims) { cl.AMR = nil }},
				// RFC 8176 values Tutela never writes for a second factor.
				{"software key", func(cl *token.Claims) { cl.AMR = []string{"pwd", "swk"} }},
				{"sms", func(cl *token.Claims) { cl.AMR = []string{"pwd", "sms"} }},
				{"second factor, no auth_time", func(cl *token.Claims) { withMFA(cl); cl.AuthTime = time.Time{} }},
				{"second factor, stale", func(cl *token.Claims) {
					withMFA(cl)
					cl.AuthTime = now.Add(-authz.StepUpWindow - time.Second)
				}},
				{"second factor after the token was issued", func(cl *token.Claims) {
					withMFA(cl)
					cl.AuthTime = now.Add(time.Hour)
				}},
			}
			for _, tt := range tests {
				wantStepUp(t, tt.name, serve(t, c.Require(authz.Delete, "records"), f.issue(tt.mod)))
			}
			for _, amr := range []string{"otp", "hwk", "rcv", "mfa"} {
				tok := f.issue(func(cl *token.Claims) { cl.AMR = []string{"pwd", amr} })
				wantOK(t, "amr "+amr, serve(t, c.Require(authz.Delete, "records"), tok))
			}
		})
	}
}

// TestRequire_CheckAPIKnowsOfStepUpSinceTheToken: a step-up at Tutela leaves the access token
// as it was; only Tutela's answer can reveal it. A check API that reports the session's
// factor time is honoured (for at most CheckTTL); a snapshot cannot know and keeps refusing.
func TestRequire_CheckAPIKnowsOfStepUpSinceTheToken(t *testing.T) {
	t.Parallel()
	f := stepUpFake(t)
	local, remote := modeClient(f, true), modeClient(f, false)
	tok := f.issue() // password only
	wantStepUp(t, "before step-up", serve(t, remote.Require(authz.Delete, "records"), tok))
	f.stepUp("sess-1")
	f.clock.Add(DefaultCheckTTL) // the refusal above is no longer cached
	wantOK(t, "check API after step-up", serve(t, remote.Require(authz.Delete, "records"), tok))
	wantStepUp(t, "snapshot after step-up", serve(t, local.Require(authz.Delete, "records"), tok))

	f.clock.Add(authz.StepUpWindow + DefaultCheckTTL)
	wantStepUp(t, "check API after the window", serve(t, remote.Require(authz.Delete, "records"), f.issue()))
}

// TestStepUp_SnapshotAndCheckAPIAgree: for every action, classification and kind of token the
// two modes answer alike, with no step-up state at Tutela beyond the token (today's server).
func TestStepUp_SnapshotAndCheckAPIAgree(t *testing.T) {
	t.Parallel()
	f := stepUpFake(t)
	local, remote := modeClient(f, true), modeClient(f, false)
	staleMFA := func(cl *token.Claims) {
		withMFA(cl)
		cl.AuthTime = f.clock.Now().Add(-authz.StepUpWindow - time.Second)
	}
	tokens := map[string]string{
		"password": f.issue(), "fresh MFA": f.issue(withMFA), "stale MFA": f.issue(staleMFA), "service": f.issue(serviceToken),
	}
	stepUps := 0
	for name, tok := range tokens {
		for _, a := range authz.Actions {
			for _, class := range []authz.Classification{authz.Green, authz.Yellow, authz.Red} {
				req := authz.Request{Action: a, Resource: "records", Class: class, Purpose: "audit"}
				l, r := serve(t, authorizing(local, req), tok), serve(t, authorizing(remote, req), tok)
				if l.status != r.status || l.code != r.code || l.challenge != r.challenge || l.message != r.message {
					t.Errorf("%s %s %s: snapshot %d %q %q, check API %d %q %q", name, a, class,
						l.status, l.code, l.message, r.status, r.code, r.message)
				}
				if l.code == tutela.ESTEPUPREQUIRED {
					stepUps++
				}
			}
		}
	}
	if stepUps == 0 {
		t.Fatal("no request needed step-up: the table tests nothing")
	}
	if f.checkCalls.Load() == 0 {
		t.Fatal("the check API was never asked")
	}
}
