package mfa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"strings"

	"tutela"
	"tutela/sqlstore"
)

// Recovery codes: RecoveryCodeCount codes of 120 random bits each (24 base32 characters, shown
// as six groups of four). At 112 bits or more ASVS 5.0 6.5.2 allows a standard hash, so they
// are stored as SHA-256 — a slow password hash would add cost to every sign-in and no
// protection against guessing 2^120 values. The hash is also keyed by tenant and user, so
// equal codes of two users never share a hash.
const (
	RecoveryCodeCount = 10
	recoveryCodeBytes = 15
)

// recoveryCodeLen is a code's length without separators: 120 bits in base32.
const recoveryCodeLen = 24

var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func recoveryHash(tenantID, userID, normalized string) []byte {
	h := sha256.Sum256([]byte("tutela recovery code v1\x00" + tenantID + "\x00" + userID + "\x00" + normalized))
	return h[:]
}

// normalizeRecoveryCode drops separators and spaces and folds case, so "ABCD-efgh ijkl-mnop"
// and "abcdefghijklmnop" are the same code.
func normalizeRecoveryCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, code)
}

// NewRecoveryCodes makes a new set of recovery codes for the user and voids the previous set.
// The codes exist only in the return value: show them once.
func (s *Service) NewRecoveryCodes(ctx context.Context, tenantID, userID string) ([]tutela.Secret, error) {
	codes := make([]tutela.Secret, RecoveryCodeCount)
	hashes := make([][]byte, RecoveryCodeCount)
	for i := range codes {
		b := make([]byte, recoveryCodeBytes)
		if _, err := rand.Read(b); err != nil {
			return nil, tutela.Wrap(err, "random source failed")
		}
		raw := recoveryEncoding.EncodeToString(b) // 24 characters
		codes[i] = tutela.NewSecret(raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12] + "-" + raw[12:16] + "-" + raw[16:20] + "-" + raw[20:24])
		hashes[i] = recoveryHash(tenantID, userID, raw)
	}
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.MFA(tenantID).ReplaceRecoveryCodes(ctx, userID, hashes)
		return err
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// UseRecoveryCode spends one recovery code. On success it returns how many codes remain; the
// caller records a security event (a recovery code in use means the user lost a factor, or
// someone else holds the codes) and should prompt the user to re-enrol when few remain. A code
// used before, voided by regeneration, or wrong is ErrInvalidCode.
func (s *Service) UseRecoveryCode(ctx context.Context, tenantID, userID, code string) (remaining int, err error) {
	norm := normalizeRecoveryCode(code)
	if len(norm) != recoveryCodeLen {
		return 0, ErrInvalidCode
	}
	got := recoveryHash(tenantID, userID, norm)
	var result error = ErrInvalidCode
	err = s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		repo := tx.MFA(tenantID)
		stored, err := repo.RecoveryCodes(ctx, userID)
		if err != nil {
			return err
		}
		// Compare against every stored hash in constant time, so timing shows neither which
		// code matched nor how much of a hash did.
		id, found := "", 0
		for _, c := range stored {
			eq := subtle.ConstantTimeCompare(got, c.Hash)
			if eq == 1 {
				id = c.ID
			}
			found |= eq
		}
		if found != 1 {
			return nil
		}
		ok, n, err := repo.UseRecoveryCode(ctx, userID, id)
		if err != nil || !ok {
			return err
		}
		remaining, result = n, nil
		return nil
	})
	if err != nil {
		return 0, err
	}
	return remaining, result
}

// CodeResult says which kind of code VerifyCode accepted.
type CodeResult struct {
	Type string // TypeTOTP or TypeRecovery
	// RecoveryUsed is set when a recovery code was spent: record a security event.
	RecoveryUsed bool
	Remaining    int // recovery codes left, when RecoveryUsed
}

// CodeType is how VerifyCode reads code: TypeTOTP when it is 6 digits (spaces ignored), else
// TypeRecovery. Callers use it to name the method of a refused code.
func CodeType(code string) string {
	if isDigits(compactCode(code), totpDigits.Length()) {
		return TypeTOTP
	}
	return TypeRecovery
}

func compactCode(code string) string { return strings.ReplaceAll(strings.TrimSpace(code), " ", "") }

// VerifyCode accepts either a TOTP code (6 digits) or a recovery code, for a sign-in form with
// one code field.
func (s *Service) VerifyCode(ctx context.Context, tenantID, userID, code string) (CodeResult, error) {
	if CodeType(code) == TypeTOTP {
		return CodeResult{Type: TypeTOTP}, s.VerifyTOTP(ctx, tenantID, userID, compactCode(code))
	}
	n, err := s.UseRecoveryCode(ctx, tenantID, userID, code)
	if err != nil {
		return CodeResult{}, err
	}
	return CodeResult{Type: TypeRecovery, RecoveryUsed: true, Remaining: n}, nil
}
