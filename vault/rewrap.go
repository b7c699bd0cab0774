package vault

import (
	"context"
	"errors"
	"fmt"

	"tutela"
)

// VaultSealer adapts a Vault to the Sealer interface for one (tenant, purpose), for example the
// platform's "signing_keys" for identity/token. Values sealed by the interim LocalSealer still
// open through Legacy until `tutela keys rewrap` has moved them under the vault.
type VaultSealer struct {
	Vault    *Vault
	TenantID string
	Purpose  string
	Legacy   Sealer // optional: the LocalSealer used before the vault
}

var _ Sealer = (*VaultSealer)(nil)

// Seal encrypts under the keyset's primary key.
func (s *VaultSealer) Seal(plaintext, aad []byte) ([]byte, error) {
	return s.Vault.Encrypt(context.Background(), s.TenantID, s.Purpose, plaintext, aad)
}

// Open decrypts a vault ciphertext, or a legacy one. Every failure is ErrUnseal.
func (s *VaultSealer) Open(ciphertext, aad []byte) ([]byte, error) {
	pt, err := s.Vault.Decrypt(context.Background(), s.TenantID, s.Purpose, ciphertext, aad)
	if err == nil {
		return pt, nil
	}
	if s.Legacy != nil {
		if pt, lerr := s.Legacy.Open(ciphertext, aad); lerr == nil {
			return pt, nil
		}
	}
	return nil, ErrUnseal
}

// NewVaultSealer is the drop-in replacement for NewLocalSealer once a Vault exists: it seals
// under the vault and still opens what the master-key LocalSealer sealed.
func NewVaultSealer(v *Vault, tenantID, purpose string, masterKey tutela.Secret) (*VaultSealer, error) {
	s := &VaultSealer{Vault: v, TenantID: tenantID, Purpose: purpose}
	if len(masterKey.Bytes()) > 0 {
		l, err := NewLocalSealer(masterKey)
		if err != nil {
			return nil, err
		}
		s.Legacy = l
	}
	return s, nil
}

// RewrapItem is one stored ciphertext a rewrap may re-encrypt.
type RewrapItem struct {
	ID         string // the row's key, for ordering and resuming
	TenantID   string
	Purpose    string
	AAD        []byte
	Ciphertext []byte
	Old        []byte // set by Rewrap: the ciphertext being replaced, for a compare-and-swap

	// Digest sources (PRF keysets: blind indexes, token lookup digests). A keyed digest cannot
	// be decrypted and re-encrypted, only computed again from the value it was made from, which
	// only the source can reach (it decrypts the value with its person's key). Ciphertext is
	// the digest, KeyID the key it was computed with, and Recompute computes the same value's
	// digest under key keyID. Rewrap calls it for rows not under the primary, then sets
	// OldKeyID and Old to what is replaced (for the compare-and-swap), KeyID to the primary and
	// Ciphertext to the new digest. Recompute returning ErrRewrapGone skips the row: its value
	// no longer exists (the person was erased since Next read it).
	KeyID     uint32
	OldKeyID  uint32
	Recompute func(ctx context.Context, keyID uint32) ([]byte, error)

	// Frozen marks a ciphertext that can never be rewritten (an append-only log whose hashes
	// cover it). Rewrap leaves it and counts it in Stuck while it is under an old key; Outdated
	// counts it like any other, so the keyset's old keys cannot be retired while it exists.
	Frozen bool
}

// ErrRewrapGone is what a digest source's Recompute returns for a row whose value no longer
// exists: Rewrap skips it.
var ErrRewrapGone = errors.New("vault: rewrap: the row's value no longer exists")

// currentKey is the key a stored item is under: a ciphertext names it in its prefix, a digest
// in its KeyID.
func (it *RewrapItem) currentKey() uint32 {
	if KindOf(it.Purpose) == KindPRF {
		return it.KeyID
	}
	return keyIDOf(it.Ciphertext)
}

// RewrapSource is a table holding ciphertexts. Next returns up to limit items with ID > after,
// in ID order; Save stores the new ciphertexts of a batch (in one transaction, with its audit
// record), replacing each only if it still holds Old.
type RewrapSource interface {
	Name() string
	Next(ctx context.Context, after string, limit int) ([]RewrapItem, error)
	Save(ctx context.Context, items []RewrapItem) error
}

// RewrapProgress reports a rewrap: rows seen, rows re-encrypted, and the cursor to resume from.
type RewrapProgress struct {
	Source    string
	Seen      int
	Rewrapped int
	Stuck     int // frozen items under an old key (RewrapItem.Frozen): they block retirement
	After     string
}

// RewrapOptions tune Rewrap.
type RewrapOptions struct {
	BatchSize int    // default 500
	After     string // resume after this row ID (printed by an interrupted run)
	Legacy    Sealer // opens values sealed before the vault (LocalSealer)
	Progress  func(RewrapProgress)
}

