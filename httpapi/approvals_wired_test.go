package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// The calls a tenant's approval policy may hold (docs/approvals.md, "Calls held for approval"), each driven through
// the same life: held without a change, approved by N other people, refused with one parameter
// changed or by another user naming the approval, run once, refused the second time.

// enablePolicy turns the tenant's policy for action on: required approvals from holders of roles.
func enablePolicy(t *testing.T, e *env, tenantID, action string, required int, roles ...string) {
	t.Helper()
	if len(roles) == 0 {
		roles = []string{"program_admin"}
	}
	pol := &approvals.Policy{Action: action, Enabled: true, ApproverRoles: roles, Required: required, TTL: 24 * time.Hour}
	if err := e.db.Update(ctxBG, func(tx *sqlstore.Tx) error {
		return tx.Approvals(tenantID).SetPolicy(ctxBG, pol, "test policy")
	}); err != nil {
		t.Fatal(err)
	}
}

// approveAs records each user's approval of request id.
func approveAs(t *testing.T, e *env, tenantID, id string, userIDs ...string) {
	t.Helper()
	for _, u := range userIDs {
		if err := e.db.Update(ctxBG, func(tx *sqlstore.Tx) error {
			_, err := tx.Approvals(tenantID).Decide(ctxBG, id, sqlstore.Decision{UserID: u, Verdict: approvals.Approve, Comment: "checked"})
			return err
		}); err != nil {
			t.Fatalf("approval by %s: %v", u, err)
		}
	}
}

