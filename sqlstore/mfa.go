package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
)

// Factor types.
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
	FactorRecovery = "recovery"
)

// MFAFactor is one second factor of a user, as listed to the user and to administrators. It
// carries no secret material.
type MFAFactor struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"-"`
	UserID     string     `json:"-"`
	Type       string     `json:"type"`
	Name       string     `json:"name"`
	Active     bool       `json:"active"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// Remaining is the number of unused codes of a recovery factor.
	Remaining int `json:"remaining,omitempty"`
}

// TOTPFactor is a TOTP factor with its sealed seed and the last time step it accepted.
type TOTPFactor struct {
	MFAFactor
	Sealed   []byte
	LastStep int64
	// ConfirmStep is the time step whose code confirmed the factor (-1 if unknown: confirmed
	// before migration 00014).
	ConfirmStep int64
}

// WebAuthnCredential is a passkey factor with its credential record (the library's JSON: public
// key, flags, AAGUID) and the last signature counter seen.
type WebAuthnCredential struct {
	MFAFactor
	CredentialID []byte
	Credential   []byte
	SignCount    uint32
}

// RecoveryCode is one unused recovery code's stored hash.
type RecoveryCode struct {
	ID   string
	Hash []byte
}

// WebAuthnCeremony is the server-side state of a begun registration or login: the library's
// session data, keyed by its challenge, usable once, until ExpiresAt.
type WebAuthnCeremony struct {
	Challenge string
	TenantID  string
	UserID    string
	Kind      string // "register" or "login"
	Session   []byte
	ExpiresAt time.Time
}

// MFA is the second-factor repository of one tenant. Like Users, every statement carries the
// tenant ID, so a factor ID from another tenant behaves exactly like an absent one.
type MFA struct {
	tx       *Tx
	tenantID string
}

// MFA returns tenantID's second-factor repository.
func (tx *Tx) MFA(tenantID string) MFA { return MFA{tx: tx, tenantID: tenantID} }

func (r MFA) validIDs(ids ...string) bool {
	if !tutela.ValidID(r.tenantID) {
		return false
	}
	for _, id := range ids {
		if !tutela.ValidID(id) {
			return false
		}
	}
	return true
}

var errFactorNotFound = tutela.Errorf(tutela.ENOTFOUND, "factor not found")

const factorCols = `id, tenant_id, user_id, type, name, active, created_at, last_used_at`

type scanner interface{ Scan(...any) error }

