package sqlstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"tutela"
	"tutela/privacy"
	"tutela/vault"
)

// Users' own personal data (issue 13) is sealed at rest: e-mail and display name under the
// user's person key, the IP and user agent of their sessions, sign-ins and security events too;
// rows with no user under the tenant's personal_data keyset. Sign-in finds a user by a blind
// index of the normalized address. Every read and write of those columns goes through the
// helpers below, which need the vault (SetVault); without one they fail closed.

// Fields a user's person key seals (the person key binds each value to its field).
const (
	fieldUserEmail = "users.email"
	fieldUserName  = "users.display_name"
)

// ErasedPlaceholder stands for a value whose owner was erased (their key is gone).
const ErasedPlaceholder = "[erased]"

// SetVault gives the store the vault that seals users' personal data. It must be set before
// any user is read or written; cmd/tutela sets it right after the vault opens.
func (db *DB) SetVault(v *vault.Vault) { db.vault = v }

// inTxKey marks a context used for vault calls inside a write transaction: a keyset the vault
// would create there is refused (needKeysetError) instead, because creating it takes the write
// connection the transaction holds (SQLite has one). Update creates it outside and runs the
// transaction again.
type inTxKey struct{}

type needKeysetError struct{ tenantID, purpose string }

func (e *needKeysetError) Error() string {
	return fmt.Sprintf("sqlstore: keyset %s of tenant %q must be created outside the transaction", e.purpose, e.tenantID)
}

// createKeyset creates the keyset a transaction needed, outside any transaction.
func (db *DB) createKeyset(ctx context.Context, nk *needKeysetError) error {
	if vault.KindOf(nk.purpose) == vault.KindPRF {
		_, err := db.vault.PRFPrimaryKey(ctx, nk.tenantID, nk.purpose)
		return err
	}
	_, err := db.vault.Encrypt(ctx, nk.tenantID, nk.purpose, nil, nil)
	return err
}

var errNoVault = errors.New("sqlstore: no vault set: users' personal data cannot be sealed or opened")

// vaultCtx is the vault and the context to call it with from this transaction.
func (tx *Tx) vaultCtx(ctx context.Context) (context.Context, *vault.Vault, error) {
	if tx.db.vault == nil {
		return nil, nil, errNoVault
	}
	ctx = vault.WithoutCreate(ctx, func(tenantID string) bool { return tx.newTenants[tenantID] })
	return context.WithValue(ctx, inTxKey{}, tx), tx.db.vault, nil
}

// newUserKey makes and stores a new user's person key.
func (tx *Tx) newUserKey(ctx context.Context, tenantID, userID string) (*privacy.PersonKey, error) {
	vctx, v, err := tx.vaultCtx(ctx)
	if err != nil {
		return nil, err
	}
	pk, wrapped, err := privacy.Keys{Vault: v}.New(vctx, tenantID, userID)
	if err != nil {
		return nil, err
	}
	if err := tx.PersonKeys(tenantID).Create(ctx, userID, PersonUser, wrapped); err != nil {
		if isForeignKeyErr(err) {
			return nil, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
		}
		return nil, err
	}
	tx.keys[tenantID+"/"+userID] = pk
	return pk, nil
}

// userKey opens a user's person key (privacy.ErrErased when there is none), once per
// transaction.
func (tx *Tx) userKey(ctx context.Context, tenantID, userID string) (*privacy.PersonKey, error) {
	if pk := tx.keys[tenantID+"/"+userID]; pk != nil {
		return pk, nil
	}
	w, err := tx.PersonKeys(tenantID).Get(ctx, userID)
	if err != nil {
		return nil, err
	}
	return tx.openUserKey(ctx, tenantID, userID, w)
}

// openUserKey opens a user's wrapped person key read from person_keys (nil: none) and keeps
// it for the rest of the transaction, as userKey does.
func (tx *Tx) openUserKey(ctx context.Context, tenantID, userID string, wrapped []byte) (*privacy.PersonKey, error) {
	vctx, v, err := tx.vaultCtx(ctx)
	if err != nil {
		return nil, err
	}
	pk, err := privacy.Keys{Vault: v}.Open(vctx, tenantID, userID, wrapped)
	if err != nil {
		return nil, err
	}
	tx.keys[tenantID+"/"+userID] = pk
	return pk, nil
}