// withFields adds fields to a JSON object body ("" = {}).
func withFields(t *testing.T, body string, fields map[string]any) string {
	t.Helper()
	m := map[string]any{}
	if body != "" {
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func justified(t *testing.T, body string) string {
	return withFields(t, body, map[string]any{"justification": "ticket OPS-42: signed off by the board"})
}

func under(t *testing.T, body, approvalID string) string {
	return withFields(t, body, map[string]any{"approval_id": approvalID})
}

// gatedFlow is one gated call and what shows whether it ran.
type gatedFlow struct {
	method, path, body string // the call
	auth               any    // its requester
	tenantID           string // where the approval lives
	approvers          []string
	// other is another user who may make the same call; otherStatus, when not 0, is what they
	// get before the approval is even looked at (the call is not theirs to make at all).
	other       any
	otherStatus int
	// changed is the same call with one parameter changed: 409 mismatch, or changedStatus
	// when the changed call is refused before the approval is looked at.
	changedPath, changedBody string
	changedStatus            int
	okStatus                 int
	// secondCode, when set, is the 409 code of a second run refused before the approval is
	// looked at (the call's own state forbids it), instead of approval_invalid executed.
	secondCode string
	ran        func(t *testing.T) bool // whether the change was made
}

// run drives f through its approval.
func (f gatedFlow) run(t *testing.T, e *env) {
	t.Helper()
	changedPath := f.changedPath
	if changedPath == "" {
		changedPath = f.path
	}
	changedBody := f.changedBody
	if changedBody == "" {
		changedBody = f.body
	}
	// Held: no justification is 400; with one, 202 and the request, nothing changed.
	res, b := e.req(t, f.method, f.path, f.body, "", f.auth)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "justification" {
		t.Fatalf("held without justification: %s", b)
	}
	res, b = e.req(t, f.method, f.path, justified(t, f.body), "", f.auth)
	if res.StatusCode != 202 {
		t.Fatalf("held call: %d %s", res.StatusCode, b)
	}
	var held struct {
		Approval approvals.Request `json:"approval"`
	}
	mustUnmarshal(t, b, &held)
	id := held.Approval.ID
	if held.Approval.State != approvals.StatePending || id == "" || held.Approval.Justification == "" ||
		!strings.HasSuffix(res.Header.Get("Location"), "/approvals/"+id) {
		t.Fatalf("held answer: %s (Location %q)", b, res.Header.Get("Location"))
	}
	if f.ran(t) {
		t.Fatal("a held call made its change")
	}
	// Pending: not yet.
	res, b = e.req(t, f.method, f.path, under(t, f.body, id), "", f.auth)
	wantReason(t, res, b, "pending")
	approveAs(t, e, f.tenantID, id, f.approvers...)
	// One parameter changed: mismatch, nothing changed, the approval unspent.
	res, b = e.req(t, f.method, changedPath, under(t, changedBody, id), "", f.auth)
	if f.changedStatus != 0 {
		if res.StatusCode != f.changedStatus {
			t.Fatalf("changed call: %d %s, want %d", res.StatusCode, b, f.changedStatus)
		}
	} else {
		wantReason(t, res, b, "mismatch")
	}
	// Another user naming the approval.
	res, b = e.req(t, f.method, f.path, under(t, f.body, id), "", f.other)
	if f.otherStatus != 0 {
		if res.StatusCode != f.otherStatus {
			t.Fatalf("another user's call: %d %s, want %d", res.StatusCode, b, f.otherStatus)
		}
	} else {
		wantReason(t, res, b, "not_requester")
	}
	if f.ran(t) {
		t.Fatal("a refused call made its change")
	}
	// The approved call runs, once.
	res, b = e.req(t, f.method, f.path, under(t, f.body, id), "", f.auth)
	if res.StatusCode != f.okStatus || !f.ran(t) {
		t.Fatalf("approved call: %d %s, want %d and the change made", res.StatusCode, b, f.okStatus)
	}
	res, b = e.req(t, f.method, f.path, under(t, f.body, id), "", f.auth)
	if f.secondCode != "" {
		wantError(t, res, b, 409, f.secondCode)
	} else {
		wantReason(t, res, b, "executed")
	}
	// The request says it was executed.
	var got *approvals.Request
	if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) (err error) {
		got, err = tx.Approvals(f.tenantID).Get(ctxBG, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got.State != approvals.StateExecuted {
		t.Fatalf("request after the run: %s", got.State)
	}
}

// hasRole reports whether the user holds role now.
func hasRole(t *testing.T, e *env, tenantID, userID, role string) bool {
	t.Helper()
	var roles []string
	if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) error {
		pol, err := tx.Policy(ctxBG, tenantID, userID)
		roles = pol.Roles
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}

// Granting program_admin (a takeover role) under a 2-of-M policy; a role that takes over no one
// is never held; a per-user grant of users MANAGE is held, a deny is not.
func TestApprovalsWired_RoleGrant(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			_, a2 := e.seed(t, "acme", "admin2@example.org", pw, "program_admin")
			_, a3 := e.seed(t, "acme", "admin3@example.org", pw, "program_admin")
			_, ana := e.seed(t, "acme", "ana@example.org", pw)
			_, ben := e.seed(t, "acme", "ben@example.org", pw)
			admin := e.login(t, "acme", "admin@example.org", pw, "")
			admin2 := e.login(t, "acme", "admin2@example.org", pw, "")
			base := "/v1/tenants/" + tn.ID + "/users/"
			enablePolicy(t, e, tn.ID, approvals.ActionRoleGrant, 2)

			// A role that hands over no accounts runs as before.
			if res, b := e.req(t, "PUT", base+ana.ID+"/roles/operator", "", "", admin.cookie); res.StatusCode != 204 {
				t.Fatalf("operator grant: %d %s", res.StatusCode, b)
			}
			gatedFlow{method: "PUT", path: base + ana.ID + "/roles/program_admin", body: `{"expires_at":"2027-01-01T01:00:00+01:00"}`,
				auth: admin.cookie, tenantID: tn.ID, approvers: []string{a2.ID, a3.ID}, other: admin2.cookie,
				// The same instant written in UTC is the same parameter; another user is not.
				changedPath: base + ben.ID + "/roles/program_admin", okStatus: 204,
				ran: func(t *testing.T) bool { return hasRole(t, e, tn.ID, ana.ID, "program_admin") },
			}.run(t, e)
			if hasRole(t, e, tn.ID, ben.ID, "program_admin") {
				t.Fatal("the mismatched grant was made")
			}
			// A later expiry is another parameter.
			res, b := e.req(t, "PUT", base+ben.ID+"/roles/program_admin", justified(t, `{"expires_at":"2027-01-01T00:00:00Z"}`), "", admin.cookie)
			if res.StatusCode != 202 {
				t.Fatalf("held: %d %s", res.StatusCode, b)
			}
			var held struct{ Approval approvals.Request }
			mustUnmarshal(t, b, &held)
			approveAs(t, e, tn.ID, held.Approval.ID, a2.ID, a3.ID)
			res, b = e.req(t, "PUT", base+ben.ID+"/roles/program_admin", under(t, `{"expires_at":"2027-01-02T00:00:00Z"}`, held.Approval.ID), "", admin.cookie)
			wantReason(t, res, b, "mismatch")
			// Another role that hands over accounts (a custom one holding users MANAGE) is
			// another parameter too, and is itself held.
			if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles", `{"key":"helpdesk","name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"users","action":"MANAGE"}]}`, "", admin.cookie); res.StatusCode != 201 {
				t.Fatalf("custom role: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "PUT", base+ben.ID+"/roles/helpdesk", under(t, `{"expires_at":"2027-01-01T00:00:00Z"}`, held.Approval.ID), "", admin.cookie)
			wantReason(t, res, b, "mismatch")
			res, b = e.req(t, "PUT", base+ben.ID+"/roles/helpdesk", "", "", admin.cookie)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "justification" || hasRole(t, e, tn.ID, ben.ID, "helpdesk") {
				t.Fatalf("custom takeover role without justification: %s", b)
			}
			res, b = e.req(t, "PUT", base+ben.ID+"/roles/program_admin", under(t, `{"expires_at":"2026-12-31T19:00:00-05:00"}`, held.Approval.ID), "", admin.cookie)
			if res.StatusCode != 204 || !hasRole(t, e, tn.ID, ben.ID, "program_admin") {
				t.Fatalf("the same instant, another offset: %d %s", res.StatusCode, b)
			}

			// Per-user grants: users MANAGE hands over accounts; a deny never waits.
			perms := base + ana.ID + "/permissions"
			if res, b := e.req(t, "POST", perms, `{"resource":"users","action":"MANAGE","effect":"deny"}`, "", admin.cookie); res.StatusCode != 201 {
				t.Fatalf("deny: %d %s", res.StatusCode, b)
			}
			_, cy := e.seed(t, "acme", "cy@example.org", pw)
			grants := func() int {
				var n int
				if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) error {
					ups, err := tx.Users(tn.ID).Permissions(ctxBG, cy.ID)
					n = len(ups)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return n
			}
			gatedFlow{method: "POST", path: base + cy.ID + "/permissions", body: `{"resource":"users","action":"MANAGE","effect":"allow"}`,
				auth: admin.cookie, tenantID: tn.ID, approvers: []string{a2.ID, a3.ID}, other: admin2.cookie,
				changedBody: `{"resource":"roles","action":"MANAGE","effect":"allow"}`, okStatus: 201,
				ran: func(t *testing.T) bool { return grants() == 1 },
			}.run(t, e)
			if grants() != 1 {
				t.Fatalf("%d grants after the flow, want 1", grants())
			}
		})
	}
}

// Exports: the subject, the purpose and the TTL are approved.
func TestApprovalsWired_SubjectExport(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			_, a2 := se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
			admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
			id, other := se.create(t), se.create(t)
			exports := func(subject string) int {
				res, b := se.req(t, "GET", se.base+"/subjects/"+subject+"/exports", "", "", se.admin)
				var l struct{ Exports []json.RawMessage }
				if res.StatusCode != 200 {
					t.Fatalf("list: %d %s", res.StatusCode, b)
				}
				mustUnmarshal(t, b, &l)
				return len(l.Exports)
			}
			enablePolicy(t, se.env, se.tenant.ID, approvals.ActionSubjectExport, 1)
			path := se.base + "/subjects/" + id + "/exports"
			flows := []gatedFlow{
				{changedPath: se.base + "/subjects/" + other + "/exports"},
				{changedBody: `{"purpose":"aid","ttl_seconds":3600}`},
				{changedBody: `{"purpose":"case_management","ttl_seconds":7200}`},
			}
			for i, f := range flows {
				f.method, f.path, f.body, f.auth, f.tenantID = "POST", path, `{"purpose":"case_management","ttl_seconds":3600}`, se.admin, se.tenant.ID
				f.approvers, f.other, f.okStatus = []string{a2.ID}, admin2.AccessToken, 201
				f.ran = func(t *testing.T) bool { return exports(id) == i+1 }
				f.run(t, se.env)
			}
			if exports(other) != 0 {
				t.Fatal("the mismatched export was made")
			}
			// The platform super-admin is not one of the tenant's accounts: it cannot request
			// an approval here, and is refused rather than exporting unapproved.
			res, b := se.req(t, "POST", path, justified(t, `{"purpose":"case_management"}`), "", se.root)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if exports(id) != len(flows) {
				t.Fatal("the platform's refused export was made")
			}
		})
	}
}

// DSR erasures: executing one waits; another erasure request is another parameter; only the
// request's approver may execute it at all.
func TestApprovalsWired_DSRErasure(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
			_, a3u := se.seed(t, "acme", "admin3@example.org", pw, "program_admin")
			admin := se.login(t, "acme", "admin@example.org", pw, "")
			admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
			submitted := func(subj, kind string) string {
				one := se.base + "/dsr/" + se.dsrCall(t, "POST", se.base+"/dsr", `{"subject_id":"`+subj+`","kind":"`+kind+`","jurisdiction":"gdpr"}`, se.operator, 201).ID
				se.dsrCall(t, "POST", one+"/verify", `{"result":"verified","method":"document_copy"}`, se.operator, 200)
				se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 200)
				se.dsrCall(t, "POST", one+"/submit", `{}`, admin.AccessToken, 200)
				return one
			}
			subj, subj2 := se.create(t), se.create(t)
			erasure, other := submitted(subj, "erasure"), submitted(subj2, "erasure")
			access := submitted(subj, "access")
			enablePolicy(t, se.env, se.tenant.ID, approvals.ActionErasure, 1)
			// Another kind of request is not an erasure: it runs as before.
			if v := se.dsrCall(t, "POST", access+"/approve", "", admin2.AccessToken, 200); v.Status != "completed" {
				t.Fatalf("access request: %+v", v)
			}
			erased := func(s string) bool {
				res, _ := se.req(t, "GET", se.base+"/subjects/"+s+"?purpose=case_management", "", "", se.root)
				return res.StatusCode == 404
			}
			gatedFlow{method: "POST", path: erasure + "/approve", auth: admin2.AccessToken, tenantID: se.tenant.ID,
				approvers: []string{a3u.ID}, other: admin.AccessToken, otherStatus: 403,
				changedPath: other + "/approve", okStatus: 200, secondCode: tutela.ECONFLICT, // the DSR is closed
				ran: func(t *testing.T) bool { return erased(subj) },
			}.run(t, se.env)
			if erased(subj2) {
				t.Fatal("the mismatched erasure ran")
			}
			res, b := se.req(t, "GET", other, "", "", se.admin)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"status":"submitted"`) {
				t.Fatalf("the other request moved: %s", b)
			}
		})
	}
}

