package vault

import (
	"context"
	"errors"
	"fmt"

	"tutela/password"
)

// pepperLen is the PRF output the password hasher feeds to argon2id: 256 bits, HMAC-SHA256's
// full output.
const pepperLen = 32

// PasswordPepper is the password hasher's pepper (it implements password.Pepper): the platform's
// password_pepper PRF keyset (HMAC-SHA256), wrapped by the KEK like every keyset, so the pepper
// key is never in the database in clear. Rotating the keyset moves new hashes to the new key;
// old keys keep verifying until `tutela keys retire`, which refuses while a stored hash still
// names one.
type PasswordPepper struct{ Vault *Vault }

// PrimaryKeyID returns the key new password hashes use. It never creates the keyset: a missing
// one (a partial restore, a deleted row) is ErrNoKeyset wrapped in password.ErrUnknownPepperKey,
// so signing in and setting passwords fail instead of hashing under a new pepper that every
// stored hash would then fail against. Create makes it at first start.
func (p PasswordPepper) PrimaryKeyID(ctx context.Context) (uint32, error) {
	id, err := p.Vault.ExistingPRFPrimaryKey(ctx, "", PurposePasswordPepper)
	if errors.Is(err, ErrNoKeyset) {
		return 0, fmt.Errorf("%w: %w", password.ErrUnknownPepperKey, err)
	}
	return id, err
}

// Create creates the pepper keyset if it does not exist and returns its primary key. Only
// start-up calls it, after checking that no stored hash names a pepper key (a lost keyset must
// be restored, not replaced).
func (p PasswordPepper) Create(ctx context.Context) (uint32, error) {
	return p.Vault.PRFPrimaryKey(ctx, "", PurposePasswordPepper)
}

// Pepper returns HMAC-SHA256 of the password under key keyID. A key the keyset does not hold
// is ErrUnknownKey, wrapped in password.ErrUnknownPepperKey so the hasher fails that hash closed
// instead of reporting an outage.
func (p PasswordPepper) Pepper(ctx context.Context, keyID uint32, pw []byte) ([]byte, error) {
	out, err := p.Vault.PRF(ctx, "", PurposePasswordPepper, keyID, pw, pepperLen)
	if errors.Is(err, ErrUnknownKey) {
		return nil, fmt.Errorf("%w: %w", password.ErrUnknownPepperKey, err)
	}
	return out, err
}
