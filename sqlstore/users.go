package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"tutela"
	"tutela/privacy"
)

// Users is the user repository of one tenant. Every query it runs carries the tenant ID, so a
// read scoped to tenant A cannot return tenant B's rows even when given B's IDs: there is no
// unscoped user query to call by mistake.
type Users struct {
	tx       *Tx
	tenantID string
}

// Users returns tenantID's user repository.
func (tx *Tx) Users(tenantID string) Users { return Users{tx: tx, tenantID: tenantID} }

// validateUser applies the rule the mail package sends under (tutela.ValidEmail), so an account
// cannot hold a look-alike of another's address or one no reset e-mail can reach.
func validateUser(u *tutela.User) error {
	switch {
	case !tutela.ValidEmail(u.Email):
		return tutela.FieldErrorf("email", "email must be a plain ASCII address like name@example.org (at most %d characters, %d before the @)",
			tutela.MaxEmailBytes, tutela.MaxEmailLocalBytes)
	case !tutela.ValidText(u.DisplayName):
		return tutela.InvalidText("display_name")
	case utf8.RuneCountInString(u.DisplayName) > 200:
		return tutela.FieldErrorf("display_name", "display_name must be at most 200 characters")
	case !u.Status.Valid():
		return tutela.FieldErrorf("status", "status must be active or disabled")
	}
	return nil
}

// Create inserts u into the tenant, assigning ID and timestamps. An e-mail already used in the
// tenant, in any letter case, is a conflict, and so is a user past MaxUsersPerTenant.
func (r Users) Create(ctx context.Context, u *tutela.User) error {
	if u.Status == "" {
		u.Status = tutela.StatusActive
	}
	u.Email = strings.TrimSpace(u.Email)
	if err := validateUser(u); err != nil {
		return err
	}
	if err := r.tx.lockTenant(ctx, r.tenantID); err != nil {
		return err
	}
	n, err := r.Count(ctx)
	if err != nil {
		return err
	}
	if limit := r.tx.db.maxUsers; n >= limit {
		return tutela.Errorf(tutela.ECONFLICT, "a tenant has at most %d users, disabled ones included; delete one first", limit)
	}
	u.ID, u.TenantID = tutela.NewID(), r.tenantID
	u.CreatedAt, u.UpdatedAt = r.tx.now, r.tx.now
	if _, err := r.tx.newUserKey(ctx, r.tenantID, u.ID); err != nil {
		return err
	}
	sealed, err := r.seal(ctx, u)
	if err != nil {
		return err
	}
	// email and display_name keep '' and email_norm the user's ID: migration 00018 moved the
	// data to the sealed columns, and the old UNIQUE (tenant_id, email_norm) must still hold.
	_, err = r.tx.exec(ctx, `INSERT INTO users
		(id, tenant_id, email, email_norm, display_name, status, created_at, updated_at, email_digest, email_sealed,
		display_name_sealed)
		VALUES ($1, $2, '', $3, '', $4, $5, $6, $7, $8, $9)`,
		u.ID, u.TenantID, u.ID, string(u.Status), u.CreatedAt, u.UpdatedAt, sealed.digest, sealed.email, sealed.name)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return errEmailTaken()
	}
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.create", r.tenantID, "user", u.ID, "", nil)
}

const userCols = `id, tenant_id, email_sealed, display_name_sealed, status, created_at, updated_at`

// sealedUser is a user row's sealed personal data.
type sealedUser struct{ digest, email, name []byte }

// prefixedUserCols is userCols of the table aliased u (TestPrefixedCols keeps them equal).
const prefixedUserCols = `u.id, u.tenant_id, u.email_sealed, u.display_name_sealed, u.status, u.created_at, u.updated_at`

// userRow receives userCols (dest) and makes the user and their sealed data of them (user).
type userRow struct {
	u      tutela.User
	s      sealedUser
	status string
}

func (r *userRow) dest() []any {
	return []any{&r.u.ID, &r.u.TenantID, &r.s.email, &r.s.name, &r.status, &r.u.CreatedAt, &r.u.UpdatedAt}
}