// Key rotation: the approval lives in the super-admin's own tenant.
func TestApprovalsWired_KeyRotation(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, func(deps *httpapi.Deps) { deps.Keys = newVault(t, deps.DB) })
			rootTn, _ := e.seed(t, "root", "root@example.org", pw, "super_admin")
			_, r2 := e.seed(t, "root", "root2@example.org", pw, "super_admin")
			acme, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			root := e.login(t, "root", "root@example.org", pw, "")
			root2 := e.login(t, "root", "root2@example.org", pw, "")
			v := newVault(t, e.db)
			for _, tenant := range []string{"", acme.ID} {
				if _, err := v.Encrypt(ctxBG, tenant, vault.PurposeTOTP, []byte("seed"), nil); err != nil {
					t.Fatal(err)
				}
			}
			keysOf := func(tenant string) int {
				ks, err := sqlstore.KeysetStore{DB: e.db}.GetKeyset(ctxBG, tenant, vault.PurposeTOTP)
				if err != nil {
					t.Fatal(err)
				}
				return len(ks.Keys)
			}
			enablePolicy(t, e, rootTn.ID, approvals.ActionKeyRotation, 1, "super_admin")
			// A keyset that does not exist is refused before anything is asked.
			res, b := e.req(t, "POST", "/v1/keys/rotate", justified(t, `{"purpose":"personal_data","tenant_id":"`+acme.ID+`"}`), "", root.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			gatedFlow{method: "POST", path: "/v1/keys/rotate", body: `{"purpose":"totp"}`, auth: root.cookie, tenantID: rootTn.ID,
				approvers: []string{r2.ID}, other: root2.cookie,
				changedBody: `{"purpose":"totp","tenant_id":"` + acme.ID + `"}`, okStatus: 200,
				ran: func(t *testing.T) bool { return keysOf("") == 2 },
			}.run(t, e)
			if keysOf(acme.ID) != 1 {
				t.Fatal("the mismatched rotation ran")
			}
		})
	}
}

