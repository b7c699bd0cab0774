package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
)

// Credentials is what sign-in needs to know about a user.
type Credentials struct {
	User               *tutela.User
	PasswordHash       string // "" when no password is set yet
	TokenVersion       int64
	MustChangePassword bool
}

// CredentialsByEmail returns the tenant's user with the address and their credentials.
func (r Users) CredentialsByEmail(ctx context.Context, email string) (*Credentials, error) {
	id, err := r.idByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return r.credentials(ctx, `id = $2`, id)
}

// Credentials returns the user's credentials by ID.
func (r Users) Credentials(ctx context.Context, id string) (*Credentials, error) {
	if !tutela.ValidID(id) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return r.credentials(ctx, `id = $2`, id)
}

func (r Users) credentials(ctx context.Context, where string, arg any) (*Credentials, error) {
	if !tutela.ValidID(r.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	var c Credentials
	var hash sql.NullString
	u, s, err := scanUser(r.tx.queryRow(ctx, `SELECT `+userCols+`, password_hash, token_version, must_change_password
		FROM users WHERE tenant_id = $1 AND `+where, r.tenantID, arg), &hash, &c.TokenVersion, &c.MustChangePassword)
	if err != nil {
		return nil, err
	}
	if err := r.open(ctx, u, s); err != nil {
		return nil, err
	}
	c.User, c.PasswordHash = u, hash.String
	return &c, nil
}

// SetMustChangePassword flags (or clears) that the user must pick a new password, e.g. after
// their password turned up in a breach.
func (r Users) SetMustChangePassword(ctx context.Context, id string, must bool) error {
	res, err := r.tx.exec(ctx, `UPDATE users SET must_change_password = $1 WHERE tenant_id = $2 AND id = $3`, must, r.tenantID, id)
	if err := affectedOne(res, err, "user not found"); err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.must_change_password", r.tenantID, "user", id, "", map[string]any{"value": must})
}

// RehashPassword replaces the stored hash with an equivalent one (new parameters or algorithm)
// without touching the token version: the password did not change, so sessions stay.
func (r Users) RehashPassword(ctx context.Context, id, oldHash, newHash string) error {
	_, err := r.tx.exec(ctx, `UPDATE users SET password_hash = $1 WHERE tenant_id = $2 AND id = $3 AND password_hash = $4`,
		newHash, r.tenantID, id, oldHash)
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.password_rehash", r.tenantID, "user", id, "", nil)
}

// RecordLoginSuccess notes the time of the user's last successful sign-in.
func (r Users) RecordLoginSuccess(ctx context.Context, id string) error {
	_, err := r.tx.exec(ctx, `UPDATE users SET last_login_at = $1 WHERE tenant_id = $2 AND id = $3`, r.tx.now, r.tenantID, id)
	return err
}

// SessionPolicy is a tenant's session timeouts; zero means the server default.
type SessionPolicy struct {
	Idle, Absolute time.Duration
}

// TenantSessionPolicy returns the tenant's session timeout overrides.
func (tx *Tx) TenantSessionPolicy(ctx context.Context, tenantID string) (SessionPolicy, error) {
	var idle, abs sql.NullInt64
	err := tx.queryRow(ctx, `SELECT session_idle_seconds, session_absolute_seconds FROM tenants WHERE id = $1`, tenantID).Scan(&idle, &abs)
	if errors.Is(err, sql.ErrNoRows) {
		return SessionPolicy{}, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return SessionPolicy{Idle: time.Duration(idle.Int64) * time.Second, Absolute: time.Duration(abs.Int64) * time.Second}, err
}

// SetTenantSessionPolicy stores the tenant's session timeouts (zero = server default).
func (tx *Tx) SetTenantSessionPolicy(ctx context.Context, tenantID string, p SessionPolicy) error {
	toNull := func(d time.Duration) any {
		if d <= 0 {
			return nil
		}
		return int64(d / time.Second)
	}
	res, err := tx.exec(ctx, `UPDATE tenants SET session_idle_seconds = $1, session_absolute_seconds = $2 WHERE id = $3`,
		toNull(p.Idle), toNull(p.Absolute), tenantID)
	if err := affectedOne(res, err, "tenant not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "tenant.session_policy", tenantID, "tenant", tenantID, "",
		map[string]any{"idle_seconds": int64(p.Idle / time.Second), "absolute_seconds": int64(p.Absolute / time.Second)})
}

// TenantPasswordComposition returns the tenant's optional composition rules as stored (JSON,
// "" when none).
func (tx *Tx) TenantPasswordComposition(ctx context.Context, tenantID string) (string, error) {
	var c sql.NullString
	err := tx.queryRow(ctx, `SELECT password_composition FROM tenants WHERE id = $1`, tenantID).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return c.String, err
}

// SetTenantPasswordComposition stores the tenant's composition rules ("" clears them).
func (tx *Tx) SetTenantPasswordComposition(ctx context.Context, tenantID, rulesJSON string) error {
	var v any
	if rulesJSON != "" {
		v = rulesJSON
	}
	res, err := tx.exec(ctx, `UPDATE tenants SET password_composition = $1 WHERE id = $2`, v, tenantID)
	if err := affectedOne(res, err, "tenant not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "tenant.password_policy", tenantID, "tenant", tenantID, "", map[string]any{"composition": rulesJSON})
}

// EachPepperedHash calls fn with every stored password hash that names a pepper key (Tutela's
// ",pepper=ID" argon2id parameter): users' current hashes and their password history, across
// every tenant. `tutela keys retire` uses it to refuse destroying a pepper key a hash still
// needs. fn runs inside a read transaction and must not use the database.
func (db *DB) EachPepperedHash(ctx context.Context, fn func(hash string) error) error {
	return db.View(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, `SELECT password_hash FROM users WHERE password_hash LIKE '%,pepper=%'
			UNION ALL SELECT hash FROM password_history WHERE hash LIKE '%,pepper=%'`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				return err
			}
			if err := fn(h); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// AuthState is what authenticating a request needs to know about a user: nothing personal, so
// the check that runs on every request decrypts nothing.
type AuthState struct {
	Status             tutela.Status
	TokenVersion       int64
	MustChangePassword bool
}

// AuthState returns the user's status, token version and must-change-password flag. A user
// whose person key is gone (erased) is not found, as for Credentials.
func (r Users) AuthState(ctx context.Context, id string) (*AuthState, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	var a AuthState
	var status string
	err := r.tx.queryRow(ctx, `SELECT u.status, u.token_version, u.must_change_password FROM users u
		WHERE u.tenant_id = $1 AND u.id = $2
		AND EXISTS (SELECT 1 FROM person_keys k WHERE k.tenant_id = u.tenant_id AND k.person_id = u.id)`,
		r.tenantID, id).Scan(&status, &a.TokenVersion, &a.MustChangePassword)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return nil, err
	}
	a.Status = tutela.Status(status)
	return &a, nil
}
