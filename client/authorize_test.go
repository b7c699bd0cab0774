package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
)

func testPolicy(now time.Time) *authz.Policy {
	allow := func(res string, a authz.Action, max authz.Classification, src string) authz.Grant {
		return authz.Grant{Permission: authz.Permission{Resource: res, Action: a, MaxClass: max}, Effect: authz.Allow, Source: src}
	}
	expired := allow("records", authz.Update, "", "user")
	expired.Expires = now.Add(-time.Second)
	deny := allow("records", authz.Delete, "", "user")
	deny.Effect = authz.Deny
	return &authz.Policy{
		TenantID: testTenant, Subject: testSubject, Roles: []string{"operator"}, Clearance: authz.Yellow,
		Grants: []authz.Grant{
			allow("records", authz.Read, authz.Yellow, "role:operator"),
			allow("records", authz.Export, "", "role:operator"),
			allow("records", authz.Delete, "", "role:operator"),
			deny,
			expired,
		},
		Masks: map[string]authz.Mask{"records.name": authz.MaskPartial, "users.email": authz.MaskHashed},
	}
}

// staticPolicies is a PolicySource holding one policy, counting its calls.
type staticPolicies struct {
	pol   *authz.Policy
	calls atomic.Int64
}

func (s *staticPolicies) source(_ context.Context, tenant, subject string) (*authz.Policy, error) {
	s.calls.Add(1)
	if s.pol == nil || tenant != s.pol.TenantID || subject != s.pol.Subject {
		return nil, nil
	}
	return s.pol, nil
}

// TestRequire_LocalPolicyMatchesDecide: with a policy snapshot every decision is authz.Decide's
// with the token's factor time, made without any call to Tutela's check API.
func TestRequire_LocalPolicyMatchesDecide(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	src := &staticPolicies{pol: testPolicy(f.clock.Now())}
	c := f.client(func(cfg *Config) { cfg.Policies = src.source })
	tok := f.issue(withMFA) // a fresh second factor: EXPORT passes step-up
	tests := []struct {
		action   authz.Action
		resource string
		allow    bool
		reason   string
	}{
		{authz.Read, "records", true, "allowed by role:operator"},
		{authz.Export, "records", true, "allowed by role:operator"},
		{authz.Delete, "records", false, "explicitly denied by user"},
		{authz.Update, "records", false, "deny by default"}, // the grant expired
		{authz.Create, "records", false, "deny by default"},
		{authz.Read, "users", false, "deny by default"},
		{authz.Action("SUDO"), "records", false, "unknown action"},
		{authz.Read, authz.Any, false, "a resource type is required"},
	}
	for _, tt := range tests {
		res := serve(t, c.Require(tt.action, tt.resource), tok)
		want := authz.Decide(src.pol, authz.Request{Action: tt.action, Resource: tt.resource, StepUpAt: f.clock.Now()}, f.clock.Now())
		if want.Allow != tt.allow {
			t.Fatalf("%s %s: test table disagrees with authz.Decide: %+v", tt.action, tt.resource, want)
		}
		if tt.allow {
			if res.status != http.StatusOK || res.decision == nil || !reflect.DeepEqual(*res.decision, want) {
				t.Errorf("%s %s: status %d, decision %+v, want %+v", tt.action, tt.resource, res.status, res.decision, want)
			}
			if res.claims == nil || res.claims.Subject != testSubject {
				t.Errorf("%s %s: claims %+v", tt.action, tt.resource, res.claims)
			}
			continue
		}
		if res.status != http.StatusForbidden || res.code != tutela.EFORBIDDEN || !strings.Contains(res.message, tt.reason) {
			t.Errorf("%s %s: got %d %q %q, want 403 with %q", tt.action, tt.resource, res.status, res.code, res.message, tt.reason)
		}
	}
	if n := f.checkCalls.Load(); n != 0 {
		t.Fatalf("%d calls to the check API with a policy snapshot", n)
	}
}

