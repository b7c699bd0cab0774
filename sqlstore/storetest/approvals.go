package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/sqlstore"
)

// ApprovalsTests is the approval engine's part of the suite (issue 18): policies, requests and
// their MAC, who may decide, N-of-M under concurrency, single execution, expiry and reminders,
// each scoped to its tenant.
var ApprovalsTests = []Test{
	{"ApprovalsPolicyDefaultSetAndRolesMustExist", testApprovalsPolicy},
	{"ApprovalsCreateGetListByState", testApprovalsCreateList},
	{"ApprovalsTenantIsolation", testApprovalsIsolation},
	{"ApprovalsDecideRules", testApprovalsDecideRules},
	{"ApprovalsLinkedPersonAndServiceAccountCreatorCannotDecide", testApprovalsPeople},
	{"ApprovalsConcurrentDecisionsCountExactlyAndExecuteOnce", testApprovalsConcurrent},
	{"ApprovalsExecuteRefusals", testApprovalsExecute},
	{"ApprovalsTamperedRowRefused", testApprovalsTampered},
	{"ApprovalsSweepExpiresAndRemindsOnce", testApprovalsSweep},
	{"ApprovalsCancelOnlyByRequester", testApprovalsCancel},
}

// approvalKit is a store, two tenants, a requester and four approvers (program_admin) in A.
type approvalKit struct {
	db        *sqlstore.DB
	clock     *fakeClock
	a, b      string
	requester string
	approvers []string
	outsider  string // a user of A without an approver role
}

func newApprovalKit(t *testing.T, open Opener, slug string) *approvalKit {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	k := &approvalKit{db: db, clock: clock, a: createTenant(t, db, slug+"-a").ID, b: createTenant(t, db, slug+"-b").ID}
	k.requester = createUser(t, db, k.a, "req@"+slug+".example").ID
	for _, n := range []string{"p1", "p2", "p3", "p4"} {
		id := createUser(t, db, k.a, n+"@"+slug+".example").ID
		update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(k.a).Grant(ctx, id, authz.RoleProgramAdmin, "", nil) })
		k.approvers = append(k.approvers, id)
	}
	k.outsider = createUser(t, db, k.a, "out@"+slug+".example").ID
	return k
}

func (k *approvalKit) policy(required int) approvals.Policy {
	return approvals.Policy{Action: approvals.ActionRoleGrant, Enabled: true, ApproverRoles: []string{authz.RoleProgramAdmin},
		Required: required, TTL: time.Hour}
}

func (k *approvalKit) request(t *testing.T, tenantID, by string, required int, params any) *approvals.Request {
	t.Helper()
	raw, err := approvals.Canonical(params)
	if err != nil {
		t.Fatal(err)
	}
	r := &approvals.Request{Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: "u-1", Params: raw,
		Justification: "needed for the audit", RequestedBy: by, RequesterKind: tutela.PrincipalUser}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Approvals(tenantID).Create(ctx, r, k.policy(required)) })
	return r
}

func (k *approvalKit) decide(tenantID, id, user, verdict string) (*approvals.Request, error) {
	var out *approvals.Request
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		out, err = tx.Approvals(tenantID).Decide(ctx, id, sqlstore.Decision{UserID: user, Verdict: verdict, Comment: "looked at it"})
		return err
	})
	return out, err
}

func (k *approvalKit) execute(tenantID, id, by string, params any) error {
	raw, err := approvals.Canonical(params)
	if err != nil {
		return err
	}
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Approvals(tenantID).Execute(ctx, id, sqlstore.Execution{Kind: tutela.PrincipalUser, PrincipalID: by,
			Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: "u-1", Params: raw})
		return err
	})
}

func (k *approvalKit) get(t *testing.T, tenantID, id string) *approvals.Request {
	t.Helper()
	var r *approvals.Request
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { r, err = tx.Approvals(tenantID).Get(ctx, id); return err }); err != nil {
		t.Fatal(err)
	}
	return r
}

func mustReason(t *testing.T, err error, reason string) {
	t.Helper()
	var e *tutela.Error
	if !errors.As(err, &e) || e.Code != tutela.EAPPROVAL || e.Reason != reason {
		t.Fatalf("error = %v, want %s reason %q", err, tutela.EAPPROVAL, reason)
	}
}

