package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// widenedHelpdesk is PUT …/roles/helpdesk giving the role users MANAGE and roles MANAGE: every
// holder could then reset passwords and second factors and grant roles.
const widenedHelpdesk = `{"name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"},` +
	`{"resource":"users","action":"MANAGE"},{"resource":"roles","action":"MANAGE"}]}`

// helpdeskPermissions reads the helpdesk role's permissions from the store.
func helpdeskPermissions(t *testing.T, e *env, tenantID string) (string, []authz.Permission) {
	t.Helper()
	var role *sqlstore.Role
	if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) (err error) {
		role, err = tx.Role(ctxBG, tenantID, "helpdesk")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return role.ID, role.Permissions
}

// userDeny gives userID an explicit deny of users MANAGE straight in the store and returns its ID.
func userDeny(t *testing.T, e *env, tenantID, userID string) string {
	t.Helper()
	up := &sqlstore.UserPermission{Permission: authz.Permission{Resource: authz.ResUsers, Action: authz.Manage}, Effect: authz.Deny}
	if err := e.db.Update(ctxBG, func(tx *sqlstore.Tx) error {
		return tx.Users(tenantID).GrantPermission(ctxBG, userID, up)
	}); err != nil {
		t.Fatal(err)
	}
	return up.ID
}

// helpdeskTenant makes acme with a programme administrator (TOTP enrolled, step-up fresh) and
// a custom role helpdesk holding users READ, which takes over no one.
func helpdeskTenant(t *testing.T, e *env) (*tutela.Tenant, grant, string) {
	t.Helper()
	tn, a, secret := adminWithFactor(t, e)
	e.stepUp(t, a.cookie, secret)
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles",
		`{"key":"helpdesk","name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}]}`, "", a.cookie); res.StatusCode != 201 {
		t.Fatalf("custom role: %d %s", res.StatusCode, b)
	}
	return tn, a, secret
}

// The reviewer's path around the step-up: an administrator whose step-up has lapsed is refused
// granting a role that takes over accounts, so they widen a role the user already holds
// instead (roles UPDATE, no step-up of its own). Widening a role to a takeover permission is a
// takeover grant: it needs a fresh second factor like the grant. Changes that take over no one
// still need none.
func TestTakeover_StaleStepUpAdminCannotWidenRole(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			tn, a, secret := helpdeskTenant(t, e)
			_, u := e.seed(t, "acme", "ana@example.org", pw, "helpdesk")
			e.clock.Add(6 * time.Minute)
			res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/roles/program_admin", "", "", a.cookie)
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			_, before := helpdeskPermissions(t, e, tn.ID)
			for _, body := range []string{widenedHelpdesk,
				// Either permission alone widens it as much.
				`{"name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"roles","action":"MANAGE"}]}`} {
				res, b = e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk", body, "", a.cookie)
				wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			}
			if _, after := helpdeskPermissions(t, e, tn.ID); len(after) != len(before) {
				t.Fatalf("the refused change was stored: %v", after)
			}
			// Renaming or adding what takes over no one needs no step-up.
			if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk",
				`{"name":"Service desk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"},{"resource":"sessions","action":"READ"}]}`,
				"", a.cookie); res.StatusCode != 200 {
				t.Fatalf("harmless update: %d %s", res.StatusCode, b)
			}
			// With a fresh step-up the administrator may widen it, and narrow it again without one.
			e.stepUp(t, a.cookie, secret)
			if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk", widenedHelpdesk, "", a.cookie); res.StatusCode != 200 {
				t.Fatalf("widen with a fresh step-up: %d %s", res.StatusCode, b)
			}
			e.clock.Add(6 * time.Minute)
			if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk",
				`{"name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"users","action":"MANAGE","max_classification":"GREEN"}]}`,
				"", a.cookie); res.StatusCode != 200 {
				t.Fatalf("narrow with a lapsed step-up: %d %s", res.StatusCode, b)
			}
			// Raising the clearance of a role that can take over accounts lets its holders take
			// over more of them (users cleared above a holder are out of the holder's reach).
			res, b = e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk",
				`{"name":"Helpdesk","clearance":"YELLOW","permissions":[{"resource":"users","action":"MANAGE","max_classification":"GREEN"}]}`,
				"", a.cookie)
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			// No person acted through a service account here.
			recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "authz.service_account_takeover", Limit: 10})
			if err != nil || len(recs) != 0 {
				t.Fatalf("takeover events for a person: %d, %v", len(recs), err)
			}
		})
	}
}