// Tenant promotion: simulation → provisioning waits; never back; mode changes alone.
func TestApprovalsWired_TenantPromotion(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			e.seed(t, "root", "root@example.org", pw, "super_admin")
			root := e.login(t, "root", "root@example.org", pw, "")
			res, b := e.req(t, "POST", "/v1/tenants", `{"slug":"rehearsal","name":"Rehearsal","data_region":"eu","mode":"simulation"}`, "", root.cookie)
			var sim tutela.Tenant
			if mustUnmarshal(t, b, &sim); res.StatusCode != 201 || sim.Mode != tutela.TenantSimulation {
				t.Fatalf("create in simulation: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "POST", "/v1/tenants", `{"slug":"rehearsal2","name":"Rehearsal 2","data_region":"eu","mode":"simulation"}`, "", root.cookie)
			var sim2 tutela.Tenant
			if mustUnmarshal(t, b, &sim2); res.StatusCode != 201 {
				t.Fatalf("create: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "POST", "/v1/tenants", `{"slug":"live","name":"Live","data_region":"eu","mode":"pretend"}`, "", root.cookie)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "mode" {
				t.Fatalf("bad mode: %s", b)
			}
			res, b = e.req(t, "POST", "/v1/tenants", `{"slug":"live","name":"Live","data_region":"eu"}`, "", root.cookie)
			var live tutela.Tenant
			if mustUnmarshal(t, b, &live); res.StatusCode != 201 || live.Mode != tutela.TenantProvisioning {
				t.Fatalf("default mode: %d %s", res.StatusCode, b)
			}
			// Never back.
			res, b = e.req(t, "PATCH", "/v1/tenants/"+live.ID, `{"mode":"simulation"}`, "", root.cookie)
			wantError(t, res, b, 409, tutela.ECONFLICT)

			e.seed(t, "rehearsal", "admin@example.org", pw, "program_admin")
			_, a2 := e.seed(t, "rehearsal", "admin2@example.org", pw, "program_admin")
			_, a3 := e.seed(t, "rehearsal", "admin3@example.org", pw, "program_admin")
			e.seed(t, "rehearsal2", "admin@example.org", pw, "program_admin")
			admin := e.login(t, "rehearsal", "admin@example.org", pw, "")
			admin2 := e.login(t, "rehearsal", "admin2@example.org", pw, "")
			otherAdmin := e.login(t, "rehearsal2", "admin@example.org", pw, "")
			path := "/v1/tenants/" + sim.ID
			// Another tenant's administrator: not found.
			res, b = e.req(t, "PATCH", path, `{"mode":"provisioning"}`, "", otherAdmin.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			// Mode goes alone.
			res, b = e.req(t, "PATCH", path, `{"mode":"provisioning","name":"Renamed"}`, "", admin.cookie)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "mode" {
				t.Fatalf("mode with another field: %s", b)
			}
			mode := func(id string) tutela.TenantMode {
				var tn *tutela.Tenant
				if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) (err error) { tn, err = tx.Tenant(ctxBG, id); return err }); err != nil {
					t.Fatal(err)
				}
				return tn.Mode
			}
			enablePolicy(t, e, sim.ID, approvals.ActionTenantPromotion, 2)
			// The parameters are the tenant and the mode, and "provisioning" is the only
			// promotion: the one parameter to change is the tenant, which is not this
			// administrator's (404 before the approval is looked at).
			gatedFlow{method: "PATCH", path: path, body: `{"mode":"provisioning"}`, auth: admin.cookie, tenantID: sim.ID,
				approvers: []string{a2.ID, a3.ID}, other: admin2.cookie, okStatus: 200,
				changedPath: "/v1/tenants/" + sim2.ID, changedStatus: 404,
				ran: func(t *testing.T) bool { return mode(sim.ID) == tutela.TenantProvisioning },
			}.run(t, e)
			if mode(sim2.ID) != tutela.TenantSimulation {
				t.Fatal("the other tenant was promoted")
			}
			res, b = e.req(t, "PATCH", path, `{"mode":"simulation"}`, "", admin.cookie)
			wantError(t, res, b, 409, tutela.ECONFLICT)
			// The platform, under the other tenant's policy: refused, not promoted unapproved.
			enablePolicy(t, e, sim2.ID, approvals.ActionTenantPromotion, 1)
			res, b = e.req(t, "PATCH", "/v1/tenants/"+sim2.ID, justified(t, `{"mode":"provisioning"}`), "", root.cookie)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if mode(sim2.ID) != tutela.TenantSimulation {
				t.Fatal("the platform promoted past the tenant's policy")
			}
			recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: sim.ID, Action: "tenant.promoted", Limit: 10})
			if err != nil || len(recs) != 1 || recs[0].Event.Details["approval_id"] == nil ||
				recs[0].Event.Reason != "ticket OPS-42: signed off by the board" {
				t.Fatalf("tenant.promoted: %v %+v", err, recs)
			}
		})
	}
}