func testApprovalsPolicy(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-pol")
	var pols []approvals.Policy
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { pols, err = tx.Approvals(k.a).Policies(ctx); return err })
	if len(pols) != len(approvals.Actions) {
		t.Fatalf("%d policies, want one per action", len(pols))
	}
	for _, p := range pols {
		if p.Enabled != (p.Action == approvals.ActionSubjectMerge) || !p.UpdatedAt.IsZero() {
			t.Fatalf("default policy %+v", p)
		}
	}
	p := k.policy(2)
	p.UpdatedBy = k.approvers[0]
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Approvals(k.a).SetPolicy(ctx, &p, "four eyes") })
	var got approvals.Policy
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { got, err = tx.Approvals(k.a).Policy(ctx, p.Action); return err })
	if !got.Enabled || got.Required != 2 || got.TTL != time.Hour || !slices.Equal(got.ApproverRoles, p.ApproverRoles) ||
		got.UpdatedBy != p.UpdatedBy || !got.UpdatedAt.Equal(k.clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("stored policy %+v", got)
	}
	// The other tenant still has the default.
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { got, err = tx.Approvals(k.b).Policy(ctx, p.Action); return err })
	if got.Enabled {
		t.Fatal("tenant B sees tenant A's policy")
	}
	bad := k.policy(1)
	bad.ApproverRoles = []string{"no_such_role"}
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Approvals(k.a).SetPolicy(ctx, &bad, "x") }), tutela.EINVALID)
	bad = k.policy(9)
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Approvals(k.a).SetPolicy(ctx, &bad, "x") }), tutela.EINVALID)
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Approvals(k.a).Policy(ctx, "no.such")
		return err
	}), tutela.ENOTFOUND)
}

func testApprovalsCreateList(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-list")
	r1 := k.request(t, k.a, k.requester, 1, map[string]any{"role": "auditor", "b": 1, "a": []int{2}})
	if r1.State != approvals.StatePending || r1.KeyID == 0 || len(r1.ParamsMAC) != approvals.MACSize ||
		!r1.ExpiresAt.Equal(r1.CreatedAt.Add(time.Hour)) || r1.RequesterPerson != k.requester {
		t.Fatalf("created %+v", r1)
	}
	if string(r1.Params) != `{"a":[2],"b":1,"role":"auditor"}` {
		t.Fatalf("params %s, want canonical", r1.Params)
	}
	k.clock.Add(time.Second)
	r2 := k.request(t, k.a, k.outsider, 1, map[string]any{"role": "operator"})
	if _, err := k.decide(k.a, r2.ID, k.approvers[0], approvals.Reject); err != nil {
		t.Fatal(err)
	}
	got := k.get(t, k.a, r1.ID)
	if got.Justification != "needed for the audit" || string(got.Params) != string(r1.Params) || len(got.Decisions) != 0 {
		t.Fatalf("got %+v", got)
	}
	list := func(q sqlstore.ApprovalQuery) []string {
		var rs []approvals.Request
		update(t, k.db, func(tx *sqlstore.Tx) (err error) { rs, _, err = tx.Approvals(k.a).List(ctx, q); return err })
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if ids := list(sqlstore.ApprovalQuery{}); !slices.Equal(ids, []string{r2.ID, r1.ID}) {
		t.Fatalf("all: %v", ids)
	}
	if ids := list(sqlstore.ApprovalQuery{State: approvals.StatePending}); !slices.Equal(ids, []string{r1.ID}) {
		t.Fatalf("pending: %v", ids)
	}
	if ids := list(sqlstore.ApprovalQuery{State: approvals.StateRejected}); !slices.Equal(ids, []string{r2.ID}) {
		t.Fatalf("rejected: %v", ids)
	}
	if ids := list(sqlstore.ApprovalQuery{RequestedBy: k.requester}); !slices.Equal(ids, []string{r1.ID}) {
		t.Fatalf("mine: %v", ids)
	}
	var next string
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		_, next, err = tx.Approvals(k.a).List(ctx, sqlstore.ApprovalQuery{Limit: 1})
		return err
	})
	if next != r2.ID {
		t.Fatalf("next cursor %q", next)
	}
	if ids := list(sqlstore.ApprovalQuery{After: next}); !slices.Equal(ids, []string{r1.ID}) {
		t.Fatalf("second page: %v", ids)
	}
	mustCode(t, k.db.View(ctx, func(tx *sqlstore.Tx) error {
		_, _, err := tx.Approvals(k.a).List(ctx, sqlstore.ApprovalQuery{State: "bogus"})
		return err
	}), tutela.EINVALID)
	// No justification, nothing stored.
	bad := &approvals.Request{Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: "u", Params: json.RawMessage(`{}`),
		Justification: " ", RequestedBy: k.requester, RequesterKind: tutela.PrincipalUser}
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Approvals(k.a).Create(ctx, bad, k.policy(1)) }), tutela.EINVALID)
	if n := countRows(t, k.db, "approval_requests"); n != 2 {
		t.Fatalf("%d requests stored, want 2", n)
	}
}

