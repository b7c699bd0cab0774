package authz

import "time"

// Account takeover. A few operations hand whoever performs them a person's account: afterwards
// they can sign in as that person, or make someone who can. A person must prove a fresh second
// factor for each (they are MANAGE actions); a service account proves none, and its token
// survives its creator's password change and step-up expiry. So a service account may perform
// them only where its tenant allows it explicitly (the service_accounts_may_take_over_accounts
// policy, off by default), and then each one is audited as a service account acting under that
// policy.
//
// Deliberately not in the set: revoking another person's sessions, disabling, deleting or
// unlocking them (they deny or restore access, they do not hand it over), and changing a
// person's e-mail address (which only a person with a fresh second factor may do at all).

// TakeoverOperation is one operation that hands over a person's account.
type TakeoverOperation string

// The account-takeover operations.
const (
	// TakeoverPasswordReset issues a password-reset token for a user.
	TakeoverPasswordReset TakeoverOperation = "password_reset"
	// TakeoverMFAReset removes a user's second factors (and issues their enrolment code).
	TakeoverMFAReset TakeoverOperation = "mfa_reset"
	// TakeoverGrant gives a user a role or a grant that confers a takeover permission
	// (program_admin, super_admin, or any custom role or grant holding one), or gives it to them
	// another way: by widening a role they may hold to one (TakeoverWidening), or by lifting a
	// deny of one.
	TakeoverGrant TakeoverOperation = "grant_takeover_permission"
)

// TakeoverOperations lists every account-takeover operation.
var TakeoverOperations = []TakeoverOperation{TakeoverPasswordReset, TakeoverMFAReset, TakeoverGrant}

// Describe is the operation as a refusal names it.
func (op TakeoverOperation) Describe() string {
	switch op {
	case TakeoverPasswordReset:
		return "issue a password reset"
	case TakeoverMFAReset:
		return "reset a person's second factors"
	case TakeoverGrant:
		return "grant a role or permission that can take over accounts (or widen a role to one, or lift a deny of one)"
	}
	return string(op)
}

// ConfersTakeover reports whether an allowed permission lets its holder perform a takeover
// operation: MANAGE on users (password and MFA resets, per-user grants) or on roles (granting
// roles), directly or through the wildcard resource, at any classification.
func ConfersTakeover(p Permission) bool {
	return p.Action == Manage && (p.Resource == Any || p.Resource == ResUsers || p.Resource == ResRoles)
}

// TakeoverPermission returns the first permission in perms that confers takeover, if any.
func TakeoverPermission(perms []Permission) (Permission, bool) {
	for _, p := range perms {
		if ConfersTakeover(p) {
			return p, true
		}
	}
	return Permission{}, false
}

// TakeoverWidening returns the first permission in after that confers takeover and that before
// does not already give (a new one, or the same one at a higher classification limit or on the
// wildcard resource). Replacing a role's permissions before with after hands that permission to
// every holder of the role, so it is a takeover grant like granting the role; narrowing is not.
func TakeoverWidening(before, after []Permission) (Permission, bool) {
	held := &Policy{}
	for _, p := range before {
		held.Grants = append(held.Grants, Grant{Permission: p, Effect: Allow})
	}
	for _, p := range after {
		if ConfersTakeover(p) && !held.Holds(p, time.Time{}) {
			return p, true
		}
	}
	return Permission{}, false
}