// AI budgets: raising one (or lifting it) waits, with every field bound; lowering never waits.
func TestApprovalsWired_CreditTopUp(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			_, a2 := e.seed(t, "acme", "admin2@example.org", pw, "program_admin")
			admin := e.login(t, "acme", "admin@example.org", pw, "")
			admin2 := e.login(t, "acme", "admin2@example.org", pw, "")
			path := "/v1/tenants/" + tn.ID + "/ai/settings"
			settings := func(day, month int) string {
				return `{"requests_per_minute":60,"tokens_per_day":` + strconv.Itoa(day) + `,"tokens_per_month":` + strconv.Itoa(month) + `,"id_countries":["gb"]}`
			}
			budget := func() (int64, int64) {
				res, b := e.req(t, "GET", path, "", "", admin.cookie)
				if res.StatusCode != 200 {
					t.Fatalf("get: %d %s", res.StatusCode, b)
				}
				var s struct {
					Day   int64 `json:"tokens_per_day"`
					Month int64 `json:"tokens_per_month"`
				}
				mustUnmarshal(t, b, &s)
				return s.Day, s.Month
			}
			// From none (0, unlimited), any limit lowers it: not held, even with the policy on.
			enablePolicy(t, e, tn.ID, approvals.ActionCreditTopUp, 1)
			if res, b := e.req(t, "PUT", path, settings(1000, 20000), "", admin.cookie); res.StatusCode != 200 {
				t.Fatalf("first limits: %d %s", res.StatusCode, b)
			}
			// Lowering never waits.
			if res, b := e.req(t, "PUT", path, settings(500, 20000), "", admin.cookie); res.StatusCode != 200 {
				t.Fatalf("lowering: %d %s", res.StatusCode, b)
			}
			gatedFlow{method: "PUT", path: path, body: settings(5000, 20000), auth: admin.cookie, tenantID: tn.ID,
				approvers: []string{a2.ID}, other: admin2.cookie, changedBody: settings(6000, 20000), okStatus: 200,
				ran: func(t *testing.T) bool { day, _ := budget(); return day == 5000 },
			}.run(t, e)
			// Lifting the monthly limit (0) is a raise too.
			res, b := e.req(t, "PUT", path, justified(t, settings(5000, 0)), "", admin.cookie)
			if res.StatusCode != 202 {
				t.Fatalf("lifting a limit: %d %s", res.StatusCode, b)
			}
			if _, month := budget(); month != 20000 {
				t.Fatalf("a held lift changed the budget: %d", month)
			}
		})
	}
}