// sealFor seals value as field of userID, or, with no user, under the tenant's personal_data
// keyset (tenant "" is the platform's) bound to table, column and row.
func (tx *Tx) sealFor(ctx context.Context, tenantID, userID, field, rowID, value string) ([]byte, error) {
	if userID != "" {
		pk, err := tx.userKey(ctx, tenantID, userID)
		if err != nil {
			return nil, err
		}
		return pk.Seal(field, []byte(value))
	}
	vctx, v, err := tx.vaultCtx(ctx)
	if err != nil {
		return nil, err
	}
	return v.Encrypt(vctx, tenantID, vault.PurposePersonalData, []byte(value), rowAAD(field, rowID))
}

// openFor opens what sealFor made. A value whose user was erased reads as ErasedPlaceholder; a
// value that does not open (another row, user or tenant, or tampered) is an error.
func (tx *Tx) openFor(ctx context.Context, tenantID, userID, field, rowID string, ct []byte) (string, error) {
	if userID != "" {
		pk, err := tx.userKey(ctx, tenantID, userID)
		if errors.Is(err, privacy.ErrErased) {
			return ErasedPlaceholder, nil
		}
		if err != nil {
			return "", err
		}
		pt, err := pk.Open(field, ct)
		return string(pt), err
	}
	vctx, v, err := tx.vaultCtx(ctx)
	if err != nil {
		return "", err
	}
	pt, err := v.Decrypt(vctx, tenantID, vault.PurposePersonalData, ct, rowAAD(field, rowID))
	return string(pt), err
}

// rowAAD binds a tenant-sealed value to its "table.column" field and row.
func rowAAD(field, rowID string) []byte { return vault.AAD("users_personal_data", field, rowID) }

// emailDigest is the blind index a user row stores: the primary key's ID, then the digest.
func (tx *Tx) emailDigest(ctx context.Context, tenantID, email string) ([]byte, error) {
	vctx, v, err := tx.vaultCtx(ctx)
	if err != nil {
		return nil, err
	}
	d, err := privacy.Index{Vault: v}.Digest(vctx, tenantID, fieldUserEmail, tutela.NormalizeEmail(email))
	if err != nil {
		return nil, err
	}
	return storedEmailDigest(d.KeyID, d.Sum), nil
}

// storedEmailDigest is users.email_digest's form: the 4-byte key ID, then the digest.
func storedEmailDigest(keyID uint32, sum []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, keyID), sum...)
}

// emailLookups are the blind indexes to search for: one per enabled key, so users indexed
// before a blind_index rotation stay findable. A tenant with no keyset has none.
func (tx *Tx) emailLookups(ctx context.Context, tenantID, email string) ([]any, error) {
	vctx, v, err := tx.vaultCtx(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := privacy.Index{Vault: v}.Lookup(vctx, tenantID, fieldUserEmail, tutela.NormalizeEmail(email))
	if err != nil {
		return nil, err
	}
	out := make([]any, len(ds))
	for i, d := range ds {
		out[i] = storedEmailDigest(d.KeyID, d.Sum)
	}
	return out, nil
}

// Erase crypto-shreds the tenant's user (tx.ErasePerson: ledger entry, person key deleted,
// audit event with reason and legal basis) and deletes their row, and with it their sessions,
// grants and tokens. The sealed copies that stay (sign-ins, security events, access-review
// items) no longer open: they read as ErasedPlaceholder. Audit events name the user by ID only.
func (r Users) Erase(ctx context.Context, id, reason, legalBasis string) error {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err := r.tx.lockUser(ctx, r.tenantID, id); err != nil {
		return err
	}
	if err := r.tx.ErasePerson(ctx, &Erasure{TenantID: r.tenantID, PersonID: id, Kind: PersonUser,
		Trigger: ErasureRequest, Reason: reason, LegalBasis: legalBasis}); err != nil {
		return err
	}
	if _, err := r.tx.finishErasure(ctx, r.tenantID, id, PersonUser, r.tx.now); err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.delete", r.tenantID, "user", id, "", nil)
}