func scanFactor(row scanner, extra ...any) (*MFAFactor, error) {
	var f MFAFactor
	var used sql.NullTime
	err := row.Scan(append([]any{&f.ID, &f.TenantID, &f.UserID, &f.Type, &f.Name, &f.Active, &f.CreatedAt, &used}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errFactorNotFound
	}
	if err != nil {
		return nil, err
	}
	f.CreatedAt = f.CreatedAt.UTC()
	if used.Valid {
		t := used.Time.UTC()
		f.LastUsedAt = &t
	}
	return &f, nil
}

// Factors lists the user's factors, oldest first; a recovery factor carries its unused count.
func (r MFA) Factors(ctx context.Context, userID string) ([]*MFAFactor, error) {
	if !r.validIDs(userID) {
		return nil, nil
	}
	rows, err := r.tx.query(ctx, `SELECT `+factorCols+`, (SELECT COUNT(*) FROM mfa_recovery_codes c
		WHERE c.factor_id = f.id AND c.used_at IS NULL) FROM mfa_factors f WHERE tenant_id = $1 AND user_id = $2
		ORDER BY created_at, id`, r.tenantID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*MFAFactor
	for rows.Next() {
		var n int
		f, err := scanFactor(rows, &n)
		if err != nil {
			return nil, err
		}
		if f.Type == FactorRecovery {
			f.Remaining = n
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// HasActiveFactor reports whether the user has an active TOTP or WebAuthn factor. Recovery
// codes alone do not count: they are the fallback for a lost factor, not a factor of their own.
func (r MFA) HasActiveFactor(ctx context.Context, userID string) (bool, error) {
	if !r.validIDs(userID) {
		return false, nil
	}
	var n int
	err := r.tx.queryRow(ctx, `SELECT COUNT(*) FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND active
		AND type IN ('totp', 'webauthn')`, r.tenantID, userID).Scan(&n)
	return n > 0, err
}

// CreateTOTP stores a pending (inactive) TOTP factor with its sealed seed. f.ID must be set by
// the caller, because the seal's AAD binds it. Earlier pending TOTP factors of the user are
// dropped, so abandoned enrolments do not pile up; a user with MaxTOTPFactorsPerUser active
// ones already is a conflict (the new pending one would be one too many).
func (r MFA) CreateTOTP(ctx context.Context, f *MFAFactor, sealed []byte) error {
	if !r.validIDs(f.UserID, f.ID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err := r.tx.lockUser(ctx, r.tenantID, f.UserID); err != nil {
		return err
	}
	n, err := r.tx.count(ctx, `SELECT count(*) FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND type = 'totp' AND active`,
		r.tenantID, f.UserID)
	if err != nil {
		return err
	}
	if n >= MaxTOTPFactorsPerUser {
		return tutela.Errorf(tutela.ECONFLICT, "a user has at most %d authenticator apps (TOTP); remove one first", MaxTOTPFactorsPerUser)
	}
	if _, err := r.tx.exec(ctx, `DELETE FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND type = 'totp' AND NOT active`,
		r.tenantID, f.UserID); err != nil {
		return err
	}
	f.TenantID, f.Type, f.Active, f.CreatedAt, f.LastUsedAt = r.tenantID, FactorTOTP, false, r.tx.now, nil
	_, err = r.tx.exec(ctx, `INSERT INTO mfa_factors (id, tenant_id, user_id, type, name, active, secret, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, f.ID, f.TenantID, f.UserID, f.Type, f.Name, false, sealed, f.CreatedAt)
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "mfa.totp_enrollment_started", r.tenantID, "user", f.UserID, "", map[string]any{"factor_id": f.ID})
}

// TOTPFactors returns the user's TOTP factors: the active ones, or only the pending one with
// factorID when factorID is set.
func (r MFA) TOTPFactors(ctx context.Context, userID, factorID string) ([]*TOTPFactor, error) {
	if !r.validIDs(userID) || (factorID != "" && !tutela.ValidID(factorID)) {
		return nil, nil
	}
	q := `SELECT ` + factorCols + `, secret, last_step, COALESCE(confirm_step, -1) FROM mfa_factors
		WHERE tenant_id = $1 AND user_id = $2 AND type = 'totp'`
	args := []any{r.tenantID, userID}
	if factorID != "" {
		q += ` AND id = $3 AND NOT active`
		args = append(args, factorID)
	} else {
		q += ` AND active`
	}
	rows, err := r.tx.query(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*TOTPFactor
	for rows.Next() {
		var t TOTPFactor
		f, err := scanFactor(rows, &t.Sealed, &t.LastStep, &t.ConfirmStep)
		if err != nil {
			return nil, err
		}
		t.MFAFactor = *f
		out = append(out, &t)
	}
	return out, rows.Err()
}

// UseTOTPStep accepts time step for the TOTP factor if it is later than every step the factor
// accepted before (RFC 6238 §5.2: a code is valid once), and reports whether it did. The check
// and the write are one conditional UPDATE, so of two concurrent uses of one code at most one
// wins. With activate set it confirms a pending factor instead of using an active one.
func (r MFA) UseTOTPStep(ctx context.Context, userID, factorID string, step int64, activate bool) (bool, error) {
	if !r.validIDs(userID, factorID) {
		return false, nil
	}
	confirm := ""
	if activate {
		confirm = ", confirm_step = $1"
	}
	res, err := r.tx.exec(ctx, `UPDATE mfa_factors SET last_step = $1, last_used_at = $2, active = TRUE`+confirm+`
		WHERE tenant_id = $3 AND user_id = $4 AND id = $5 AND type = 'totp' AND active = $6 AND last_step < $1`,
		step, r.tx.now, r.tenantID, userID, factorID, !activate)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	action := "mfa.totp_used"
	if activate {
		action = "mfa.totp_enrolled"
	}
	return true, r.tx.Record(ctx, action, r.tenantID, "user", userID, "", map[string]any{"factor_id": factorID})
}

// ReplaceRecoveryCodes stores a new set of recovery codes (given as hashes) and voids the
// previous set in the same transaction.
func (r MFA) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) (*MFAFactor, error) {
	if !r.validIDs(userID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if _, err := r.tx.exec(ctx, `DELETE FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND type = 'recovery'`,
		r.tenantID, userID); err != nil {
		return nil, err
	}
	f := &MFAFactor{ID: tutela.NewID(), TenantID: r.tenantID, UserID: userID, Type: FactorRecovery, Name: "recovery codes",
		Active: true, CreatedAt: r.tx.now, Remaining: len(hashes)}
	_, err := r.tx.exec(ctx, `INSERT INTO mfa_factors (id, tenant_id, user_id, type, name, active, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, f.ID, f.TenantID, f.UserID, f.Type, f.Name, true, f.CreatedAt)
	if isForeignKeyErr(err) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return nil, err
	}
	for _, h := range hashes {
		if _, err := r.tx.exec(ctx, `INSERT INTO mfa_recovery_codes (id, factor_id, tenant_id, user_id, code_hash)
			VALUES ($1, $2, $3, $4, $5)`, tutela.NewID(), f.ID, r.tenantID, userID, h); err != nil {
			return nil, err
		}
	}
	return f, r.tx.Record(ctx, "mfa.recovery_codes_generated", r.tenantID, "user", userID, "",
		map[string]any{"factor_id": f.ID, "codes": len(hashes)})
}

// RecoveryCodes returns the hashes of the user's unused recovery codes, for the caller to
// compare in constant time.
func (r MFA) RecoveryCodes(ctx context.Context, userID string) ([]RecoveryCode, error) {
	if !r.validIDs(userID) {
		return nil, nil
	}
	rows, err := r.tx.query(ctx, `SELECT id, code_hash FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2
		AND used_at IS NULL`, r.tenantID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RecoveryCode
	for rows.Next() {
		var c RecoveryCode
		if err := rows.Scan(&c.ID, &c.Hash); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UseRecoveryCode marks the code used and reports whether this call did (a conditional
// UPDATE: two concurrent uses of one code succeed at most once) and how many remain unused.
func (r MFA) UseRecoveryCode(ctx context.Context, userID, codeID string) (ok bool, remaining int, err error) {
	if !r.validIDs(userID, codeID) {
		return false, 0, nil
	}
	var factorID string
	err = r.tx.queryRow(ctx, `UPDATE mfa_recovery_codes SET used_at = $1 WHERE tenant_id = $2 AND user_id = $3
		AND id = $4 AND used_at IS NULL RETURNING factor_id`, r.tx.now, r.tenantID, userID, codeID).Scan(&factorID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	if _, err := r.tx.exec(ctx, `UPDATE mfa_factors SET last_used_at = $1 WHERE id = $2`, r.tx.now, factorID); err != nil {
		return false, 0, err
	}
	if err := r.tx.queryRow(ctx, `SELECT COUNT(*) FROM mfa_recovery_codes WHERE factor_id = $1 AND used_at IS NULL`,
		factorID).Scan(&remaining); err != nil {
		return false, 0, err
	}
	return true, remaining, r.tx.Record(ctx, "mfa.recovery_used", r.tenantID, "user", userID, "",
		map[string]any{"factor_id": factorID, "remaining": remaining})
}

// CreateCeremony stores a begun WebAuthn ceremony. Expired ceremonies of the user are dropped.
func (r MFA) CreateCeremony(ctx context.Context, c *WebAuthnCeremony) error {
	if !r.validIDs(c.UserID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if _, err := r.tx.exec(ctx, `DELETE FROM webauthn_ceremonies WHERE tenant_id = $1 AND user_id = $2 AND expires_at <= $3`,
		r.tenantID, c.UserID, r.tx.now); err != nil {
		return err
	}
	c.TenantID, c.ExpiresAt = r.tenantID, c.ExpiresAt.UTC().Truncate(time.Microsecond)
	_, err := r.tx.exec(ctx, `INSERT INTO webauthn_ceremonies (challenge, tenant_id, user_id, kind, session, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, c.Challenge, c.TenantID, c.UserID, c.Kind, c.Session, r.tx.now, c.ExpiresAt)
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "mfa.webauthn_"+c.Kind+"_begun", r.tenantID, "user", c.UserID, "", nil)
}

// TakeCeremony removes and returns the user's unexpired ceremony of kind with challenge. It is
// single use: a second take of the same challenge is not found, even by a concurrent caller.
func (r MFA) TakeCeremony(ctx context.Context, userID, kind, challenge string) (*WebAuthnCeremony, error) {
	notFound := tutela.Errorf(tutela.ENOTFOUND, "no pending passkey ceremony")
	if !r.validIDs(userID) || challenge == "" {
		return nil, notFound
	}
	c := WebAuthnCeremony{Challenge: challenge, TenantID: r.tenantID, UserID: userID, Kind: kind}
	err := r.tx.queryRow(ctx, `DELETE FROM webauthn_ceremonies WHERE tenant_id = $1 AND user_id = $2 AND kind = $3
		AND challenge = $4 RETURNING session, expires_at`, r.tenantID, userID, kind, challenge).Scan(&c.Session, &c.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	if !r.tx.now.Before(c.ExpiresAt) {
		return nil, notFound
	}
	c.ExpiresAt = c.ExpiresAt.UTC()
	return &c, nil
}

// CreateWebAuthnCredential stores a registered passkey as an active factor. A credential ID
// already registered (to anyone) is a conflict, and so is a user's passkey past
// MaxPasskeysPerUser.
func (r MFA) CreateWebAuthnCredential(ctx context.Context, c *WebAuthnCredential) error {
	if !r.validIDs(c.UserID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err := r.tx.lockUser(ctx, r.tenantID, c.UserID); err != nil {
		return err
	}
	n, err := r.tx.count(ctx, `SELECT count(*) FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND type = 'webauthn'`,
		r.tenantID, c.UserID)
	if err != nil {
		return err
	}
	if n >= MaxPasskeysPerUser {
		return tutela.Errorf(tutela.ECONFLICT, "a user has at most %d passkeys; remove one first", MaxPasskeysPerUser)
	}
	c.ID, c.TenantID, c.Type, c.Active, c.CreatedAt = tutela.NewID(), r.tenantID, FactorWebAuthn, true, r.tx.now
	_, err = r.tx.exec(ctx, `INSERT INTO mfa_factors (id, tenant_id, user_id, type, name, active, credential_id, credential,
		sign_count, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, c.ID, c.TenantID, c.UserID, c.Type, c.Name,
		true, c.CredentialID, c.Credential, int64(c.SignCount), c.CreatedAt)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return tutela.Errorf(tutela.ECONFLICT, "this passkey is already registered")
	}
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "mfa.webauthn_registered", r.tenantID, "user", c.UserID, "", map[string]any{"factor_id": c.ID})
}

// WebAuthnCredentials returns the user's active passkeys.
func (r MFA) WebAuthnCredentials(ctx context.Context, userID string) ([]*WebAuthnCredential, error) {
	if !r.validIDs(userID) {
		return nil, nil
	}
	rows, err := r.tx.query(ctx, `SELECT `+factorCols+`, credential_id, credential, sign_count FROM mfa_factors
		WHERE tenant_id = $1 AND user_id = $2 AND type = 'webauthn' AND active ORDER BY created_at, id`, r.tenantID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*WebAuthnCredential
	for rows.Next() {
		var c WebAuthnCredential
		var count int64
		f, err := scanFactor(rows, &c.CredentialID, &c.Credential, &count)
		if err != nil {
			return nil, err
		}
		c.MFAFactor, c.SignCount = *f, uint32(count) // #nosec G115 -- sign counts are written from uint32 values (WebAuthn signCount)
		out = append(out, &c)
	}
	return out, rows.Err()
}

// UseWebAuthnCredential records a verified assertion: the new signature counter and credential
// record. The counter must move forward (or both stay 0, for authenticators without one); the
// condition is part of the UPDATE, so it reports false when another use got there first — the
// caller treats that like any other counter regression.
func (r MFA) UseWebAuthnCredential(ctx context.Context, userID, factorID string, signCount uint32, credential []byte) (bool, error) {
	if !r.validIDs(userID, factorID) {
		return false, nil
	}
	res, err := r.tx.exec(ctx, `UPDATE mfa_factors SET sign_count = $1, credential = $2, last_used_at = $3
		WHERE tenant_id = $4 AND user_id = $5 AND id = $6 AND type = 'webauthn' AND active
		AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))`,
		int64(signCount), credential, r.tx.now, r.tenantID, userID, factorID)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	return true, r.tx.Record(ctx, "mfa.webauthn_used", r.tenantID, "user", userID, "", map[string]any{"factor_id": factorID})
}

// RecordClonedAuthenticator records that a passkey presented a signature counter that did not
// move forward: a sign the private key exists twice (W3C WebAuthn §6.1.1).
func (r MFA) RecordClonedAuthenticator(ctx context.Context, userID, factorID string, stored, presented uint32) error {
	return r.tx.Record(ctx, "mfa.webauthn_cloned", r.tenantID, "user", userID, "failure",
		map[string]any{"factor_id": factorID, "stored_sign_count": stored, "presented_sign_count": presented})
}

// RemoveFactor deletes one of the user's factors (with its recovery codes).
func (r MFA) RemoveFactor(ctx context.Context, userID, factorID string) error {
	if !r.validIDs(userID, factorID) {
		return errFactorNotFound
	}
	var typ string
	err := r.tx.queryRow(ctx, `DELETE FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND id = $3 RETURNING type`,
		r.tenantID, userID, factorID).Scan(&typ)
	if errors.Is(err, sql.ErrNoRows) {
		return errFactorNotFound
	}
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "mfa.factor_removed", r.tenantID, "user", userID, "", map[string]any{"factor_id": factorID, "type": typ})
}

// RemoveAllFactors deletes every factor, recovery code and pending ceremony of the user (an
// administrator's MFA reset) and returns how many factors it removed.
func (r MFA) RemoveAllFactors(ctx context.Context, userID string) (int64, error) {
	if !r.validIDs(userID) {
		return 0, nil
	}
	if _, err := r.tx.exec(ctx, `DELETE FROM webauthn_ceremonies WHERE tenant_id = $1 AND user_id = $2`, r.tenantID, userID); err != nil {
		return 0, err
	}
	res, err := r.tx.exec(ctx, `DELETE FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2`, r.tenantID, userID)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, r.tx.Record(ctx, "mfa.factors_reset", r.tenantID, "user", userID, "", map[string]any{"factors": n})
}

// ServiceAccountKey is a public key a service account signs client assertions with.
type ServiceAccountKey struct {
	ID               string    `json:"id"`
	TenantID         string    `json:"-"`
	ServiceAccountID string    `json:"service_account_id"`
	KeyID            string    `json:"kid"`
	Alg              string    `json:"alg"`
	PublicJWK        []byte    `json:"-"`
	CreatedAt        time.Time `json:"created_at"`
}

// maxServiceAccountKeys bounds the keys one account may hold (rotation needs two; a few spare).
const maxServiceAccountKeys = 10

// AddServiceAccountKey registers k for the tenant's service account k.ServiceAccountID.
func (tx *Tx) AddServiceAccountKey(ctx context.Context, tenantID string, k *ServiceAccountKey) error {
	notFound := tutela.Errorf(tutela.ENOTFOUND, "service account not found")
	if !tutela.ValidID(tenantID) || !tutela.ValidID(k.ServiceAccountID) {
		return notFound
	}
	if err := tx.lockServiceAccount(ctx, k.ServiceAccountID); err != nil {
		return err
	}
	var n int
	err := tx.queryRow(ctx, `SELECT (SELECT COUNT(*) FROM service_account_keys WHERE service_account_id = s.id)
		FROM service_accounts s WHERE s.tenant_id = $1 AND s.id = $2`, tenantID, k.ServiceAccountID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound
	}
	if err != nil {
		return err
	}
	if n >= maxServiceAccountKeys {
		return tutela.Errorf(tutela.ECONFLICT, "a service account holds at most %d keys; remove one first", maxServiceAccountKeys)
	}
	k.ID, k.TenantID, k.CreatedAt = tutela.NewID(), tenantID, tx.now
	_, err = tx.exec(ctx, `INSERT INTO service_account_keys (id, tenant_id, service_account_id, kid, alg, public_jwk, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, k.TenantID, k.ServiceAccountID, k.KeyID, k.Alg, k.PublicJWK, k.CreatedAt)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return &tutela.Error{Code: tutela.ECONFLICT, Field: "kid", Message: "a key with this kid is already registered"}
	}
	if err != nil {
		return err
	}
	return tx.Record(ctx, "service_account.key_added", tenantID, "service_account", k.ServiceAccountID, "",
		map[string]any{"kid": k.KeyID, "alg": k.Alg})
}

// RemoveServiceAccountKey deletes the tenant's service account key with id.
func (tx *Tx) RemoveServiceAccountKey(ctx context.Context, tenantID, serviceAccountID, id string) error {
	notFound := tutela.Errorf(tutela.ENOTFOUND, "key not found")
	if !tutela.ValidID(tenantID) || !tutela.ValidID(serviceAccountID) || !tutela.ValidID(id) {
		return notFound
	}
	var kid string
	err := tx.queryRow(ctx, `DELETE FROM service_account_keys WHERE tenant_id = $1 AND service_account_id = $2 AND id = $3
		RETURNING kid`, tenantID, serviceAccountID, id).Scan(&kid)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound
	}
	if err != nil {
		return err
	}
	return tx.Record(ctx, "service_account.key_removed", tenantID, "service_account", serviceAccountID, "", map[string]any{"kid": kid})
}

// ServiceAccountKeys returns the service account with clientID and its registered public keys.
// client_id is globally unique, so this lookup is the one that tells which tenant is calling.
func (tx *Tx) ServiceAccountKeys(ctx context.Context, clientID string) (*ServiceAccount, []ServiceAccountKey, error) {
	var sa ServiceAccount
	var status string
	err := tx.queryRow(ctx, `SELECT id, tenant_id, name, client_id, status, created_at FROM service_accounts
		WHERE client_id = $1`, clientID).Scan(&sa.ID, &sa.TenantID, &sa.Name, &sa.ClientID, &status, &sa.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, tutela.Errorf(tutela.ENOTFOUND, "service account not found")
	}
	if err != nil {
		return nil, nil, err
	}
	sa.Status, sa.CreatedAt = tutela.Status(status), sa.CreatedAt.UTC()
	rows, err := tx.query(ctx, `SELECT id, tenant_id, service_account_id, kid, alg, public_jwk, created_at
		FROM service_account_keys WHERE tenant_id = $1 AND service_account_id = $2 ORDER BY created_at, id`, sa.TenantID, sa.ID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var keys []ServiceAccountKey
	for rows.Next() {
		var k ServiceAccountKey
		if err := rows.Scan(&k.ID, &k.TenantID, &k.ServiceAccountID, &k.KeyID, &k.Alg, &k.PublicJWK, &k.CreatedAt); err != nil {
			return nil, nil, err
		}
		k.CreatedAt = k.CreatedAt.UTC()
		keys = append(keys, k)
	}
	return &sa, keys, rows.Err()
}

// UseClientAssertionJTI records the jti of an accepted client assertion until expires and
// reports whether it was new. A jti seen before (and not yet expired) is a replay: the insert
// does nothing, atomically, so two concurrent presentations succeed at most once. Expired jtis
// of the account are purged on the way.
func (tx *Tx) UseClientAssertionJTI(ctx context.Context, tenantID, serviceAccountID, jti string, expires time.Time) (bool, error) {
	if _, err := tx.exec(ctx, `DELETE FROM client_assertion_jtis WHERE service_account_id = $1 AND expires_at <= $2`,
		serviceAccountID, tx.now); err != nil {
		return false, err
	}
	res, err := tx.exec(ctx, `INSERT INTO client_assertion_jtis (service_account_id, jti, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (service_account_id, jti) DO NOTHING`, serviceAccountID, jti, expires.UTC().Truncate(time.Microsecond))
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	return true, tx.Record(ctx, "service_account.client_assertion", tenantID, "service_account", serviceAccountID, "", nil)
}