// With the policy off (the default), promotion runs at once, audited; the platform may do it.
func TestApprovalsWired_TenantPromotionPolicyOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	root := e.login(t, "root", "root@example.org", pw, "")
	res, b := e.req(t, "POST", "/v1/tenants", `{"slug":"rehearsal","name":"Rehearsal","data_region":"eu","mode":"simulation"}`, "", root.cookie)
	var sim tutela.Tenant
	if mustUnmarshal(t, b, &sim); res.StatusCode != 201 {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	if res, b := e.req(t, "GET", "/v1/tenants/"+sim.ID, "", "", root.cookie); res.StatusCode != 200 || !strings.Contains(string(b), `"mode":"simulation"`) {
		t.Fatalf("read: %d %s", res.StatusCode, b)
	}
	// A no-op mode beside other fields is no promotion.
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+sim.ID, `{"mode":"simulation","name":"Rehearsal one"}`, "", root.cookie); res.StatusCode != 200 {
		t.Fatalf("no-op mode: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "PATCH", "/v1/tenants/"+sim.ID, `{"mode":"provisioning"}`, "", root.cookie)
	var got tutela.Tenant
	if mustUnmarshal(t, b, &got); res.StatusCode != 200 || got.Mode != tutela.TenantProvisioning || got.Simulation() {
		t.Fatalf("promotion: %d %s", res.StatusCode, b)
	}
	recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: sim.ID, Action: "tenant.promoted", Limit: 10})
	if err != nil || len(recs) != 1 {
		t.Fatalf("tenant.promoted: %v %d", err, len(recs))
	}
	res, b = e.req(t, "PATCH", "/v1/tenants/"+sim.ID, `{"mode":"simulation"}`, "", root.cookie)
	wantError(t, res, b, 409, tutela.ECONFLICT)
	res, b = e.req(t, "PATCH", "/v1/tenants/"+sim.ID, `{"mode":"pretend"}`, "", root.cookie)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "mode" {
		t.Fatalf("bad mode: %s", b)
	}
}

// One approval, several concurrent runs of the approved export: exactly one export is made, the
// others are refused as executed.
func TestApprovalsWired_ConcurrentRunsExecuteOnce(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			_, a2 := se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
			id := se.create(t)
			path := se.base + "/subjects/" + id + "/exports"
			enablePolicy(t, se.env, se.tenant.ID, approvals.ActionSubjectExport, 1)
			res, b := se.req(t, "POST", path, justified(t, `{"purpose":"case_management"}`), "", se.admin)
			var held struct{ Approval approvals.Request }
			if mustUnmarshal(t, b, &held); res.StatusCode != 202 {
				t.Fatalf("held: %d %s", res.StatusCode, b)
			}
			approveAs(t, se.env, se.tenant.ID, held.Approval.ID, a2.ID)
			const n = 4
			resps := make([]*http.Response, n)
			bodies := make([][]byte, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					res, b := se.req(t, "POST", path, under(t, `{"purpose":"case_management"}`, held.Approval.ID), "", se.admin)
					resps[i], bodies[i] = res, b
				})
			}
			wg.Wait()
			made := 0
			for i, res := range resps {
				switch res.StatusCode {
				case 201:
					made++
				case 409:
					wantReason(t, res, bodies[i], "executed")
				default:
					t.Fatalf("concurrent run: %d %s", res.StatusCode, bodies[i])
				}
			}
			var list struct{ Exports []json.RawMessage }
			res, b = se.req(t, "GET", path, "", "", se.admin)
			mustUnmarshal(t, b, &list)
			if res.StatusCode != 200 || made != 1 || len(list.Exports) != 1 {
				t.Fatalf("%d runs succeeded, %d exports; want exactly 1", made, len(list.Exports))
			}
		})
	}
}

