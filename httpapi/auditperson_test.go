package httpapi_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Attacker's request data: a wrong password for the user who is later erased.
const (
	attackUA = "MalletScanner/2.0 (attack-marker)"
	attackIP = "192.0.2.66"
)

// Review 2: after a user's erasure no audit event opens to their IP or user agent, whoever
// its actor: the anonymous api.request events of their sign-in, refresh, MFA completion and
// password reset (tenant "", linked to them only by the request ID) are sealed under their
// person key like the rest. A wrong password for their address from someone else is the
// attacker's data, sealed under the tenant's keyset: it still opens after the erasure.
func TestEraseUser_NoEventOfTheirRequestsStillOpens(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, d, withMFA)
			tn, a, secret := adminWithFactor(t, e)
			_, ana := e.seed(t, "acme", "ana@example.org", pw)
			var g grant
			res, body := e.reqAs(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), eraseIP, eraseUA, nil)
			if res.StatusCode != 200 || json.Unmarshal(body, &g) != nil {
				t.Fatalf("ana login: %d %s", res.StatusCode, body)
			}
			if res, body := e.reqAs(t, "POST", "/v1/auth/refresh", `{"refresh_token":"`+g.RefreshToken+`"}`, eraseIP, eraseUA, nil); res.StatusCode != 200 {
				t.Fatalf("ana refresh: %d %s", res.StatusCode, body)
			}
			totpSecret := e.enrolTOTP(t, g.AccessToken)
			res, body = e.reqAs(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), eraseIP, eraseUA, nil)
			var ch mfaChallenge
			if res.StatusCode != 401 || json.Unmarshal(body, &ch) != nil || ch.MFA.Challenge == "" {
				t.Fatalf("ana password step: %d %s", res.StatusCode, body)
			}
			e.clock.Add(30 * time.Second)
			if res, body := e.reqAs(t, "POST", "/v1/auth/mfa", `{"challenge":"`+ch.MFA.Challenge+`","code":"`+e.code(t, totpSecret)+`"}`,
				eraseIP, eraseUA, nil); res.StatusCode != 200 {
				t.Fatalf("ana MFA: %d %s", res.StatusCode, body)
			}
			// Someone else tries a wrong password for ana's address.
			if res, body := e.reqAs(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", "wrong password 1234"),
				attackIP, attackUA, nil); res.StatusCode != 401 {
				t.Fatalf("attack: %d %s", res.StatusCode, body)
			}
			e.stepUp(t, a.cookie, secret)
			res, body = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+ana.ID+"/password-reset", "", "", a.cookie)
			var rt struct {
				Token string `json:"reset_token"`
			}
			if res.StatusCode != 201 || json.Unmarshal(body, &rt) != nil {
				t.Fatalf("reset issue: %d %s", res.StatusCode, body)
			}
			if res, body := e.reqAs(t, "POST", "/v1/auth/password/reset", `{"token":"`+rt.Token+`","new_password":"saffron glacier parcel 17 orchard"}`,
				eraseIP, eraseUA, nil); res.StatusCode != 204 {
				t.Fatalf("ana reset: %d %s", res.StatusCode, body)
			}

			all := func() []sqlstore.AuditRecord {
				t.Helper()
				recs, _, err := e.db.AuditEvents(ctx, sqlstore.AuditFilter{Limit: 10000})
				if err != nil {
					t.Fatal(err)
				}
				return recs
			}
			// Before the erasure each request of ana's opens to her data, api.request included.
			seen := map[string]bool{}
			for _, r := range all() {
				if r.Event.SourceIP == eraseIP && r.Event.UserAgent == eraseUA && r.Event.Action == "api.request" {
					seen[r.Event.TargetID] = true
				}
			}
			for _, route := range []string{"POST /v1/auth/login", "POST /v1/auth/refresh", "POST /v1/auth/mfa", "POST /v1/auth/password/reset"} {
				if !seen[route] {
					t.Errorf("before the erasure no api.request event of %s opens to ana's data (%v)", route, seen)
				}
			}

			e.stepUp(t, a.cookie, secret)
			if res, body := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+ana.ID+"/erase",
				`{"reason":"ticket 1","legal_basis":"GDPR Art. 17(1)(a)"}`, "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("erase: %d %s", res.StatusCode, body)
			}
			attackSeen := 0
			for _, r := range all() {
				ev := r.Event
				if ev.SourceIP == eraseIP || ev.UserAgent == eraseUA {
					t.Errorf("after erasure, %s (actor %s %s, tenant %q, request %s) still opens to the erased user's IP/UA: %q %q",
						ev.Action, ev.ActorType, ev.ActorID, ev.TenantID, ev.RequestID, ev.SourceIP, ev.UserAgent)
				}
				if ev.SourceIP == attackIP && ev.UserAgent == attackUA {
					attackSeen++
					if ev.Action == "auth.login" && (ev.TargetID != ana.ID || ev.Outcome != "failure") {
						t.Errorf("the attack's auth.login: %+v", ev)
					}
				}
			}
			if attackSeen < 2 { // api.request and auth.login
				t.Errorf("after ana's erasure %d events of the attack on her open to its IP and user agent, want 2", attackSeen)
			}
		})
	}
}