func (r *userRow) user() (*tutela.User, *sealedUser) {
	u, s := r.u, r.s
	u.Status, u.CreatedAt, u.UpdatedAt = tutela.Status(r.status), u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return &u, &s
}

func scanUser(row interface{ Scan(...any) error }, extra ...any) (*tutela.User, *sealedUser, error) {
	var r userRow
	if err := row.Scan(append(r.dest(), extra...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
		}
		return nil, nil, err
	}
	u, s := r.user()
	return u, s, nil
}

// seal encrypts u's e-mail and display name under their person key and computes the e-mail's
// blind index. An address another user of the tenant has, under any enabled index key, is a
// conflict: the unique index alone would miss one indexed before a key rotation.
func (r Users) seal(ctx context.Context, u *tutela.User) (*sealedUser, error) {
	found, err := r.idByEmail(ctx, u.Email)
	if err != nil {
		return nil, err
	}
	if found != "" && found != u.ID {
		return nil, errEmailTaken()
	}
	pk, err := r.tx.userKey(ctx, r.tenantID, u.ID)
	if err != nil {
		return nil, err
	}
	var s sealedUser
	if s.email, err = pk.Seal(fieldUserEmail, []byte(u.Email)); err != nil {
		return nil, err
	}
	if s.name, err = pk.Seal(fieldUserName, []byte(u.DisplayName)); err != nil {
		return nil, err
	}
	if s.digest, err = r.tx.emailDigest(ctx, r.tenantID, u.Email); err != nil {
		return nil, err
	}
	return &s, nil
}

// errUserKeyGone answers for a user row whose person key is gone. Erasure deletes the row with
// the key (finishErasure), so such a row is a leftover (a restore by a release that re-applied
// only the shredding): it is not found, so nobody signs in as it or acts on it, and listings
// show it as erased (openListed) rather than failing for the whole tenant.
var errUserKeyGone = tutela.Errorf(tutela.ENOTFOUND, "user not found")

// open decrypts a scanned user's e-mail and display name. A user row without a key is
// errUserKeyGone, never a silent blank.
func (r Users) open(ctx context.Context, u *tutela.User, s *sealedUser) error {
	pk, err := r.tx.userKey(ctx, u.TenantID, u.ID)
	if errors.Is(err, privacy.ErrErased) {
		return errUserKeyGone
	}
	if err != nil {
		return fmt.Errorf("user %s: %w", u.ID, err)
	}
	email, err := pk.Open(fieldUserEmail, s.email)
	if err != nil {
		return fmt.Errorf("user %s: e-mail: %w", u.ID, err)
	}
	name, err := pk.Open(fieldUserName, s.name)
	if err != nil {
		return fmt.Errorf("user %s: display name: %w", u.ID, err)
	}
	u.Email, u.DisplayName = string(email), string(name)
	return nil
}

// openListed is open for listings: a row whose key is gone reads as ErasedPlaceholder, so one
// leftover row does not make the tenant's whole listing fail, and pages stay full (a skipped row
// would end a page early and look like the end of the list). Any other failure (a tampered or
// moved ciphertext) is still an error.
func (r Users) openListed(ctx context.Context, u *tutela.User, s *sealedUser) error {
	err := r.open(ctx, u, s)
	if errors.Is(err, errUserKeyGone) {
		u.Email, u.DisplayName = ErasedPlaceholder, ErasedPlaceholder
		return nil
	}
	return err
}

