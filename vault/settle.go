package vault

import (
	"errors"
	"fmt"
	"time"

	"tutela"
)

// RotationSettleMargin is added to the cache TTL before a rotated keyset may be rewrapped or
// retired: it covers a keyset load that read the store just before the rotation and finished
// after it, and small clock differences between nodes.
const RotationSettleMargin = 30 * time.Second

// ErrRotationUnsettled is what a *RotationUnsettledError matches with errors.Is.
var ErrRotationUnsettled = errors.New("vault: the keyset was rotated too recently")

// RotationUnsettledError refuses a rewrap or retire of a keyset rotated less than the cache
// TTL (vault.cache_ttl) plus RotationSettleMargin ago. Every node caches unwrapped keysets for
// the TTL, so until then a node may still write under the old primary key and look values up
// with only the keys it knew: digests moved to the new key would not be found, and retiring
// would destroy the key its newest ciphertexts, digests and tokens were made with.
type RotationUnsettledError struct {
	Op        string // "rewrap" or "retire"
	KeysetID  string
	TenantID  string // "" for the platform
	Purpose   string
	RotatedAt time.Time
	NotBefore time.Time // the earliest time Op may run
}

func (e *RotationUnsettledError) Error() string {
	tenant := e.TenantID
	if tenant == "" {
		tenant = "platform"
	}
	return fmt.Sprintf("%s refused: keyset %s (%s, tenant %s) was rotated at %s and nodes may still use its old "+
		"primary key for up to vault.cache_ttl; run %s at or after %s (restarting every node also makes them "+
		"reload the keyset, but this wait still applies)", e.Op, e.KeysetID, e.Purpose, tenant,
		e.RotatedAt.UTC().Format(time.RFC3339), e.Op, e.NotBefore.UTC().Format(time.RFC3339))
}

// Is matches ErrRotationUnsettled.
func (e *RotationUnsettledError) Is(target error) bool { return target == ErrRotationUnsettled }

// Unwrap gives the refusal a stable code (conflict: the keyset's state does not allow it yet).
func (e *RotationUnsettledError) Unwrap() error {
	return &tutela.Error{Code: tutela.ECONFLICT, Message: e.Error()}
}

// CacheTTL is how long this vault keeps an unwrapped keyset (vault.cache_ttl).
func (v *Vault) CacheTTL() time.Duration { return v.ttl }

// SettledAt is the earliest time a keyset rotated at rotatedAt may be rewrapped or retired
// (zero for a keyset never rotated).
func (v *Vault) SettledAt(rotatedAt time.Time) time.Time {
	if rotatedAt.IsZero() {
		return time.Time{}
	}
	return rotatedAt.Add(v.ttl + RotationSettleMargin)
}

// settled refuses op on a keyset (as read from the store) whose last rotation, seen at time
// asOf, was younger than the cache TTL plus the margin.
func (v *Vault) settled(op, keysetID, tenantID, purpose string, rotatedAt, asOf time.Time) error {
	at := v.SettledAt(rotatedAt)
	if at.IsZero() || !asOf.Before(at) {
		return nil
	}
	return &RotationUnsettledError{Op: op, KeysetID: keysetID, TenantID: tenantID, Purpose: purpose,
		RotatedAt: rotatedAt, NotBefore: at}
}