// Rewrap re-encrypts, in batches, every ciphertext of src not already under its keyset's
// primary key (for a digest source, computes the digest again under it: see RewrapItem). It is idempotent, so an interrupted run can simply be started again (or resumed
// with After); rows already under the primary are read but not written.
//
// A row of a keyset rotated less than the cache TTL plus RotationSettleMargin ago (its stored
// rotated_at) stops the rewrap with a *RotationUnsettledError before that batch is written:
// until then another node may still look values up only under the old key and write under it.
func (v *Vault) Rewrap(ctx context.Context, src RewrapSource, opt RewrapOptions) (RewrapProgress, error) {
	if opt.BatchSize <= 0 {
		opt.BatchSize = 500
	}
	v.Invalidate() // pick up a rotation made by another process
	p := RewrapProgress{Source: src.Name(), After: opt.After}
	for {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		items, err := src.Next(ctx, p.After, opt.BatchSize)
		if err != nil {
			return p, fmt.Errorf("vault: rewrap %s: %w", src.Name(), err)
		}
		if len(items) == 0 {
			return p, nil
		}
		var changed []RewrapItem
		for _, it := range items {
			if it.Frozen {
				if c, err := v.primitive(ctx, it.TenantID, it.Purpose, false); err != nil || it.currentKey() != c.primaryID {
					p.Stuck++
				}
				continue
			}
			if KindOf(it.Purpose) == KindPRF {
				ok, err := v.recompute(ctx, src, &it)
				if err != nil {
					return p, err
				}
				if ok {
					changed = append(changed, it)
				}
				continue
			}
			c, err := v.primitive(ctx, it.TenantID, it.Purpose, true)
			if err != nil {
				return p, err
			}
			if keyIDOf(it.Ciphertext) == c.primaryID {
				if _, err := v.open(c, it.TenantID, it.Purpose, it.Ciphertext, it.AAD); err == nil {
					continue
				}
			}
			if err := v.settled("rewrap", c.keysetID, it.TenantID, it.Purpose, c.rotatedAt, v.now()); err != nil {
				return p, err
			}
			pt, err := v.Decrypt(ctx, it.TenantID, it.Purpose, it.Ciphertext, it.AAD)
			if err != nil && opt.Legacy != nil {
				pt, err = opt.Legacy.Open(it.Ciphertext, it.AAD)
			}
			if err != nil {
				return p, fmt.Errorf("vault: rewrap %s row %s: %w", src.Name(), it.ID, ErrDecrypt)
			}
			ct, err := v.Encrypt(ctx, it.TenantID, it.Purpose, pt, it.AAD)
			clear(pt)
			if err != nil {
				return p, err
			}
			it.Old, it.Ciphertext = it.Ciphertext, ct
			changed = append(changed, it)
		}
		if len(changed) > 0 {
			if err := src.Save(ctx, changed); err != nil {
				return p, fmt.Errorf("vault: rewrap %s: %w", src.Name(), err)
			}
		}
		p.Seen += len(items)
		p.Rewrapped += len(changed)
		p.After = items[len(items)-1].ID
		if opt.Progress != nil {
			opt.Progress(p)
		}
	}
}

// recompute moves a digest item under its keyset's primary key; false when it already is (or
// its value is gone).
func (v *Vault) recompute(ctx context.Context, src RewrapSource, it *RewrapItem) (bool, error) {
	if it.Recompute == nil {
		return false, fmt.Errorf("vault: rewrap %s row %s: a digest source must recompute its digests", src.Name(), it.ID)
	}
	// The keyset exists (the digest was made with it); a missing one is an error, never created.
	c, err := v.primitive(ctx, it.TenantID, it.Purpose, false)
	if err != nil {
		return false, fmt.Errorf("vault: rewrap %s row %s: %w", src.Name(), it.ID, err)
	}
	if it.KeyID == c.primaryID {
		return false, nil
	}
	if err := v.settled("rewrap", c.keysetID, it.TenantID, it.Purpose, c.rotatedAt, v.now()); err != nil {
		return false, err
	}
	sum, err := it.Recompute(ctx, c.primaryID)
	if errors.Is(err, ErrRewrapGone) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("vault: rewrap %s row %s: %w", src.Name(), it.ID, err)
	}
	it.OldKeyID, it.KeyID = it.KeyID, c.primaryID
	it.Old, it.Ciphertext = it.Ciphertext, sum
	return true, nil
}

// Outdated counts the ciphertexts (or digests) of src under the (tenantID, purpose) keyset that
// are not under its primary key; Retire is safe for that keyset once every source reports 0. Other
// keysets' rows do not count, so one tenant's backlog never blocks another's retirement.
func (v *Vault) Outdated(ctx context.Context, src RewrapSource, tenantID, purpose string) (int, error) {
	v.Invalidate()
	n, after := 0, ""
	for {
		items, err := src.Next(ctx, after, 1000)
		if err != nil || len(items) == 0 {
			return n, err
		}
		for _, it := range items {
			if it.TenantID != tenantID || it.Purpose != purpose {
				continue
			}
			c, err := v.primitive(ctx, it.TenantID, it.Purpose, false)
			if err != nil || it.currentKey() != c.primaryID {
				n++
			}
		}
		after = items[len(items)-1].ID
	}
}