func TestRequire_ObligationsReachTheHandler(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	src := &staticPolicies{pol: testPolicy(f.clock.Now())}
	c := f.client(func(cfg *Config) { cfg.Policies = src.source })

	// Masks for the resource only.
	res := serve(t, c.Require(authz.Read, "records"), f.issue())
	if res.status != http.StatusOK || !reflect.DeepEqual(res.decision.Obligations.Mask, map[string]authz.Mask{"name": authz.MaskPartial}) {
		t.Fatalf("mask obligations: %d %+v", res.status, res.decision)
	}
	if res.decision.Obligations.StepUpRequired {
		t.Fatal("step-up required for a GREEN read")
	}
	// Step-up is not an obligation handed on: Require enforced it (stepup_test.go), so what
	// reaches the handler never asks for it.
	res = serve(t, c.Require(authz.Export, "records"), f.issue(withMFA))
	if res.status != http.StatusOK || res.decision.Obligations.StepUpRequired {
		t.Fatalf("fresh second factor: %d %+v", res.status, res.decision)
	}
}

// TestAuthorize_InHandlerWithClassificationAndPurpose: a handler that learns the record's
// classification asks Authorize; RED needs clearance, and a RED read a purpose.
func TestAuthorize_InHandlerWithClassificationAndPurpose(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	pol := testPolicy(f.clock.Now())
	pol.Clearance = authz.Red
	pol.Grants = append(pol.Grants, authz.Grant{Permission: authz.Permission{Resource: "cases", Action: authz.Read},
		Effect: authz.Allow, Source: "role:caseworker"})
	src := &staticPolicies{pol: pol}
	c := f.client(func(cfg *Config) { cfg.Policies = src.source })
	tok := f.issue(withMFA) // RED data needs a fresh second factor

	var got []authz.Decision
	h := c.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, req := range []authz.Request{
			{Action: authz.Read, Resource: "records", Class: authz.Red},                       // above the grant's limit
			{Action: authz.Read, Resource: "cases", Class: authz.Red},                         // no purpose
			{Action: authz.Read, Resource: "cases", Class: authz.Red, Purpose: "case review"}, // allowed
		} {
			d, err := c.Authorize(r.Context(), req)
			if err != nil {
				t.Error(err)
			}
			got = append(got, d)
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if len(got) != 3 || got[0].Allow || got[1].Allow || !got[2].Allow || !got[2].Obligations.PurposeRequired ||
		!strings.Contains(got[1].Reason, "purpose") {
		t.Fatalf("decisions %+v", got)
	}
	if n := f.introspectCalls.Load(); n != 1 {
		t.Fatalf("%d introspections, want 1", n)
	}
	// Outside an authenticated request there is no caller to authorize.
	_, err := c.Authorize(context.Background(), authz.Request{Action: authz.Read, Resource: "records"})
	if tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
		t.Fatalf("Authorize without a caller: %v", err)
	}
	// Nor for a request another client (another audience) authenticated.
	other := f.client(func(cfg *Config) { cfg.Policies = src.source })
	h = c.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := other.Authorize(r.Context(), authz.Request{Action: authz.Read, Resource: "records"}); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
			t.Errorf("other client's caller: %v", err)
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), req)
}

func TestRequire_FallsBackToCheckAPI(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	f.setPolicy(testPolicy(f.clock.Now()))
	c := f.client()
	tok := f.issue()

	for range 5 {
		res := serve(t, c.Require(authz.Read, "records"), tok)
		if res.status != http.StatusOK || res.decision == nil || !res.decision.Allow ||
			res.decision.Obligations.Mask["name"] != authz.MaskPartial {
			t.Fatalf("allowed by Tutela: %+v", res)
		}
	}
	if n := f.checkCalls.Load(); n != 1 {
		t.Fatalf("%d check calls for 5 identical requests, want 1 (cached)", n)
	}
	res := serve(t, c.Require(authz.Delete, "records"), tok)
	if res.status != http.StatusForbidden || !strings.Contains(res.message, "explicitly denied by user") {
		t.Fatalf("denied by Tutela: %+v", res)
	}
	if n := f.checkCalls.Load(); n != 2 {
		t.Fatalf("%d check calls, want 2", n)
	}
	// The cache lasts CheckTTL.
	f.clock.Add(DefaultCheckTTL)
	serve(t, c.Require(authz.Read, "records"), tok)
	if n := f.checkCalls.Load(); n != 3 {
		t.Fatalf("%d check calls after CheckTTL, want 3", n)
	}
	// Malformed questions are denied without asking.
	if res := serve(t, c.Require("SUDO", "records"), tok); res.status != http.StatusForbidden {
		t.Fatalf("unknown action: %+v", res)
	}
	if n := f.checkCalls.Load(); n != 3 {
		t.Fatalf("%d check calls, want 3", n)
	}
}

