package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// approvalEnv is a tenant with MFA enforced: an administrator (the requester, a) and three
// more programme administrators (b, c, d) who each have a TOTP factor, an operator (approvals
// READ, no approver role) and a plain user.
type approvalEnv struct {
	*env
	tenant                   *tutela.Tenant
	a, b, c, d, op, plain    grant
	secA, secB, secC, secD   string
	idA, idB, idC, idD, idOp string
}

func newApprovalEnv(t *testing.T, d sqlstore.Dialect) *approvalEnv {
	t.Helper()
	e := newEnv(t, d, withMFA)
	ae := &approvalEnv{env: e}
	var ua *tutela.User
	ae.tenant, ua = e.seed(t, "acme", "a@example.org", pw, "program_admin")
	ae.idA = ua.ID
	for _, who := range []struct {
		email string
		g     *grant
		sec   *string
		id    *string
		role  string
	}{
		{"a@example.org", &ae.a, &ae.secA, &ae.idA, ""},
		{"b@example.org", &ae.b, &ae.secB, &ae.idB, "program_admin"},
		{"c@example.org", &ae.c, &ae.secC, &ae.idC, "program_admin"},
		{"d@example.org", &ae.d, &ae.secD, &ae.idD, "program_admin"},
	} {
		if who.role != "" {
			_, u := e.seed(t, "acme", who.email, pw, who.role)
			*who.id = u.ID
		}
		*who.g = e.login(t, "acme", who.email, pw, "")
		*who.sec = e.enrolTOTP(t, who.g.cookie)
	}
	_, op := e.seed(t, "acme", "op@example.org", pw, "operator")
	ae.idOp = op.ID
	ae.op = e.login(t, "acme", "op@example.org", pw, "")
	e.seed(t, "acme", "plain@example.org", pw)
	ae.plain = e.login(t, "acme", "plain@example.org", pw, "")
	return ae
}

func (ae *approvalEnv) base() string { return "/v1/tenants/" + ae.tenant.ID }

type approvalBody struct {
	Approval approvals.Request `json:"approval"`
}

func decodeApproval(t *testing.T, b []byte) approvals.Request {
	t.Helper()
	var out approvalBody
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Approval
}

func (ae *approvalEnv) decide(t *testing.T, auth any, id, verdict string) (*http.Response, []byte) {
	t.Helper()
	return ae.req(t, "POST", ae.base()+"/approvals/"+id+"/decisions", `{"verdict":"`+verdict+`","comment":"checked the change"}`, "", auth)
}