func testApprovalsIsolation(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-iso")
	r := k.request(t, k.a, k.requester, 1, map[string]any{"role": "auditor"})
	mustCode(t, k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Approvals(k.b).Get(ctx, r.ID); return err }), tutela.ENOTFOUND)
	mustCode(t, k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Approvals(k.a).Get(ctx, "not-a-uuid"); return err }), tutela.ENOTFOUND)
	_, err := k.decide(k.b, r.ID, k.approvers[0], approvals.Approve)
	mustCode(t, err, tutela.ENOTFOUND)
	mustReason(t, k.execute(k.b, r.ID, k.requester, map[string]any{"role": "auditor"}), approvals.ReasonUnknown)
	mustReason(t, k.execute(k.a, "garbage", k.requester, map[string]any{"role": "auditor"}), approvals.ReasonUnknown)
	var rs []approvals.Request
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		rs, _, err = tx.Approvals(k.b).List(ctx, sqlstore.ApprovalQuery{})
		return err
	})
	if len(rs) != 0 {
		t.Fatalf("tenant B lists %d of A's requests", len(rs))
	}
}

func testApprovalsDecideRules(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-rules")
	r := k.request(t, k.a, k.requester, 2, map[string]any{"role": "auditor"})
	// The requester may not decide (even were they an approver).
	update(t, k.db, func(tx *sqlstore.Tx) error {
		return tx.Users(k.a).Grant(ctx, k.requester, authz.RoleProgramAdmin, "", nil)
	})
	_, err := k.decide(k.a, r.ID, k.requester, approvals.Approve)
	mustCode(t, err, tutela.EFORBIDDEN)
	// Without an approver role.
	_, err = k.decide(k.a, r.ID, k.outsider, approvals.Approve)
	mustCode(t, err, tutela.EFORBIDDEN)
	// Comment and verdict are required.
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Approvals(k.a).Decide(ctx, r.ID, sqlstore.Decision{UserID: k.approvers[0], Verdict: approvals.Approve})
		return err
	}), tutela.EINVALID)
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Approvals(k.a).Decide(ctx, r.ID, sqlstore.Decision{UserID: k.approvers[0], Verdict: "maybe", Comment: "x"})
		return err
	}), tutela.EINVALID)
	got, err := k.decide(k.a, r.ID, k.approvers[0], approvals.Approve)
	if err != nil || got.State != approvals.StatePending || got.Approvals != 1 {
		t.Fatalf("first approval: %+v, %v", got, err)
	}
	// One decision per person.
	_, err = k.decide(k.a, r.ID, k.approvers[0], approvals.Approve)
	mustCode(t, err, tutela.ECONFLICT)
	got, err = k.decide(k.a, r.ID, k.approvers[1], approvals.Approve)
	if err != nil || got.State != approvals.StateApproved || got.Approvals != 2 || got.DecidedAt == nil || len(got.Decisions) != 2 {
		t.Fatalf("second approval: %+v, %v", got, err)
	}
	// Decided: no more decisions.
	_, err = k.decide(k.a, r.ID, k.approvers[2], approvals.Reject)
	mustCode(t, err, tutela.ECONFLICT)

	// One rejection ends a request.
	r2 := k.request(t, k.a, k.requester, 3, map[string]any{"role": "operator"})
	if got, err = k.decide(k.a, r2.ID, k.approvers[0], approvals.Reject); err != nil || got.State != approvals.StateRejected {
		t.Fatalf("reject: %+v, %v", got, err)
	}
	mustReason(t, k.execute(k.a, r2.ID, k.requester, map[string]any{"role": "operator"}), approvals.ReasonRejected)

	// A role removed since the request no longer decides.
	r3 := k.request(t, k.a, k.requester, 1, map[string]any{"role": "x"})
	update(t, k.db, func(tx *sqlstore.Tx) error {
		return tx.Users(k.a).RevokeRole(ctx, k.approvers[3], authz.RoleProgramAdmin)
	})
	_, err = k.decide(k.a, r3.ID, k.approvers[3], approvals.Approve)
	mustCode(t, err, tutela.EFORBIDDEN)

	// Expired while pending: refused, and marked expired (the refusal commits).
	k.clock.Add(time.Hour)
	_, err = k.decide(k.a, r3.ID, k.approvers[0], approvals.Approve)
	if !errors.Is(err, sqlstore.ErrApprovalExpired) {
		t.Fatalf("expired decide: %v", err)
	}
	// Decide returned the error, so Update rolled back; the caller commits it instead.
	if err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Approvals(k.a).Decide(ctx, r3.ID, sqlstore.Decision{UserID: k.approvers[0], Verdict: approvals.Approve, Comment: "ok"})
		if errors.Is(err, sqlstore.ErrApprovalExpired) {
			return nil
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if st := k.get(t, k.a, r3.ID).State; st != approvals.StateExpired {
		t.Fatalf("state %s, want expired", st)
	}
	_, err = k.decide(k.a, r3.ID, k.approvers[0], approvals.Approve)
	mustCode(t, err, tutela.ECONFLICT)
}