// A service account that may not grant a takeover role (403) may not widen a role to one
// either, nor lift a user's deny of a takeover permission: both refused like the grant and
// audited as authz.denied, unless the tenant allows service accounts to take over accounts;
// then each is audited as authz.service_account_takeover.
func TestTakeover_ServiceAccountCannotWidenRoleOrLiftDeny(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			tn, a, secret := helpdeskTenant(t, e)
			_, holder := e.seed(t, "acme", "ana@example.org", pw, "helpdesk")
			_, denied := e.seed(t, "acme", "bo@example.org", pw)
			denyID := userDeny(t, e, tn.ID, denied.ID)
			sa := e.createSAWith(t, tn.ID,
				authz.Permission{Resource: authz.ResRoles, Action: authz.Update},
				authz.Permission{Resource: authz.ResRoles, Action: authz.Read},
				authz.Permission{Resource: authz.ResRoles, Action: authz.Manage},
				authz.Permission{Resource: authz.ResUsers, Action: authz.Read},
				authz.Permission{Resource: authz.ResUsers, Action: authz.Manage})
			token := func() string {
				code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
				if code != 200 {
					t.Fatalf("token: %d %v", code, tok)
				}
				return tok["access_token"].(string)
			}
			at := token()
			roleID, _ := helpdeskPermissions(t, e, tn.ID)
			liftDeny := "/v1/tenants/" + tn.ID + "/users/" + denied.ID + "/permissions/" + denyID

			// The grant the service account is refused, and the two ways around it.
			res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/users/"+holder.ID+"/roles/program_admin", "", "192.0.2.10", at)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk", widenedHelpdesk, "192.0.2.10", at)
			eb := wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if !strings.Contains(eb.Error.Message, "service_accounts_may_take_over_accounts") {
				t.Fatalf("role widening refusal: %s", eb.Error.Message)
			}
			den := deniedFor(t, e, res)
			if len(den) != 1 || den[0].Event.TargetType != authz.ResRoles || den[0].Event.TargetID != roleID ||
				den[0].Event.ActorType != audit.ActorServiceAccount {
				t.Fatalf("role widening denial audit %+v", den)
			}
			if _, perms := helpdeskPermissions(t, e, tn.ID); len(perms) != 1 {
				t.Fatalf("the refused widening was stored: %v", perms)
			}
			res, b = e.req(t, "DELETE", liftDeny, "", "192.0.2.10", at)
			eb = wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if !strings.Contains(eb.Error.Message, "service_accounts_may_take_over_accounts") {
				t.Fatalf("deny lifting refusal: %s", eb.Error.Message)
			}
			den = deniedFor(t, e, res)
			if len(den) != 1 || den[0].Event.TargetID != denied.ID || den[0].Event.ActorType != audit.ActorServiceAccount {
				t.Fatalf("deny lifting denial audit %+v", den)
			}
			if res, b := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users/"+denied.ID+"/access", "", "", a.cookie); res.StatusCode != 200 ||
				!strings.Contains(string(b), denyID) {
				t.Fatalf("the deny is gone: %d %s", res.StatusCode, b)
			}
			// What takes over no one still works for it: a rename, and lifting a deny of
			// something else.
			if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk",
				`{"name":"Service desk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}]}`, "192.0.2.10", at); res.StatusCode != 200 {
				t.Fatalf("harmless update: %d %s", res.StatusCode, b)
			}
			other := &sqlstore.UserPermission{Permission: authz.Permission{Resource: authz.ResUsers, Action: authz.Read}, Effect: authz.Deny}
			if err := e.db.Update(ctxBG, func(tx *sqlstore.Tx) error {
				return tx.Users(tn.ID).GrantPermission(ctxBG, denied.ID, other)
			}); err != nil {
				t.Fatal(err)
			}
			if res, b := e.req(t, "DELETE", "/v1/tenants/"+tn.ID+"/users/"+denied.ID+"/permissions/"+other.ID, "", "192.0.2.10", at); res.StatusCode != 204 {
				t.Fatalf("lift a deny of users READ: %d %s", res.StatusCode, b)
			}

			// Under the tenant's policy both are allowed, and audited as takeovers.
			e.stepUp(t, a.cookie, secret)
			if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"service_accounts_may_take_over_accounts":true}`, "", a.cookie); res.StatusCode != 200 {
				t.Fatalf("allow takeover: %d %s", res.StatusCode, b)
			}
			at = token()
			if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk", widenedHelpdesk, "192.0.2.10", at); res.StatusCode != 200 {
				t.Fatalf("widen under the policy: %d %s", res.StatusCode, b)
			}
			if res, b := e.req(t, "DELETE", liftDeny, "", "192.0.2.10", at); res.StatusCode != 204 {
				t.Fatalf("lift the deny under the policy: %d %s", res.StatusCode, b)
			}
			recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "authz.service_account_takeover", Limit: 10})
			if err != nil || len(recs) != 2 {
				t.Fatalf("takeover audit events: %d, %v", len(recs), err)
			}
			targets := map[string]string{}
			for _, r := range recs {
				ev := r.Event
				if ev.ActorType != audit.ActorServiceAccount || ev.ActorID != sa.SA.ID ||
					ev.Details["operation"] != string(authz.TakeoverGrant) || ev.Details["policy"] != "service_accounts_may_take_over_accounts" {
					t.Fatalf("takeover event %+v", ev)
				}
				targets[ev.TargetType] = ev.TargetID
			}
			if targets["role"] != roleID || targets["user"] != denied.ID {
				t.Fatalf("takeover event targets %v; want role %s and user %s", targets, roleID, denied.ID)
			}
		})
	}
}

// A role's field policy is a view of personal data. Nobody may hand out a clearer view of a
// field than their own (an administrator who sees e-mail addresses partly cannot make a role
// that shows them whole), and showing an existing role's holders a field more clearly needs a
// fresh second factor, like a grant; hiding more needs none.
func TestRoleFieldMasks_NoClearerViewThanYoursAndLooseningNeedsStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, a, secret := helpdeskTenant(t, e)
	// A role administrator of GREEN clearance: e-mail addresses (YELLOW) reach them partly.
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles",
		`{"key":"roleadmin","name":"Role admin","clearance":"GREEN","permissions":[{"resource":"roles","action":"CREATE"},{"resource":"roles","action":"UPDATE"},{"resource":"roles","action":"READ"},{"resource":"users","action":"READ"}]}`,
		"", a.cookie); res.StatusCode != 201 {
		t.Fatalf("roleadmin: %d %s", res.StatusCode, b)
	}
	e.seed(t, "acme", "rita@example.org", pw, "roleadmin")
	rita := e.login(t, "acme", "rita@example.org", pw, "")
	ritaSecret := e.enrolTOTP(t, rita.cookie)
	e.stepUp(t, rita.cookie, ritaSecret)
	res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles",
		`{"key":"peek","name":"Peek","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}],"field_masks":{"users.email":"full"}}`, "", rita.cookie)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles",
		`{"key":"peek","name":"Peek","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}],"field_masks":{"users.email":"hidden"}}`, "", rita.cookie); res.StatusCode != 201 {
		t.Fatalf("a stricter view: %d %s", res.StatusCode, b)
	}
	// The programme administrator (YELLOW: sees e-mail whole), step-up lapsed: hiding more is
	// fine, showing more is not, until a fresh second factor.
	e.clock.Add(6 * time.Minute)
	hide := `{"name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}],"field_masks":{"users.email":"hidden"}}`
	show := `{"name":"Helpdesk","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}],"field_masks":{"users.email":"full"}}`
	if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk", hide, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("hiding more with a lapsed step-up: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk", show, "", a.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.stepUp(t, a.cookie, secret)
	if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/roles/helpdesk", show, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("showing more with a fresh step-up: %d %s", res.StatusCode, b)
	}
}