func wantReason(t *testing.T, res *http.Response, b []byte, reason string) {
	t.Helper()
	wantError(t, res, b, 409, tutela.EAPPROVAL)
	var eb struct {
		Error struct {
			Reason string `json:"reason"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &eb)
	if eb.Error.Reason != reason {
		t.Fatalf("reason %q, want %q (%s)", eb.Error.Reason, reason, b)
	}
}

// The whole path through the one gated call this package owns, a weakening policy change:
// held with its justification, refused to everyone who may not decide (the requester, a
// linked second account, a service account, someone without a fresh second factor or without
// the approver role, a second decision by one person), approved by N others, then run once and
// only with exactly the approved parameters.
func TestApprovals_HeldPolicyChangeDecidedByOthersRunsOnce(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ae := newApprovalEnv(t, d)
			ae.stepUp(t, ae.a.cookie, ae.secA)
			// Turning a policy on does not weaken anything: it applies at once.
			on := `{"enabled":true,"approver_roles":["program_admin"],"required":2,"ttl_seconds":3600}`
			res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", on, "", ae.a.cookie)
			if res.StatusCode != 200 {
				t.Fatalf("enable: %d %s", res.StatusCode, b)
			}
			// An unknown role, a bad N, an unknown action.
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant",
				`{"enabled":true,"approver_roles":["ghost_role"],"required":2,"ttl_seconds":3600}`, "", ae.a.cookie)
			wantError(t, res, b, 400, tutela.EINVALID)
			// Outsiders never approve the tenant's calls.
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant",
				`{"enabled":true,"approver_roles":["partner"],"required":1,"ttl_seconds":3600}`, "", ae.a.cookie)
			wantError(t, res, b, 400, tutela.EINVALID)
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant",
				`{"enabled":true,"approver_roles":["program_admin"],"required":0,"ttl_seconds":3600}`, "", ae.a.cookie)
			wantError(t, res, b, 400, tutela.EINVALID)
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/no.such", on, "", ae.a.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)

			// Weakening it (off) is held: first without a justification, then with one.
			off := `{"enabled":false,"approver_roles":["program_admin"],"required":2,"ttl_seconds":3600`
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", off+`}`, "", ae.a.cookie)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "justification" {
				t.Fatalf("field %q", eb.Error.Field)
			}
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", off+`,"justification":"the pilot is over"}`, "", ae.a.cookie)
			if res.StatusCode != 202 {
				t.Fatalf("weaken: %d %s", res.StatusCode, b)
			}
			req := decodeApproval(t, b)
			if res.Header.Get("Location") != ae.base()+"/approvals/"+req.ID || req.State != approvals.StatePending ||
				req.Action != approvals.ActionPolicyChange || req.TargetID != "role.grant" || req.Required != 2 ||
				req.Justification != "the pilot is over" || req.RequestedBy != ae.idA {
				t.Fatalf("held: %s %+v", res.Header.Get("Location"), req)
			}
			// Nothing changed yet.
			res, b = ae.req(t, "GET", ae.base()+"/approval-policies", "", "", ae.a.cookie)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"action":"role.grant","enabled":true`) {
				t.Fatalf("policies: %d %s", res.StatusCode, b)
			}

			// The requester does not decide their own request.
			res, b = ae.decide(t, ae.a.cookie, req.ID, "approve")
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if len(deniedFor(t, ae.env, res)) != 1 {
				t.Fatal("self-approval not audited as a denial")
			}
			// Nor through a second account linked to them (d is a's other account).
			ae.stepUp(t, ae.a.cookie, ae.secA)
			res, b = ae.req(t, "PUT", ae.base()+"/users/"+ae.idD+"/person", `{"same_as":"`+ae.idA+`"}`, "", ae.a.cookie)
			wantError(t, res, b, 400, tutela.EINVALID) // no justification
			res, b = ae.req(t, "PUT", ae.base()+"/users/"+ae.idD+"/person",
				`{"same_as":"`+ae.idA+`","justification":"d is a's second account"}`, "", ae.a.cookie)
			if res.StatusCode != 204 {
				t.Fatalf("link: %d %s", res.StatusCode, b)
			}
			ae.stepUp(t, ae.d.cookie, ae.secD)
			res, b = ae.decide(t, ae.d.cookie, req.ID, "approve")
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// Without a fresh second factor.
			ae.clock.Add(6 * time.Minute)
			res, b = ae.decide(t, ae.b.cookie, req.ID, "approve")
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			// Without an approver role (the operator has approvals READ only).
			opSecret := ae.enrolTOTP(t, ae.op.cookie)
			ae.stepUp(t, ae.op.cookie, opSecret)
			res, b = ae.decide(t, ae.op.cookie, req.ID, "approve")
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// A service account, whatever it holds.
			sa := ae.createSAWith(t, ae.tenant.ID)
			code, tok := ae.clientToken(t, sa.SA.ClientID, sa.Secret, "")
			if code != 200 {
				t.Fatalf("token: %d", code)
			}
			res, b = ae.decide(t, tok["access_token"].(string), req.ID, "approve")
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// A comment is required.
			ae.stepUp(t, ae.b.cookie, ae.secB)
			res, b = ae.req(t, "POST", ae.base()+"/approvals/"+req.ID+"/decisions", `{"verdict":"approve","comment":""}`, "", ae.b.cookie)
			wantError(t, res, b, 400, tutela.EINVALID)

			res, b = ae.decide(t, ae.b.cookie, req.ID, "approve")
			if got := decodeApproval(t, b); res.StatusCode != 200 || got.State != approvals.StatePending || got.Approvals != 1 {
				t.Fatalf("first approval: %d %s", res.StatusCode, b)
			}
			res, b = ae.decide(t, ae.b.cookie, req.ID, "approve")
			wantError(t, res, b, 409, tutela.ECONFLICT)

			// Using it before it is approved.
			ae.stepUp(t, ae.a.cookie, ae.secA)
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", off+`,"approval_id":"`+req.ID+`"}`, "", ae.a.cookie)
			wantReason(t, res, b, approvals.ReasonPending)

			ae.stepUp(t, ae.c.cookie, ae.secC)
			res, b = ae.decide(t, ae.c.cookie, req.ID, "approve")
			if got := decodeApproval(t, b); res.StatusCode != 200 || got.State != approvals.StateApproved || got.Approvals != 2 {
				t.Fatalf("second approval: %d %s", res.StatusCode, b)
			}

			// Someone else may not use it; other parameters may not ride on it.
			ae.stepUp(t, ae.b.cookie, ae.secB)
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", off+`,"approval_id":"`+req.ID+`"}`, "", ae.b.cookie)
			wantReason(t, res, b, approvals.ReasonNotRequester)
			ae.stepUp(t, ae.a.cookie, ae.secA)
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant",
				`{"enabled":false,"approver_roles":["program_admin"],"required":2,"ttl_seconds":7200,"approval_id":"`+req.ID+`"}`, "", ae.a.cookie)
			wantReason(t, res, b, approvals.ReasonMismatch)
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", off+`,"approval_id":"00000000-0000-7000-8000-000000000000"}`, "", ae.a.cookie)
			wantReason(t, res, b, approvals.ReasonUnknown)
			// The approved call runs, once.
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", off+`,"approval_id":"`+req.ID+`"}`, "", ae.a.cookie)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"enabled":false`) {
				t.Fatalf("approved change: %d %s", res.StatusCode, b)
			}
			// Re-enable (not a weakening) and try the same approval again.
			res, _ = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", on, "", ae.a.cookie)
			if res.StatusCode != 200 {
				t.Fatal("re-enable")
			}
			res, b = ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", off+`,"approval_id":"`+req.ID+`"}`, "", ae.a.cookie)
			wantReason(t, res, b, approvals.ReasonExecuted)

			// Reading: the request with its decisions; the plain user sees only their own (none).
			res, b = ae.req(t, "GET", ae.base()+"/approvals/"+req.ID, "", "", ae.op.cookie)
			if got := decodeApproval(t, b); res.StatusCode != 200 || got.State != approvals.StateExecuted || len(got.Decisions) != 2 {
				t.Fatalf("get: %d %s", res.StatusCode, b)
			}
			res, b = ae.req(t, "GET", ae.base()+"/approvals/"+req.ID, "", "", ae.plain.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = ae.req(t, "GET", ae.base()+"/approvals?state=executed", "", "", ae.plain.cookie)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"approvals":[]`) {
				t.Fatalf("plain list: %d %s", res.StatusCode, b)
			}
			res, b = ae.req(t, "GET", ae.base()+"/approvals?state=executed", "", "", ae.op.cookie)
			if res.StatusCode != 200 || !strings.Contains(string(b), req.ID) {
				t.Fatalf("operator list: %d %s", res.StatusCode, b)
			}
			res, b = ae.req(t, "GET", ae.base()+"/approvals?state=bogus", "", "", ae.op.cookie)
			wantError(t, res, b, 400, tutela.EINVALID)
			// Another tenant sees nothing.
			_, _ = ae.seed(t, "other", "x@example.org", pw, "auditor")
			x := ae.login(t, "other", "x@example.org", pw, "")
			res, b = ae.req(t, "GET", ae.base()+"/approvals/"+req.ID, "", "", x.AccessToken)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
		})
	}
}

// N of M at once over HTTP: of three approvers deciding a 2-of-3 request together, exactly two
// count; then several copies of the approved call race and exactly one runs.
func TestApprovals_ConcurrentDecisionsAndExecutions(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ae := newApprovalEnv(t, d)
			ae.stepUp(t, ae.a.cookie, ae.secA)
			on := `{"enabled":true,"approver_roles":["program_admin"],"required":2,"ttl_seconds":3600}`
			if res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/dsr.erasure", on, "", ae.a.cookie); res.StatusCode != 200 {
				t.Fatalf("enable: %d %s", res.StatusCode, b)
			}
			off := `{"enabled":false,"approver_roles":["program_admin"],"required":2,"ttl_seconds":3600`
			res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/dsr.erasure", off+`,"justification":"done"}`, "", ae.a.cookie)
			if res.StatusCode != 202 {
				t.Fatalf("held: %d %s", res.StatusCode, b)
			}
			req := decodeApproval(t, b)
			ae.stepUp(t, ae.b.cookie, ae.secB)
			ae.stepUp(t, ae.c.cookie, ae.secC)
			ae.stepUp(t, ae.d.cookie, ae.secD)
			var wg sync.WaitGroup
			var ok, conflict atomic.Int32
			for _, g := range []grant{ae.b, ae.c, ae.d} {
				wg.Go(func() {
					res, _ := ae.decide(t, g.AccessToken, req.ID, "approve")
					switch res.StatusCode {
					case 200:
						ok.Add(1)
					case 409:
						conflict.Add(1)
					default:
						t.Errorf("decision: %d", res.StatusCode)
					}
				})
			}
			wg.Wait()
			var got *approvals.Request
			if err := ae.db.View(ctxBG, func(tx *sqlstore.Tx) (err error) {
				got, err = tx.Approvals(ae.tenant.ID).Get(ctxBG, req.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if ok.Load() != 2 || conflict.Load() != 1 || got.State != approvals.StateApproved || got.Approvals != 2 || len(got.Decisions) != 2 {
				t.Fatalf("ok %d conflict %d: %s, %d approvals, %d decisions", ok.Load(), conflict.Load(), got.State, got.Approvals, len(got.Decisions))
			}
			// The approved call, several times at once: the approval is used exactly once. (A
			// copy that starts after the first has committed finds the policy already off: setting
			// it off again weakens nothing and needs no approval.)
			ae.stepUp(t, ae.a.cookie, ae.secA)
			var ran, used atomic.Int32
			for range 4 {
				wg.Go(func() {
					res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/dsr.erasure", off+`,"approval_id":"`+req.ID+`"}`, "", ae.a.AccessToken)
					switch {
					case res.StatusCode == 200:
						ran.Add(1)
					case res.StatusCode == 409 && strings.Contains(string(b), `"reason":"executed"`):
						used.Add(1)
					default:
						t.Errorf("execution: %d %s", res.StatusCode, b)
					}
				})
			}
			wg.Wait()
			recs, _, err := ae.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			executed := 0
			for _, r := range recs {
				if r.Event.Action == "approval.executed" {
					executed++
				}
			}
			if executed != 1 || ran.Load()+used.Load() != 4 || ran.Load() < 1 {
				t.Fatalf("approval used %d times; %d calls ran, %d refused as used", executed, ran.Load(), used.Load())
			}
		})
	}
}

// Expiry on the clock: the sweep marks a request past its time expired (audited by the
// system) and a decision on it afterwards is a conflict; a decision on a pending request past
// its time marks it expired itself.
func TestApprovals_ExpiredRequestsRefusedAndSwept(t *testing.T) {
	t.Parallel()
	ae := newApprovalEnv(t, sqlstore.SQLite)
	ae.stepUp(t, ae.a.cookie, ae.secA)
	on := `{"enabled":true,"approver_roles":["program_admin"],"required":1,"ttl_seconds":600}`
	if res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/keys.rotate", on, "", ae.a.cookie); res.StatusCode != 200 {
		t.Fatalf("enable: %d %s", res.StatusCode, b)
	}
	hold := func() approvals.Request {
		ae.stepUp(t, ae.a.cookie, ae.secA)
		res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/keys.rotate",
			`{"enabled":false,"approver_roles":["program_admin"],"required":1,"ttl_seconds":600,"justification":"why"}`, "", ae.a.cookie)
		if res.StatusCode != 202 {
			t.Fatalf("held: %d %s", res.StatusCode, b)
		}
		return decodeApproval(t, b)
	}
	r1 := hold()
	ae.clock.Add(11 * time.Minute)
	ae.stepUp(t, ae.b.cookie, ae.secB)
	res, b := ae.decide(t, ae.b.cookie, r1.ID, "approve")
	wantError(t, res, b, 409, tutela.ECONFLICT)
	r2 := hold()
	ae.clock.Add(11 * time.Minute)
	sw, err := ae.srv.SweepApprovals(ctxBG)
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.Expired) != 1 || sw.Expired[0].ID != r2.ID {
		t.Fatalf("swept %+v", sw.Expired)
	}
	for _, id := range []string{r1.ID, r2.ID} {
		ae.stepUp(t, ae.b.cookie, ae.secB)
		res, b = ae.decide(t, ae.b.cookie, id, "approve")
		wantError(t, res, b, 409, tutela.ECONFLICT)
		res, b = ae.req(t, "GET", ae.base()+"/approvals/"+id, "", "", ae.a.cookie)
		if got := decodeApproval(t, b); res.StatusCode != 200 || got.State != approvals.StateExpired {
			t.Fatalf("%s is %s", id, got.State)
		}
	}
	recs, _, err := ae.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Event.Action == "approval.expired" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d approval.expired events, want 2", n)
	}
}

// Cancel: only the requester, only while open.
func TestApprovals_CancelByRequesterOnly(t *testing.T) {
	t.Parallel()
	ae := newApprovalEnv(t, sqlstore.SQLite)
	ae.stepUp(t, ae.a.cookie, ae.secA)
	on := `{"enabled":true,"approver_roles":["program_admin"],"required":1,"ttl_seconds":3600}`
	if res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/subject.export", on, "", ae.a.cookie); res.StatusCode != 200 {
		t.Fatalf("enable: %d %s", res.StatusCode, b)
	}
	res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/subject.export",
		`{"enabled":true,"approver_roles":["program_admin"],"required":1,"ttl_seconds":7200,"justification":"longer"}`, "", ae.a.cookie)
	if res.StatusCode != 202 {
		t.Fatalf("held: %d %s", res.StatusCode, b)
	}
	req := decodeApproval(t, b)
	res, b = ae.req(t, "POST", ae.base()+"/approvals/"+req.ID+"/cancel", "", "", ae.b.cookie)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = ae.req(t, "POST", ae.base()+"/approvals/"+req.ID+"/cancel", "", "", ae.a.cookie)
	if got := decodeApproval(t, b); res.StatusCode != 200 || got.State != approvals.StateCancelled {
		t.Fatalf("cancel: %d %s", res.StatusCode, b)
	}
	res, b = ae.req(t, "POST", ae.base()+"/approvals/"+req.ID+"/cancel", "", "", ae.a.cookie)
	wantError(t, res, b, 409, tutela.ECONFLICT)
}

// An approver must have held the approver role since before the request was made: a requester
// who may grant the role cannot make an approver of an account they control after seeing their
// own request.
func TestApprovals_ApproverRoleGrantedAfterTheRequestCannotDecide(t *testing.T) {
	t.Parallel()
	ae := newApprovalEnv(t, sqltest.Dialects[0])
	ae.stepUp(t, ae.a.cookie, ae.secA)
	on := `{"enabled":true,"approver_roles":["program_admin"],"required":1,"ttl_seconds":3600}`
	if res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/subject.export", on, "", ae.a.cookie); res.StatusCode != 200 {
		t.Fatalf("enable: %d %s", res.StatusCode, b)
	}
	res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/subject.export",
		`{"enabled":false,"approver_roles":["program_admin"],"required":1,"ttl_seconds":3600,"justification":"pilot over"}`, "", ae.a.cookie)
	if res.StatusCode != 202 {
		t.Fatalf("held: %d %s", res.StatusCode, b)
	}
	req := decodeApproval(t, b)
	// a now makes the plain user a program_admin (role.grant is off in this tenant).
	var plainID string
	if err := ae.db.View(ctxBG, func(tx *sqlstore.Tx) error {
		u, err := tx.Users(ae.tenant.ID).ByEmail(ctxBG, "plain@example.org")
		plainID = u.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ae.clock.Add(time.Second)
	ae.stepUp(t, ae.a.cookie, ae.secA)
	if res, b := ae.req(t, "PUT", ae.base()+"/users/"+plainID+"/roles/program_admin", "", "", ae.a.cookie); res.StatusCode != 204 {
		t.Fatalf("grant: %d %s", res.StatusCode, b)
	}
	plainSec := ae.enrolTOTP(t, ae.plain.cookie)
	ae.stepUp(t, ae.plain.cookie, plainSec)
	res, b = ae.decide(t, ae.plain.cookie, req.ID, approvals.Approve)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	// Someone who held the role before decides.
	ae.stepUp(t, ae.b.cookie, ae.secB)
	if res, b := ae.decide(t, ae.b.cookie, req.ID, approvals.Approve); res.StatusCode != 200 {
		t.Fatalf("b decides: %d %s", res.StatusCode, b)
	}
}