func testApprovalsPeople(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-people")
	// approvers[0] is also the requester's second account.
	var changed bool
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		changed, err = tx.LinkPerson(ctx, k.a, k.approvers[0], k.requester, "same person, second account")
		return err
	})
	if !changed {
		t.Fatal("link changed nothing")
	}
	var pa, pr string
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		if pa, err = tx.PersonOf(ctx, k.a, tutela.PrincipalUser, k.approvers[0]); err != nil {
			return err
		}
		pr, err = tx.PersonOf(ctx, k.a, tutela.PrincipalUser, k.requester)
		return err
	})
	if pa != pr {
		t.Fatalf("linked accounts are persons %s and %s", pa, pr)
	}
	r := k.request(t, k.a, k.requester, 1, map[string]any{"role": "auditor"})
	_, err := k.decide(k.a, r.ID, k.approvers[0], approvals.Approve)
	mustCode(t, err, tutela.EFORBIDDEN)

	// Linking after the request still counts; and merges whole sets (approvers[1] joins the
	// person of approvers[2], who is then linked to the requester).
	r2 := k.request(t, k.a, k.approvers[1], 1, map[string]any{"role": "x"})
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.LinkPerson(ctx, k.a, k.approvers[2], k.approvers[1], "one person")
		return err
	})
	_, err = k.decide(k.a, r2.ID, k.approvers[2], approvals.Approve)
	mustCode(t, err, tutela.EFORBIDDEN)
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.LinkPerson(ctx, k.a, k.requester, k.approvers[2], "one person")
		return err
	})
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		pa, err = tx.PersonOf(ctx, k.a, tutela.PrincipalUser, k.approvers[1])
		return err
	})
	if pa != pr {
		t.Fatalf("merged sets: approvers[1] is person %s, requester %s", pa, pr)
	}
	// Unknown same_as and self-links are refused; another tenant's user is unknown.
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.LinkPerson(ctx, k.a, k.requester, k.requester, "x")
		return err
	}), tutela.EINVALID)
	other := createUser(t, k.db, k.b, "b@ap-people.example").ID
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.LinkPerson(ctx, k.a, k.requester, other, "x")
		return err
	}), tutela.EINVALID)

	// A service account created by approvers[3] requests: approvers[3] may not decide.
	sa := &sqlstore.ServiceAccount{TenantID: k.a, Name: "robot"}
	meta := &tutela.RequestMeta{Principal: &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: k.a, UserID: k.approvers[3]}}
	if err := k.db.Update(tutela.WithRequestMeta(ctx, meta), func(tx *sqlstore.Tx) error {
		return tx.CreateServiceAccount(tutela.WithRequestMeta(ctx, meta), sa, []byte("hash"))
	}); err != nil {
		t.Fatal(err)
	}
	// …nor through a service account that service account made.
	sa2 := &sqlstore.ServiceAccount{TenantID: k.a, Name: "robot2"}
	meta2 := &tutela.RequestMeta{Principal: &tutela.Principal{Kind: tutela.PrincipalServiceAccount, TenantID: k.a, UserID: sa.ID}}
	if err := k.db.Update(tutela.WithRequestMeta(ctx, meta2), func(tx *sqlstore.Tx) error {
		return tx.CreateServiceAccount(tutela.WithRequestMeta(ctx, meta2), sa2, []byte("hash2"))
	}); err != nil {
		t.Fatal(err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		return tx.Users(k.a).Grant(ctx, k.outsider, authz.RoleProgramAdmin, "", nil)
	})
	for _, id := range []string{sa.ID, sa2.ID} {
		raw, _ := approvals.Canonical(map[string]any{"role": "auditor"})
		rs := &approvals.Request{Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: "u-1", Params: raw,
			Justification: "robot asks", RequestedBy: id, RequesterKind: tutela.PrincipalServiceAccount}
		update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Approvals(k.a).Create(ctx, rs, k.policy(1)) })
		if rs.RequesterPerson != k.approvers[3] {
			t.Fatalf("service account's person %q, want its creator", rs.RequesterPerson)
		}
		_, err = k.decide(k.a, rs.ID, k.approvers[3], approvals.Approve)
		mustCode(t, err, tutela.EFORBIDDEN)
		// Somebody else may.
		if got, err := k.decide(k.a, rs.ID, k.outsider, approvals.Approve); err != nil || got.State != approvals.StateApproved {
			t.Fatalf("other person: %+v, %v", got, err)
		}
	}
	// A service account with no creator is its own person.
	sa3 := &sqlstore.ServiceAccount{TenantID: k.a, Name: "cli"}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.CreateServiceAccount(ctx, sa3, []byte("h3")) })
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		pa, err = tx.PersonOf(ctx, k.a, tutela.PrincipalServiceAccount, sa3.ID)
		return err
	})
	if pa != "sa:"+sa3.ID {
		t.Fatalf("creatorless service account's person %q", pa)
	}
}