// idByEmail is the ID of the tenant's user with the address ("" when none), by blind index.
func (r Users) idByEmail(ctx context.Context, email string) (string, error) {
	ds, err := r.tx.emailLookups(ctx, r.tenantID, email)
	if err != nil || len(ds) == 0 {
		return "", err
	}
	q := `SELECT id FROM users WHERE tenant_id = $1 AND email_digest IN (`
	for i := range ds {
		if i > 0 {
			q += ", "
		}
		q += "$" + itoa(i+2)
	}
	var id string
	err = r.tx.queryRow(ctx, q+`)`, append([]any{r.tenantID}, ds...)...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

func (r Users) getOne(ctx context.Context, id string) (*tutela.User, error) {
	u, s, err := scanUser(r.tx.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND id = $2`,
		r.tenantID, id))
	if err != nil {
		return nil, err
	}
	return u, r.open(ctx, u, s)
}

// Get returns the tenant's user with the given ID. A user of another tenant is not found.
func (r Users) Get(ctx context.Context, id string) (*tutela.User, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return r.getOne(ctx, id)
}

// Status returns the tenant's user's status without opening their personal data (a check on
// a hot path: every download through a link the user issued). Unknown: not found.
func (r Users) Status(ctx context.Context, id string) (tutela.Status, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return "", tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	var st tutela.Status
	err := r.tx.queryRow(ctx, `SELECT status FROM users WHERE tenant_id = $1 AND id = $2`, r.tenantID, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return st, err
}

// ByEmail returns the tenant's user with the given address, compared case-insensitively.
func (r Users) ByEmail(ctx context.Context, email string) (*tutela.User, error) {
	if !tutela.ValidID(r.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	id, err := r.idByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return r.getOne(ctx, id)
}

// List returns up to limit users of the tenant ordered by ID, after cursor ("" = start).
func (r Users) List(ctx context.Context, cursor string, limit int) ([]*tutela.User, error) {
	if !tutela.ValidID(r.tenantID) {
		return nil, nil
	}
	return r.listWhere(ctx, `id > $2 ORDER BY id LIMIT $3`, cursorID(cursor), clampLimit(limit))
}

// listWhere lists the tenant's users matching cond (its arguments from $2), opening each one's
// sealed data once the rows are closed.
func (r Users) listWhere(ctx context.Context, cond string, args ...any) ([]*tutela.User, error) {
	rows, err := r.tx.query(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND `+cond, append([]any{r.tenantID}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tutela.User
	var sealed []*sealedUser
	for rows.Next() {
		u, s, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out, sealed = append(out, u), append(sealed, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close() // PostgreSQL runs no statement beside open rows; open reads person_keys
	for i, u := range out {
		if err := r.openListed(ctx, u, sealed[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Count returns how many users the tenant has.
func (r Users) Count(ctx context.Context) (int, error) {
	var n int
	err := r.tx.queryRow(ctx, `SELECT count(*) FROM users WHERE tenant_id = $1`, r.tenantID).Scan(&n)
	return n, err
}

// Update saves u's e-mail, display name and status, and sets UpdatedAt.
func (r Users) Update(ctx context.Context, u *tutela.User) error {
	u.Email = strings.TrimSpace(u.Email)
	if err := validateUser(u); err != nil {
		return err
	}
	if !tutela.ValidID(u.ID) || !tutela.ValidID(r.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	u.UpdatedAt = r.tx.now
	sealed, err := r.seal(ctx, u)
	if errors.Is(err, privacy.ErrErased) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return err
	}
	res, err := r.tx.exec(ctx, `UPDATE users SET email_digest = $1, email_sealed = $2, display_name_sealed = $3, status = $4,
		updated_at = $5 WHERE tenant_id = $6 AND id = $7`,
		sealed.digest, sealed.email, sealed.name, string(u.Status), u.UpdatedAt, r.tenantID, u.ID)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return errEmailTaken()
	}
	if err := affectedOne(res, err, "user not found"); err != nil {
		return err
	}
	if u.Status != tutela.StatusActive {
		// A disabled user's pending reset codes and sign-in challenges must not survive to be
		// redeemed later, whether or not the account is re-enabled.
		if err := r.RevokeTokens(ctx, u.ID); err != nil {
			return err
		}
	}
	return r.tx.Record(ctx, "user.update", r.tenantID, "user", u.ID, "", map[string]any{"status": string(u.Status)})
}

// Delete removes the tenant's user with the given ID (their role grants and tokens go with it).
func (r Users) Delete(ctx context.Context, id string) error {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	res, err := r.tx.exec(ctx, `DELETE FROM users WHERE tenant_id = $1 AND id = $2`, r.tenantID, id)
	if err := affectedOne(res, err, "user not found"); err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.delete", r.tenantID, "user", id, "", nil)
}

// PasswordHash returns the user's encoded password hash ("" when none is set) and token version.
func (r Users) PasswordHash(ctx context.Context, id string) (hash string, tokenVersion int64, err error) {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return "", 0, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	var h sql.NullString
	err = r.tx.queryRow(ctx, `SELECT password_hash, token_version FROM users WHERE tenant_id = $1 AND id = $2`,
		r.tenantID, id).Scan(&h, &tokenVersion)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	return h.String, tokenVersion, err
}

// SetPasswordHash stores a new encoded password hash and increments the user's token version,
// which ends every session and token issued before (password change ends them), and deletes the
// user's outstanding one-time tokens (RevokeTokens).
func (r Users) SetPasswordHash(ctx context.Context, id, encoded string) error {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	res, err := r.tx.exec(ctx, `UPDATE users SET password_hash = $1, token_version = token_version + 1,
		updated_at = $2 WHERE tenant_id = $3 AND id = $4`, encoded, r.tx.now, r.tenantID, id)
	if err := affectedOne(res, err, "user not found"); err != nil {
		return err
	}
	if err := r.RevokeTokens(ctx, id); err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.password_set", r.tenantID, "user", id, "", nil)
}

// Grant gives the user a built-in or the tenant's custom role by key (e.g. "operator").
//
// A partner organisation's user may hold the partner role only, and only they may hold it
// (checkRoleForUser): no path to this method gives a partner's user more.
func (r Users) Grant(ctx context.Context, userID, roleKey, grantedBy string, expires *time.Time) error {
	if err := r.tx.lockUser(ctx, r.tenantID, userID); err != nil {
		return err
	}
	if err := r.checkRoleForUser(ctx, userID, roleKey); err != nil {
		return err
	}
	var grantor any
	if grantedBy != "" {
		grantor = grantedBy
	}
	var exp any
	if expires != nil {
		exp = expires.UTC()
	}
	res, err := r.tx.exec(ctx, `INSERT INTO user_roles (tenant_id, user_id, role_id, granted_by, granted_at, expires_at)
		SELECT u.tenant_id, u.id, ro.id, $1, $2, $3 FROM users u, roles ro
		WHERE u.tenant_id = $4 AND u.id = $5 AND (ro.tenant_id IS NULL OR ro.tenant_id = u.tenant_id) AND ro.key = $6`,
		grantor, r.tx.now, exp, r.tenantID, userID, roleKey)
	if err := affectedOne(res, err, "user or role not found"); err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.role_grant", r.tenantID, "user", userID, "", map[string]any{"role": roleKey})
}

// Roles returns the keys of the user's unexpired roles.
func (r Users) Roles(ctx context.Context, userID string) ([]string, error) {
	rows, err := r.tx.query(ctx, `SELECT ro.key FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
		WHERE ur.tenant_id = $1 AND ur.user_id = $2 AND (ur.expires_at IS NULL OR ur.expires_at > $3)
		ORDER BY ro.key`, r.tenantID, userID, r.tx.now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// CountRoleHolders counts unexpired grants of a built-in role across all tenants. Bootstrap
// uses it to refuse a second first super-admin.
func (tx *Tx) CountRoleHolders(ctx context.Context, roleKey string) (int, error) {
	var n int
	err := tx.queryRow(ctx, `SELECT count(*) FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
		WHERE ro.key = $1 AND ro.tenant_id IS NULL AND (ur.expires_at IS NULL OR ur.expires_at > $2)`,
		roleKey, tx.now).Scan(&n)
	return n, err
}

func isForeignKeyErr(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "FOREIGN KEY constraint failed") || strings.Contains(s, "SQLSTATE 23503")
}

func errEmailTaken() error {
	return &tutela.Error{Code: tutela.ECONFLICT, Field: "email", Message: "a user with this email already exists in the tenant"}
}