// Granting a harmless role and widening it afterwards is no way around the role.grant policy:
// the widening waits for approval, with the whole new definition bound.
func TestApprovalsWired_RoleWidening(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			_, a2 := e.seed(t, "acme", "admin2@example.org", pw, "program_admin")
			_, ana := e.seed(t, "acme", "ana@example.org", pw)
			admin := e.login(t, "acme", "admin@example.org", pw, "")
			admin2 := e.login(t, "acme", "admin2@example.org", pw, "")
			roles := "/v1/tenants/" + tn.ID + "/roles"
			narrow := `{"key":"helpdesk","name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}]}`
			if res, b := e.req(t, "POST", roles, narrow, "", admin.cookie); res.StatusCode != 201 {
				t.Fatalf("role: %d %s", res.StatusCode, b)
			}
			enablePolicy(t, e, tn.ID, approvals.ActionRoleGrant, 1)
			if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/users/"+ana.ID+"/roles/helpdesk", "", "", admin.cookie); res.StatusCode != 204 {
				t.Fatalf("a role that takes over no one: %d %s", res.StatusCode, b)
			}
			// A change that widens nothing runs as before.
			if res, b := e.req(t, "PUT", roles+"/helpdesk", `{"name":"Help desk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}]}`, "", admin.cookie); res.StatusCode != 200 {
				t.Fatalf("rename: %d %s", res.StatusCode, b)
			}
			canManage := func(t *testing.T) bool {
				var ok bool
				if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) error {
					pol, err := tx.Policy(ctxBG, tn.ID, ana.ID)
					if err == nil {
						ok = pol.Holds(authz.Permission{Resource: "users", Action: authz.Manage}, e.clock.Now())
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return ok
			}
			gatedFlow{method: "PUT", path: roles + "/helpdesk",
				body: `{"name":"Help desk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"},{"resource":"users","action":"MANAGE"}]}`,
				auth: admin.cookie, tenantID: tn.ID, approvers: []string{a2.ID}, other: admin2.cookie,
				changedBody: `{"name":"Help desk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"},{"resource":"roles","action":"MANAGE"}]}`,
				okStatus:    200, ran: canManage,
			}.run(t, e)
		})
	}
}

// Erasing a subject directly (DELETE …/subjects/{id}) is an erasure like a data-subject
// request's: the dsr.erasure policy holds it too, so the policy is not one DELETE away.
func TestApprovalsWired_DirectSubjectErasure(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqltest.Dialects[0])
	_, a2 := se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
	admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
	id, other := se.create(t), se.create(t)
	erased := func(subject string) bool {
		res, _ := se.req(t, "GET", se.base+"/subjects/"+subject+"?purpose=case_management", "", "", se.admin)
		return res.StatusCode == 404
	}
	enablePolicy(t, se.env, se.tenant.ID, approvals.ActionErasure, 1)
	path := se.base + "/subjects/" + id
	body := `{"reason":"ticket 4411","legal_basis":"GDPR Art. 17(1)(a)"}`
	f := gatedFlow{changedPath: se.base + "/subjects/" + other}
	f.method, f.path, f.body, f.auth, f.tenantID = "DELETE", path, body, se.admin, se.tenant.ID
	f.approvers, f.other, f.okStatus = []string{a2.ID}, admin2.AccessToken, 200
	f.ran = func(t *testing.T) bool { return erased(id) }
	f.run(t, se.env)
	if erased(other) {
		t.Fatal("the mismatched erasure ran")
	}
}

// A service account that can hand over accounts (where the tenant allows one at all) is an admin
// grant: the role.grant policy holds its creation, binding the account as it will be made.
func TestApprovalsWired_TakeoverServiceAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqltest.Dialects[0], nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, a2 := e.seed(t, "acme", "admin2@example.org", pw, "program_admin")
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	admin2 := e.login(t, "acme", "admin2@example.org", pw, "")
	if _, err := e.db.SQL().ExecContext(ctxBG, `UPDATE tenants SET service_accounts_may_take_over = TRUE WHERE id = $1`, tn.ID); err != nil {
		t.Fatal(err)
	}
	enablePolicy(t, e, tn.ID, approvals.ActionRoleGrant, 1)
	path := "/v1/tenants/" + tn.ID + "/service-accounts"
	made := func(name string) bool {
		res, b := e.req(t, "GET", path, "", "", admin.cookie)
		if res.StatusCode != 200 {
			t.Fatalf("list: %d %s", res.StatusCode, b)
		}
		return strings.Contains(string(b), `"name":"`+name+`"`)
	}
	// An account that hands over no one is made at once.
	if res, b := e.req(t, "POST", path, `{"name":"reader"}`, "", admin.cookie); res.StatusCode != 201 {
		t.Fatalf("reader: %d %s", res.StatusCode, b)
	}
	gatedFlow{method: "POST", path: path, body: `{"name":"ops","permissions":[{"resource":"users","action":"MANAGE"}]}`,
		changedBody: `{"name":"ops","permissions":[{"resource":"users","action":"MANAGE"},{"resource":"roles","action":"MANAGE"}]}`,
		auth:        admin.cookie, tenantID: tn.ID, approvers: []string{a2.ID}, other: admin2.cookie, okStatus: 201,
		ran: func(t *testing.T) bool { return made("ops") },
	}.run(t, e)
}