func testApprovalsConcurrent(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-race")
	// N = 3 of 4 approvers, all at once: exactly 3 decisions count, approved once.
	r := k.request(t, k.a, k.requester, 3, map[string]any{"role": "auditor"})
	var wg sync.WaitGroup
	var ok, conflict atomic.Int32
	errs := make(chan error, len(k.approvers))
	for _, u := range k.approvers {
		wg.Go(func() {
			_, err := k.decide(k.a, r.ID, u, approvals.Approve)
			switch tutela.ErrorCode(err) {
			case "":
				ok.Add(1)
			case tutela.ECONFLICT:
				conflict.Add(1)
			default:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := k.get(t, k.a, r.ID)
	if ok.Load() != 3 || conflict.Load() != 1 || got.State != approvals.StateApproved || got.Approvals != 3 || len(got.Decisions) != 3 {
		t.Fatalf("ok %d conflict %d, request %s with %d approvals and %d decisions", ok.Load(), conflict.Load(), got.State,
			got.Approvals, len(got.Decisions))
	}
	// Concurrent executions of the approved call: exactly one runs.
	var ran, refused atomic.Int32
	for range 6 {
		wg.Go(func() {
			err := k.execute(k.a, r.ID, k.requester, map[string]any{"role": "auditor"})
			var e *tutela.Error
			switch {
			case err == nil:
				ran.Add(1)
			case errors.As(err, &e) && e.Reason == approvals.ReasonExecuted:
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ran.Load() != 1 || refused.Load() != 5 {
		t.Fatalf("%d executions ran, %d refused; want 1 and 5", ran.Load(), refused.Load())
	}
	if got := k.get(t, k.a, r.ID); got.State != approvals.StateExecuted || got.ExecutedAt == nil {
		t.Fatalf("after execution: %+v", got)
	}
}

func testApprovalsExecute(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-exec")
	params := map[string]any{"role": "auditor", "expires": nil}
	r := k.request(t, k.a, k.requester, 1, params)
	mustReason(t, k.execute(k.a, r.ID, k.requester, params), approvals.ReasonPending)
	if _, err := k.decide(k.a, r.ID, k.approvers[0], approvals.Approve); err != nil {
		t.Fatal(err)
	}
	mustReason(t, k.execute(k.a, r.ID, k.approvers[1], params), approvals.ReasonNotRequester)
	mustReason(t, k.execute(k.a, r.ID, k.requester, map[string]any{"role": "super_admin", "expires": nil}), approvals.ReasonMismatch)
	mustReason(t, k.execute(k.a, r.ID, k.requester, map[string]any{"role": "auditor"}), approvals.ReasonMismatch)
	// Another target with the same parameters.
	raw, _ := approvals.Canonical(params)
	mustReason(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Approvals(k.a).Execute(ctx, r.ID, sqlstore.Execution{Kind: tutela.PrincipalUser, PrincipalID: k.requester,
			Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: "u-2", Params: raw})
		return err
	}), approvals.ReasonMismatch)
	// A service account with the requester's ID is another principal.
	mustReason(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Approvals(k.a).Execute(ctx, r.ID, sqlstore.Execution{Kind: tutela.PrincipalServiceAccount, PrincipalID: k.requester,
			Action: approvals.ActionRoleGrant, TargetType: "user", TargetID: "u-1", Params: raw})
		return err
	}), approvals.ReasonNotRequester)
	// Key order does not matter: canonical parameters.
	if err := k.execute(k.a, r.ID, k.requester, map[string]any{"expires": nil, "role": "auditor"}); err != nil {
		t.Fatal(err)
	}
	mustReason(t, k.execute(k.a, r.ID, k.requester, params), approvals.ReasonExecuted)

	// Approved, then expired.
	r2 := k.request(t, k.a, k.requester, 1, params)
	if _, err := k.decide(k.a, r2.ID, k.approvers[0], approvals.Approve); err != nil {
		t.Fatal(err)
	}
	k.clock.Add(time.Hour)
	mustReason(t, k.execute(k.a, r2.ID, k.requester, params), approvals.ReasonExpired)
	// Cancelled.
	r3 := k.request(t, k.a, k.requester, 1, params)
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Approvals(k.a).Cancel(ctx, r3.ID, tutela.PrincipalUser, k.requester)
		return err
	})
	mustReason(t, k.execute(k.a, r3.ID, k.requester, params), approvals.ReasonCancelled)
}

func testApprovalsTampered(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-tamper")
	for _, change := range []string{
		`UPDATE approval_requests SET params = '{"role":"super_admin"}' WHERE id = $1`,
		`UPDATE approval_requests SET target_id = 'u-2' WHERE id = $1`,
		`UPDATE approval_requests SET action = 'dsr.erasure' WHERE id = $1`,
		`UPDATE approval_requests SET key_id = key_id + 1 WHERE id = $1`, // a key the keyset does not hold
	} {
		r := k.request(t, k.a, k.requester, 1, map[string]any{"role": "auditor"})
		if _, err := k.db.SQL().ExecContext(ctx, change, r.ID); err != nil {
			t.Fatal(err)
		}
		_, err := k.decide(k.a, r.ID, k.approvers[0], approvals.Approve)
		mustReason(t, err, approvals.ReasonTampered)
		// Approved first, altered after: the call is refused too, whatever it sends.
		r2 := k.request(t, k.a, k.requester, 1, map[string]any{"role": "auditor"})
		if _, err := k.decide(k.a, r2.ID, k.approvers[0], approvals.Approve); err != nil {
			t.Fatal(err)
		}
		if _, err := k.db.SQL().ExecContext(ctx, change, r2.ID); err != nil {
			t.Fatal(err)
		}
		mustReason(t, k.execute(k.a, r2.ID, k.requester, map[string]any{"role": "super_admin"}), approvals.ReasonTampered)
		mustReason(t, k.execute(k.a, r2.ID, k.requester, map[string]any{"role": "auditor"}), approvals.ReasonTampered)
	}
	// A MAC moved from another request does not fit.
	r1 := k.request(t, k.a, k.requester, 1, map[string]any{"role": "auditor"})
	r2 := k.request(t, k.a, k.requester, 1, map[string]any{"role": "auditor"})
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE approval_requests SET params_mac = $1 WHERE id = $2`, r1.ParamsMAC, r2.ID); err != nil {
		t.Fatal(err)
	}
	_, err := k.decide(k.a, r2.ID, k.approvers[0], approvals.Approve)
	mustReason(t, err, approvals.ReasonTampered)
	// A pending request set to approved behind the store's back has no decisions to stand on;
	// one approved with a rejection written in beside it neither.
	r3 := k.request(t, k.a, k.requester, 1, map[string]any{"role": "auditor"})
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE approval_requests SET state = 'approved', approvals = 1 WHERE id = $1`, r3.ID); err != nil {
		t.Fatal(err)
	}
	mustReason(t, k.execute(k.a, r3.ID, k.requester, map[string]any{"role": "auditor"}), approvals.ReasonTampered)
	r4 := k.request(t, k.a, k.requester, 2, map[string]any{"role": "auditor"})
	if _, err := k.decide(k.a, r4.ID, k.approvers[0], approvals.Approve); err != nil {
		t.Fatal(err)
	}
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE approval_requests SET state = 'approved', approvals = 2 WHERE id = $1`, r4.ID); err != nil {
		t.Fatal(err)
	}
	mustReason(t, k.execute(k.a, r4.ID, k.requester, map[string]any{"role": "auditor"}), approvals.ReasonTampered)
}

func testApprovalsSweep(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-sweep")
	pending := k.request(t, k.a, k.requester, 1, map[string]any{"n": 1})
	approved := k.request(t, k.a, k.requester, 1, map[string]any{"n": 2})
	if _, err := k.decide(k.a, approved.ID, k.approvers[0], approvals.Approve); err != nil {
		t.Fatal(err)
	}
	k.clock.Add(10 * time.Minute)
	late := k.request(t, k.b, createUser(t, k.db, k.b, "b@ap-sweep.example").ID, 1, map[string]any{"n": 3})
	sweep := func() sqlstore.Sweep {
		var sw sqlstore.Sweep
		update(t, k.db, func(tx *sqlstore.Tx) (err error) { sw, err = tx.SweepApprovals(ctx); return err })
		return sw
	}
	ids := func(rs []approvals.Request) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	if sw := sweep(); len(sw.Expired) != 0 || len(sw.Reminders) != 0 {
		t.Fatalf("early sweep: %+v", sw)
	}
	k.clock.Add(20 * time.Minute) // pending is half way through its hour; late is not
	if sw := sweep(); len(sw.Expired) != 0 || !slices.Equal(ids(sw.Reminders), []string{pending.ID}) {
		t.Fatalf("half-life sweep: expired %v reminders %v", ids(sw.Expired), ids(sw.Reminders))
	}
	if sw := sweep(); len(sw.Reminders) != 0 {
		t.Fatal("reminded twice")
	}
	k.clock.Add(10 * time.Minute) // late is half way
	if sw := sweep(); !slices.Equal(ids(sw.Reminders), []string{late.ID}) {
		t.Fatalf("late reminder: %v", ids(sw.Reminders))
	}
	k.clock.Add(25 * time.Minute) // pending and approved are past their hour, late is not
	sw := sweep()
	got := ids(sw.Expired)
	slices.Sort(got)
	want := []string{pending.ID, approved.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("expired %v, want %v", got, want)
	}
	if sw := sweep(); len(sw.Expired) != 0 {
		t.Fatal("expired twice")
	}
	for _, id := range want {
		if st := k.get(t, k.a, id).State; st != approvals.StateExpired {
			t.Fatalf("%s is %s", id, st)
		}
	}
	if st := k.get(t, k.b, late.ID).State; st != approvals.StatePending {
		t.Fatalf("late request is %s", st)
	}
	// Each expiry is audited once.
	var n int
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE action = 'approval.expired'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d approval.expired events, want 2", n)
	}
}

func testApprovalsCancel(t *testing.T, open Opener) {
	k := newApprovalKit(t, open, "ap-cancel")
	r := k.request(t, k.a, k.requester, 1, map[string]any{"n": 1})
	cancel := func(by string) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.Approvals(k.a).Cancel(ctx, r.ID, tutela.PrincipalUser, by)
			return err
		})
	}
	mustCode(t, cancel(k.approvers[0]), tutela.EFORBIDDEN)
	if _, err := k.decide(k.a, r.ID, k.approvers[0], approvals.Approve); err != nil {
		t.Fatal(err)
	}
	if err := cancel(k.requester); err != nil {
		t.Fatal(err)
	}
	mustCode(t, cancel(k.requester), tutela.ECONFLICT)
	if st := k.get(t, k.a, r.ID).State; st != approvals.StateCancelled {
		t.Fatalf("state %s", st)
	}
}