// TestRequire_SnapshotWithoutThePrincipalAsksTutela: a PolicySource that has no policy for the
// caller (or fails) defers to the check API.
func TestRequire_SnapshotWithoutThePrincipalAsksTutela(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	f.setPolicy(testPolicy(f.clock.Now()))
	src := &staticPolicies{} // knows nobody
	failing := func(context.Context, string, string) (*authz.Policy, error) { return nil, errors.New("snapshot stale") }
	for _, source := range []PolicySource{src.source, failing} {
		c := f.client(func(cfg *Config) { cfg.Policies = source })
		before := f.checkCalls.Load()
		if res := serve(t, c.Require(authz.Read, "records"), f.issue()); res.status != http.StatusOK {
			t.Fatalf("%+v", res)
		}
		if f.checkCalls.Load() != before+1 {
			t.Fatal("check API not asked")
		}
	}
	if src.calls.Load() != 1 {
		t.Fatalf("policy source called %d times", src.calls.Load())
	}
}

func TestRequire_PolicyOfAnotherPrincipalFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	wrong := testPolicy(f.clock.Now())
	wrong.Subject = "user-2"
	c := f.client(func(cfg *Config) {
		cfg.Policies = func(context.Context, string, string) (*authz.Policy, error) { return wrong, nil }
	})
	res := serve(t, c.Require(authz.Read, "records"), f.issue())
	if res.status != http.StatusInternalServerError || res.code != tutela.EINTERNAL || res.message != "internal error" {
		t.Fatalf("%+v", res)
	}
}

func TestRequire_CheckAPIFailures(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client(func(cfg *Config) { cfg.ClientID, cfg.ClientSecret = "", tutela.Secret{} })

	// Revoked since: Tutela refuses the token at the check API.
	tok := f.issue()
	f.revoke(jtiOf(t, tok))
	if res := serve(t, c.Require(authz.Read, "records"), tok); res.status != http.StatusUnauthorized ||
		!strings.Contains(res.challenge, "invalid_token") {
		t.Fatalf("revoked: %+v", res)
	}
	// Down: 503, never an allow, and nothing cached.
	tok = f.issue()
	f.checkStatus.Store(http.StatusServiceUnavailable)
	if res := serve(t, c.Require(authz.Read, "records"), tok); res.status != http.StatusServiceUnavailable {
		t.Fatalf("down: %+v", res)
	}
	f.checkStatus.Store(0)
	f.setPolicy(testPolicy(f.clock.Now()))
	if res := serve(t, c.Require(authz.Read, "records"), tok); res.status != http.StatusOK {
		t.Fatalf("after recovery: %+v", res)
	}
}

func TestNew_ValidatesEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := New(Config{BaseURL: "http://tutela.example.org", ClientID: "sa", RevocationTTL: time.Hour,
		CheckTTL: -time.Second, JWKSRefresh: time.Second})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"plain http", "audience is required", "issuer is required", "without client secret",
		"JWKS refresh", "revocation TTL", "check TTL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	ok := []Config{
		{BaseURL: "https://tutela.example.org/", Audience: "a", Issuer: "i"},
		{BaseURL: "http://127.0.0.1:8080", Audience: "a", Issuer: "i"},
		{BaseURL: "http://tutela:8080", Audience: "a", Issuer: "i", AllowPlaintext: true},
	}
	for _, cfg := range ok {
		if _, err := New(cfg); err != nil {
			t.Errorf("%s: %v", cfg.BaseURL, err)
		}
	}
	for _, u := range []string{"tutela.example.org", "https://user:pw@tutela.example.org", "ftp://tutela.example.org"} {
		if _, err := New(Config{BaseURL: u, Audience: "a", Issuer: "i"}); err == nil {
			t.Errorf("base URL %q accepted", u)
		}
	}
}