// A service account whose creator is not recorded (made before approvals existed) cannot ask for
// approval: nobody could be kept from approving its requests, its maker included.
func TestApprovalsWired_ServiceAccountWithoutRecordedCreatorCannotAsk(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqltest.Dialects[0])
	path := se.base + "/ai/settings"
	settings := func(day string) string {
		return `{"requests_per_minute":60,"tokens_per_day":` + day + `,"tokens_per_month":20000,"id_countries":["gb"],"justification":"quarterly campaign"}`
	}
	sa := se.createSA(t, se.tenant.ID, se.admin, `{"name":"budget-bot","permissions":[{"resource":"ai","action":"MANAGE"}]}`)
	if _, err := se.db.SQL().ExecContext(ctxBG, `UPDATE service_accounts SET created_by = '' WHERE id = $1`, sa.SA.ID); err != nil {
		t.Fatal(err)
	}
	enablePolicy(t, se.env, se.tenant.ID, approvals.ActionCreditTopUp, 1)
	if res, b := se.req(t, "PUT", path, settings("1000"), "", se.admin); res.StatusCode != 200 {
		t.Fatalf("first limits: %d %s", res.StatusCode, b)
	}
	code, tok := se.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 {
		t.Fatalf("token: %d %v", code, tok)
	}
	res, b := se.req(t, "PUT", path, settings("900000"), "", tok["access_token"].(string))
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	// With its creator recorded, the same account asks, and its creator cannot approve.
	var adminID string
	if err := se.db.View(ctxBG, func(tx *sqlstore.Tx) error {
		u, err := tx.Users(se.tenant.ID).ByEmail(ctxBG, "admin@example.org")
		if err == nil {
			adminID = u.ID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := se.db.SQL().ExecContext(ctxBG, `UPDATE service_accounts SET created_by = $1 WHERE id = $2`, adminID, sa.SA.ID); err != nil {
		t.Fatal(err)
	}
	res, b = se.req(t, "PUT", path, settings("900000"), "", tok["access_token"].(string))
	if res.StatusCode != 202 {
		t.Fatalf("held raise: %d %s", res.StatusCode, b)
	}
	var held struct{ Approval approvals.Request }
	mustUnmarshal(t, b, &held)
	res, b = se.req(t, "POST", se.base+"/approvals/"+held.Approval.ID+"/decisions", `{"verdict":"approve","comment":"ok"}`, "", se.admin)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
}

// A role that decides approvals is held like an admin role, even when it hands over no account:
// granted freely, it would let its granter make an approver of an account they control. The
// approval binds the role's ID, so a role deleted and made again under its key is another role.
func TestApprovalsWired_ApproverRoleGrantHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqltest.Dialects[0], nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, a2 := e.seed(t, "acme", "admin2@example.org", pw, "program_admin")
	_, ana := e.seed(t, "acme", "ana@example.org", pw)
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	roles := "/v1/tenants/" + tn.ID + "/roles"
	role := `{"key":"merge_approver","name":"Merge approver","clearance":"GREEN","permissions":[{"resource":"records","action":"READ","max_classification":"GREEN"}]}`
	if res, b := e.req(t, "POST", roles, role, "", admin.cookie); res.StatusCode != 201 {
		t.Fatalf("role: %d %s", res.StatusCode, b)
	}
	grant := "/v1/tenants/" + tn.ID + "/users/" + ana.ID + "/roles/merge_approver"
	enablePolicy(t, e, tn.ID, approvals.ActionRoleGrant, 1)
	// Not an approver role yet: granted at once.
	if res, b := e.req(t, "PUT", grant, "", "", admin.cookie); res.StatusCode != 204 {
		t.Fatalf("plain grant: %d %s", res.StatusCode, b)
	}
	if res, b := e.req(t, "DELETE", grant, "", "", admin.cookie); res.StatusCode != 204 {
		t.Fatalf("revoke: %d %s", res.StatusCode, b)
	}
	enablePolicy(t, e, tn.ID, approvals.ActionSubjectMerge, 1, "merge_approver")
	res, b := e.req(t, "PUT", grant, justified(t, `{}`), "", admin.cookie)
	if res.StatusCode != 202 {
		t.Fatalf("approver role grant: %d %s, want 202", res.StatusCode, b)
	}
	var held struct{ Approval approvals.Request }
	mustUnmarshal(t, b, &held)
	approveAs(t, e, tn.ID, held.Approval.ID, a2.ID)
	// The role deleted and made again under its key is not the role approved.
	for _, call := range []struct{ method, path, body string }{{"DELETE", roles + "/merge_approver", ""}, {"POST", roles, role}} {
		if res, b := e.req(t, call.method, call.path, call.body, "", admin.cookie); res.StatusCode >= 300 {
			t.Fatalf("%s role: %d %s", call.method, res.StatusCode, b)
		}
	}
	res, b = e.req(t, "PUT", grant, under(t, `{}`, held.Approval.ID), "", admin.cookie)
	wantReason(t, res, b, "mismatch")
	if hasRole(t, e, tn.ID, ana.ID, "merge_approver") {
		t.Fatal("the refused grant was made")
	}
}
