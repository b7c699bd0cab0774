package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"tutela"
)

// Business limits (ASVS 5.0 2.1.2, 2.1.3, 2.4.1): caps on how many objects one caller can
// create, so a compromised or careless administrator cannot exhaust storage or make listings,
// policy loads and access reviews slow. Each is checked in the store, inside the transaction
// that creates the object and after locking the parent row (lockTenant, lockUser), so it holds
// on every path (API, CLI, bootstrap) and under concurrency. Going past one is a conflict (409)
// that names the cap; sessions are the exception, see MaxSessionsPerUser. README "Business
// limits" lists them with MaxActiveSecrets and the service-account key cap.
const (
	// MaxRolesPerTenant caps a tenant's custom roles; built-in roles do not count.
	MaxRolesPerTenant = 100
	// MaxPermissionsPerRole caps the distinct permissions of one custom role, on create and
	// on replace.
	MaxPermissionsPerRole = 200
	// MaxPermissionGrantsPerUser caps a user's per-user grants and denies together, expired
	// ones included: they stay stored until revoked.
	MaxPermissionGrantsPerUser = 100
	// MaxServiceAccountsPerTenant caps a tenant's service accounts, disabled ones included
	// (there is no delete: an account is disabled).
	MaxServiceAccountsPerTenant = 200
	// MaxOpenReviewsPerTenant caps a tenant's access reviews open at once: each one snapshots
	// every grant in the tenant.
	MaxOpenReviewsPerTenant = 3
	// MaxPasskeysPerUser caps a user's registered passkeys (WebAuthn factors).
	MaxPasskeysPerUser = 10
	// MaxTOTPFactorsPerUser caps a user's TOTP factors, active and pending together.
	MaxTOTPFactorsPerUser = 5
	// MaxSessionsPerUser caps a user's active sessions. Reaching it never refuses a sign-in,
	// which would let whoever signs in most often lock the user out: the user's oldest active
	// session is revoked instead (reason "session_limit") and a security event says so.
	MaxSessionsPerUser = 100
	// MaxClientSessionsPerSignIn caps the sessions one relying party holds from one sign-in
	// session (each code exchange makes one). They count apart from MaxSessionsPerUser, so an
	// application signing the user in again and again evicts only its own oldest sessions,
	// never the user's sign-in or other applications'.
	MaxClientSessionsPerSignIn = 20
	// MaxUsersPerTenant caps a tenant's users, disabled ones included. Generous, but bounded.
	MaxUsersPerTenant = 100_000
	// MaxPendingResetRequests caps the forgot-password requests waiting in the job queue per
	// tenant (requests naming no active tenant share one bucket), and PendingCeiling times as many
	// across all tenants: anonymous clients enqueue them. Past it POST /v1/auth/password/forgot
	// answers 503 unavailable with Retry-After, the same for every account of that tenant, so it
	// reveals nothing; a flood aimed at one tenant leaves the others' resets working. A healthy
	// worker drains a request in milliseconds; the cap only bites under a flood or while the
	// workers are down.
	MaxPendingResetRequests = 1_000
	// PendingCeiling is how many times a capped kind's per-tenant cap may wait in all.
	PendingCeiling = 10
)

// lockTenant holds the tenant's row until the transaction ends, so two transactions adding
// under a per-tenant cap count one after the other and cannot pass it together. It takes FOR NO
// KEY UPDATE rather than FOR UPDATE: that still conflicts with itself, but not with the KEY SHARE lock every foreign-key insert takes on its
// parent row, so it neither holds up unrelated inserts into the tenant (sign-ins, audit events)
// nor deadlocks against a transaction that already inserted one. SQLite runs one writer at a
// time and needs no lock. A tenant that does not exist is not found.
func (tx *Tx) lockTenant(ctx context.Context, tenantID string) error {
	if !tutela.ValidID(tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return tx.lockRow(ctx, "tenant not found", `SELECT id FROM tenants WHERE id = $1`, tenantID)
}

// lockUser is lockTenant for a per-user cap: it holds the tenant's user row.
func (tx *Tx) lockUser(ctx context.Context, tenantID, userID string) error {
	if !tutela.ValidID(tenantID) || !tutela.ValidID(userID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return tx.lockRow(ctx, "user not found", `SELECT id FROM users WHERE tenant_id = $1 AND id = $2`, tenantID, userID)
}

func (tx *Tx) lockRow(ctx context.Context, notFound, q string, args ...any) error {
	if tx.db.dialect == Postgres {
		q += ` FOR NO KEY UPDATE`
	}
	var id string
	err := tx.queryRow(ctx, q, args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return tutela.Errorf(tutela.ENOTFOUND, "%s", notFound)
	}
	return err
}

// count runs a SELECT COUNT(*) query.
func (tx *Tx) count(ctx context.Context, q string, args ...any) (int, error) {
	var n int
	err := tx.queryRow(ctx, q, args...).Scan(&n)
	return n, err
}
