// Package tutela holds the domain types, error codes and service interfaces of the Tutela
// security and privacy core. Adapters (sqlstore, httpapi, cmd/tutela) depend on it; it depends on
// none of them.
package tutela

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Version is set at build time with -ldflags "-X tutela.Version=…".
var Version = "dev"

// Clock returns the current time. Components that read the clock take one so tests can move
// time instead of sleeping.
type Clock func() time.Time

// SystemClock is the real clock, in UTC.
func SystemClock() time.Time { return time.Now().UTC() }

// NewID returns a random UUIDv7: time-ordered for index locality, 74 random bits, never
// sequential in a way a client could enumerate.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// uuid.NewV7 fails only when the system random source fails; nothing sensible is left.
		panic("tutela: random source failed: " + err.Error())
	}
	return id.String()
}

// ValidID reports whether s is a canonical UUID string. Handlers reject anything else before it
// reaches a query.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// RandomB64 returns n random bytes, base64url without padding (32 bytes: 43 characters).
func RandomB64(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("tutela: random source failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// RandomToken returns n random bytes as lowercase hex, for opaque tokens.
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("tutela: random source failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// IsLoopbackHost reports whether host (a name or an IP literal, without port) names only this
// machine: "localhost" or a loopback address. Any other name may resolve to a routable address,
// so it counts as non-loopback; an empty host (every interface) is not loopback.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Status of a tenant or user.
type Status string

const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return s == StatusActive || s == StatusDisabled }

// Tenant is a programme or organisation; every user and record belongs to exactly one.
type Tenant struct {
	ID     string `json:"id"`
	Slug   string `json:"slug"`
	Name   string `json:"name"`
	Region string `json:"data_region"`
	Status Status `json:"status"`
	// Mode is TenantSimulation while the tenant is set up and rehearsed, TenantProvisioning once
	// it serves real people (promotion, never back).
	Mode      TenantMode `json:"mode"`
	CreatedAt time.Time  `json:"created_at"`
}

// TenantMode says whether a tenant serves real people.
type TenantMode string

// Tenant modes. A tenant in simulation is rehearsing: nothing it does may reach anyone outside
// it (no shares with partners, no referrals). Promotion to provisioning may need approval
// (approvals.ActionTenantPromotion); there is no way back, since a tenant that has served
// people cannot go back to pretending.
const (
	TenantSimulation   TenantMode = "simulation"
	TenantProvisioning TenantMode = "provisioning"
)

// Valid reports whether m is a known mode.
func (m TenantMode) Valid() bool { return m == TenantSimulation || m == TenantProvisioning }

// Simulation reports whether the tenant is still rehearsing: callers refuse whatever would
// reach people or organisations outside it (shares, referrals).
func (t *Tenant) Simulation() bool { return t.Mode == TenantSimulation }

// User is a person who signs in to one tenant.
type User struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	Status      Status    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// NormalizeEmail returns the form of an address used for comparison and uniqueness: trimmed,
// NFKC-normalised and case-folded, so "Ana@Example.org" and "ana@example.org" are the same
// account within a tenant.
func NormalizeEmail(email string) string {
	return cases.Fold().String(norm.NFKC.String(strings.TrimSpace(email)))
}

// Principal kinds.
const (
	PrincipalUser           = "user"
	PrincipalServiceAccount = "service_account"
)

// Principal is the authenticated caller of one request. Handlers take the tenant from here,
// never from a request body.
type Principal struct {
	Kind      string
	TenantID  string
	UserID    string // or the service account's ID
	SessionID string // "" for bearer tokens without a session
	Roles     []string
	AMR       []string
	AuthTime  time.Time
	// ViaCookie is true when the session cookie authenticated the request (browser), which
	// makes cross-site request checks necessary for state-changing calls.
	ViaCookie bool
	// MustChangePassword limits the principal to changing their password (and signing out).
	MustChangePassword bool
	// MustEnrollMFA limits a principal whose role or tenant requires MFA, and who has no
	// factor yet, to enrolling one (and signing out).
	MustEnrollMFA bool
	// StepUpAt is when the session last proved a second factor (zero: never).
	StepUpAt time.Time
	// ReauthAt is when the user last re-entered their password in this session (zero: never).
	ReauthAt time.Time
	// SessionExpiry is the session's absolute expiry, when the session cookie authenticated
	// the request (for renewing the cookie).
	SessionExpiry time.Time
}

// HasRole reports whether the principal holds role.
func (p *Principal) HasRole(role string) bool {
	if p == nil {
		return false
	}
	for _, r := range p.Roles {
		if r == role {
			return true
		}
	}
	return false
}
