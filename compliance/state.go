package compliance

import "time"

// State is what the store knows that the report cites: read in one transaction by
// sqlstore.(*Tx).ComplianceState, scoped to the tenants the caller may see. Build turns it and the
// configuration into controls; it reads nothing else, so a test can drive every answer.
type State struct {
	// Keysets are the platform's keysets and those of the tenants in scope.
	Keysets []Keyset
	// Checkpoint is the latest signed audit checkpoint (nil: none yet).
	Checkpoint *CheckpointInfo
	// The latest recorded run of each operation (nil: never recorded).
	AuditVerify *Operation
	Backup      *Operation
	Restore     *Operation
	RestoreTest *Operation
	// Tenants are the tenants in scope, by slug.
	Tenants []Tenant
	// Shipping is how far the audit log has been shipped to each destination (audit.ship),
	// by destination name.
	Shipping []Shipping
}

// Shipping is one audit shipping destination's cursor (table audit_ship_cursors).
type Shipping struct {
	Destination string
	Shipped     int64 // entries acknowledged
	Failures    int   // failed attempts in a row
	LastError   string
	ShippedAt   time.Time // zero: never
}

// Keyset is one keyset's metadata (never key material).
type Keyset struct {
	TenantSlug string    // "" for the platform's
	Purpose    string    // vault purpose: which data it protects
	Kind       string    // aead, deterministic, prf
	Version    int64     // how many times it changed
	Keys       int       // keys held (primary and older)
	KEKURI     string    // the KEK that wraps it (a URI naming where it lives, never a secret)
	CreatedAt  time.Time // when the keyset was made
	RotatedAt  time.Time // last rotation; zero: never rotated
}

// LastRotation is when the keyset's primary key was made: its last rotation, or its creation.
func (k Keyset) LastRotation() time.Time {
	if k.RotatedAt.IsZero() {
		return k.CreatedAt
	}
	return k.RotatedAt
}

// CheckpointInfo is the latest signed checkpoint of the audit log.
type CheckpointInfo struct {
	Size      int64
	CreatedAt time.Time
}

// Operation is one recorded run of an operation the report cites (table compliance_evidence).
type Operation struct {
	ID         string
	Kind       string // OpAuditVerify, OpBackup, OpRestore, OpRestoreTest
	Outcome    string // OutcomeSuccess or OutcomeFailure
	Details    map[string]any
	RecordedAt time.Time
}

// Operation kinds and outcomes (the CHECK constraints of migration 00034).
const (
	OpAuditVerify  = "audit_verify"
	OpBackup       = "backup"
	OpRestore      = "restore"
	OpRestoreTest  = "restore_test"
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// OpKinds lists every operation kind.
var OpKinds = []string{OpAuditVerify, OpBackup, OpRestore, OpRestoreTest}

// Tenant is one tenant's state.
type Tenant struct {
	ID, Slug, Name, Region, Mode string
	MFARequiredAll               bool
	RequirePrivateKeyJWT         bool
	SessionIdle, SessionAbsolute time.Duration // tenant overrides; zero: the server default
	PasswordComposition          bool          // the tenant sets composition rules
	Roles                        []RoleCoverage
	ServiceAccounts              []ServiceAccount
	Reviews                      ReviewStats
	DSR                          DSRStats
	Subjects                     int // active subjects (not erased, not merged)
	Purposes                     []Purpose
	Fields                       []Field
	Declared                     []DeclaredSubprocessor // the tenant's sub-processor register
	AIProviders                  []Endpoint             // configured AI providers (enabled)
	Webhooks                     []Endpoint             // active webhook endpoints
	LockEvents30d                int                    // account, source and IP locks in the last 30 days
}

// RoleCoverage is one role's holders and how many of them have no active second factor (TOTP
// or passkey; recovery codes alone do not count).
type RoleCoverage struct {
	Key           string
	Holders       int
	WithoutFactor int
}

// ServiceAccount is how one active service account authenticates.
type ServiceAccount struct {
	Name          string
	ActiveSecrets int // client_secret credentials not revoked or expired
	Keys          int // private_key_jwt public keys
}

// ReviewStats summarises access reviews.
type ReviewStats struct {
	LastClosed   time.Time // zero: none completed
	Open         int
	OpenOverdue  int // open past their deadline
	OpenFindings int // items of open reviews with no decision yet
	Revoked      int // items decided "revoke" in the last completed review
}

// DSRStats summarises data-subject requests.
type DSRStats struct {
	Total, Open, Completed, Rejected int
	Overdue                          int // open past their due date (with extensions)
	OldestOverdueDue                 time.Time
	ByKind                           map[string]int
}

// Purpose is a declared processing purpose with its consent coverage.
type Purpose struct {
	Name, Description, LawfulBasis string
	Granted, Withdrawn             int // subjects whose current consent state is granted / withdrawn
}

// Field is a declared subject field (a data category of the records of processing).
type Field struct {
	Name, Classification string
	RetentionDays        int
}

// DeclaredSubprocessor is an entry of a tenant's sub-processor register.
type DeclaredSubprocessor struct {
	Name, Service, Locations, Safeguard string
}

// Endpoint is a recipient derived from state: a name and the host data is sent to.
type Endpoint struct {
	Name, Host string
}
