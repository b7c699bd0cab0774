package mfa

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base32"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"tutela"
	"tutela/sqlstore"
	"tutela/vault"
)

// TOTP parameters: what every authenticator app supports (SHA-1, 6 digits, 30 s) with a
// 160-bit seed (RFC 4226 §4 recommends 160 bits).
const (
	totpPeriod     = 30
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20
	// totpSkew accepts the previous and the next step beside the current one (RFC 6238 §5.2:
	// at most one step of network delay and clock drift).
	totpSkew = 1
	// totpPendingTTL: an enrolment not confirmed within this time must start over.
	totpPendingTTL = 15 * time.Minute
	qrSize         = 256
)

// TOTPEnrollment is what BeginTOTP hands out once. URI and Secret are the seed itself: show
// them to the user and forget them.
type TOTPEnrollment struct {
	FactorID string
	URI      tutela.Secret // otpauth://totp/…, what the QR code encodes
	Secret   tutela.Secret // base32 seed, for typing in by hand
	QRPNG    []byte        // PNG of URI
}

// totpAAD binds a sealed seed to its row: opened under another tenant, user or factor ID (a
// ciphertext copied into another row) it fails.
func totpAAD(tenantID, userID, factorID string) []byte {
	return []byte("mfa_totp\x00" + tenantID + "\x00" + userID + "\x00" + factorID)
}

// BeginTOTP starts a TOTP enrolment: a new seed, sealed and stored as a pending factor that
// becomes usable only after ConfirmTOTP with a correct code. accountName (the user's e-mail)
// and issuer (the tenant or product name) label the entry in the authenticator app.
func (s *Service) BeginTOTP(ctx context.Context, tenantID, userID, accountName, issuer string) (*TOTPEnrollment, error) {
	if strings.TrimSpace(accountName) == "" || strings.TrimSpace(issuer) == "" {
		return nil, tutela.Errorf(tutela.EINVALID, "account name and issuer are required")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: accountName, Period: totpPeriod,
		SecretSize: totpSecretSize, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, tutela.Wrap(err, "cannot generate a TOTP seed")
	}
	raw, err := decodeSeed(key.Secret())
	if err != nil {
		return nil, tutela.Wrap(err, "cannot generate a TOTP seed")
	}
	defer clear(raw)
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return nil, tutela.Wrap(err, "cannot draw the QR code")
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, tutela.Wrap(err, "cannot draw the QR code")
	}
	f := &sqlstore.MFAFactor{ID: tutela.NewID(), UserID: userID, Name: "authenticator app"}
	sealed, err := s.sealer.Seal(raw, totpAAD(tenantID, userID, f.ID))
	if err != nil {
		return nil, tutela.Wrap(err, "cannot seal the TOTP seed")
	}
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.MFA(tenantID).CreateTOTP(ctx, f, sealed) }); err != nil {
		return nil, err
	}
	return &TOTPEnrollment{FactorID: f.ID, URI: tutela.NewSecret(key.URL()), Secret: tutela.NewSecret(key.Secret()),
		QRPNG: buf.Bytes()}, nil
}

// ConfirmTOTP activates the pending TOTP factor with a correct current code, if guard (when not
// nil) allows it in the same transaction. The code's time step counts as used.
func (s *Service) ConfirmTOTP(ctx context.Context, tenantID, userID, factorID, code string, guard Guard) error {
	return s.checkTOTP(ctx, tenantID, userID, factorID, code, guard)
}

// VerifyTOTP checks a code against the user's active TOTP factors. ErrInvalidCode for a wrong
// code or no active factor, ErrReplayed for a code whose time step was already used.
func (s *Service) VerifyTOTP(ctx context.Context, tenantID, userID, code string) error {
	return s.checkTOTP(ctx, tenantID, userID, "", code, nil)
}

// checkTOTP verifies code against the active TOTP factors, or the pending one when factorID is
// set, and marks its time step used — in one transaction with a conditional update, so the same
// step is never accepted twice, even by concurrent requests on different nodes. Activating a
// pending factor also needs guard's consent in that transaction.
func (s *Service) checkTOTP(ctx context.Context, tenantID, userID, pendingID, code string, guard Guard) error {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if !isDigits(code, totpDigits.Length()) {
		return ErrInvalidCode
	}
	now := s.now()
	current := now.Unix() / totpPeriod
	var result error
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		repo := tx.MFA(tenantID)
		factors, err := repo.TOTPFactors(ctx, userID, pendingID)
		if err != nil {
			return err
		}
		result = ErrInvalidCode
		for _, f := range factors {
			if pendingID != "" && now.Sub(f.CreatedAt) > totpPendingTTL {
				continue
			}
			seed, err := s.sealer.Open(f.Sealed, totpAAD(tenantID, userID, f.ID))
			if err != nil {
				return tutela.Wrap(err, "cannot open a TOTP seed")
			}
			step, ok := matchStep(seed, code, current)
			clear(seed)
			if !ok {
				continue
			}
			used, err := repo.UseTOTPStep(ctx, userID, f.ID, step, pendingID != "")
			if err != nil {
				return err
			}
			if used {
				result = nil
				if pendingID != "" && guard != nil {
					return guard(tx)
				}
			} else if pendingID == "" && step == f.ConfirmStep && f.LastStep == f.ConfirmStep {
				// Not used since it was confirmed: the confirming code typed again.
				result = ErrConfirmCodeReused
			} else {
				result = ErrReplayed
			}
			return nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	return result
}

// matchStep returns the time step within ±totpSkew of current whose code equals code. Every
// candidate is computed and compared in constant time, so timing does not tell which matched.
func matchStep(seed []byte, code string, current int64) (int64, bool) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)
	var match int64
	found := 0
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		step := current + d
		if step < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			continue
		}
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		match = int64(subtle.ConstantTimeSelect(eq, int(step), int(match)))
		found |= eq
	}
	return match, found == 1
}

func decodeSeed(b32 string) ([]byte, error) {
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(b32))
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// SeedSource lets `tutela keys rewrap` re-encrypt the sealed TOTP seeds (platform keyset
// "totp", associated data as BeginTOTP seals them), so the keyset's old keys can be retired.
func SeedSource(db *sqlstore.DB) sqlstore.SealedColumn {
	return sqlstore.SealedColumn{DB: db, Table: "mfa_factors", Column: "secret", Purpose: vault.PurposeTOTP,
		Where: "type = 'totp'", TenantCol: "tenant_id", Extra: "user_id",
		Item: func(id, tenantID, userID string) (string, []byte) { return "", totpAAD(tenantID, userID, id) }}
}
