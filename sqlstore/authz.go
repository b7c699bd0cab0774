package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
)

// Role is a built-in role (permissions from authz.BuiltinRoles) or a tenant's custom role.
type Role struct {
	ID          string                `json:"id"`
	TenantID    string                `json:"tenant_id,omitempty"`
	Key         string                `json:"key"`
	Name        string                `json:"name"`
	Description string                `json:"description"`
	Clearance   authz.Classification  `json:"clearance"`
	Builtin     bool                  `json:"builtin"`
	Permissions []authz.Permission    `json:"permissions"`
	FieldMasks  map[string]authz.Mask `json:"field_masks,omitempty"`
	CreatedAt   time.Time             `json:"created_at"`
}

var roleKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}$`)

func validateRole(r *Role) error {
	switch {
	case !roleKeyRE.MatchString(r.Key):
		return tutela.FieldErrorf("key", "key must be 2-63 lowercase letters, digits or underscores, starting with a letter")
	case strings.TrimSpace(r.Name) == "" || len(r.Name) > 100:
		return tutela.FieldErrorf("name", "name must be 1-100 characters")
	case !tutela.ValidText(r.Name):
		return tutela.InvalidText("name")
	case len(r.Description) > 1000:
		return tutela.FieldErrorf("description", "description must be at most 1000 characters")
	case !tutela.ValidFreeText(r.Description):
		// Free text that may span lines, so not ValidText; PostgreSQL refuses NUL and invalid
		// UTF-8 in text, which would otherwise surface as a 500.
		return tutela.FieldErrorf("description", "description must be UTF-8 text without NUL")
	case !r.Clearance.Valid():
		return tutela.FieldErrorf("clearance", "clearance must be GREEN, YELLOW or RED")
	}
	for _, p := range r.Permissions {
		if err := validatePermission(p); err != nil {
			return err
		}
	}
	for f, m := range r.FieldMasks {
		// Tutela's own classified fields, or a subject field ("subjects.<field>": the tenant's
		// schema names them, and a mask for a field the schema lacks has nothing to mask).
		subjectField, isSubject := strings.CutPrefix(f, authz.ResSubjects+".")
		if _, ok := authz.FieldClasses[f]; (!ok && !(isSubject && privacy.ValidName(subjectField))) || !m.Valid() {
			return tutela.FieldErrorf("field_masks", "field_masks: unknown field %q or mask %q", f, m)
		}
	}
	return nil
}

var resourceRE = regexp.MustCompile(`^([a-z][a-z0-9_]{0,62}|\*)$`)

func validatePermission(p authz.Permission) error {
	if !resourceRE.MatchString(p.Resource) {
		return tutela.FieldErrorf("permissions", "resource %q must be a lowercase resource type or *", p.Resource)
	}
	if !p.Action.Valid() {
		return tutela.FieldErrorf("permissions", "action %q is not one of CREATE READ UPDATE DELETE PUBLISH APPROVE REVIEW EXPORT IMPORT MANAGE", p.Action)
	}
	if p.MaxClass != "" && !p.MaxClass.Valid() {
		return tutela.FieldErrorf("permissions", "max_classification must be GREEN, YELLOW or RED")
	}
	return nil
}

// permissionID returns the catalog ID of p, adding it to the catalog if new.
func (tx *Tx) permissionID(ctx context.Context, p authz.Permission) (string, error) {
	var max any
	if p.MaxClass != "" {
		max = string(p.MaxClass)
	}
	var id string
	err := tx.queryRow(ctx, `SELECT id FROM permissions WHERE resource_type = $1 AND action = $2
		AND COALESCE(max_classification, '') = COALESCE($3, '')`, p.Resource, string(p.Action), max).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	id = tutela.NewID()
	_, err = tx.exec(ctx, `INSERT INTO permissions (id, resource_type, action, max_classification) VALUES ($1, $2, $3, $4)`,
		id, p.Resource, string(p.Action), max)
	return id, err
}

// Roles lists the built-in roles and the tenant's custom roles.
func (tx *Tx) Roles(ctx context.Context, tenantID string) ([]*Role, error) {
	rows, err := tx.query(ctx, `SELECT id, COALESCE(CAST(tenant_id AS TEXT), ''), key, name, description, clearance, builtin,
		created_at FROM roles WHERE tenant_id IS NULL OR CAST(tenant_id AS TEXT) = $1 ORDER BY builtin DESC, key`, tenantID)
	if err != nil {
		return nil, err
	}
	var out []*Role
	for rows.Next() {
		var r Role
		var cl string
		if err := rows.Scan(&r.ID, &r.TenantID, &r.Key, &r.Name, &r.Description, &cl, &r.Builtin, &r.CreatedAt); err != nil {
			rows.Close()
			return nil, err
		}
		r.Clearance, r.CreatedAt = authz.Classification(cl), r.CreatedAt.UTC()
		out = append(out, &r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, r := range out {
		if err := tx.fillRole(ctx, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (tx *Tx) fillRole(ctx context.Context, r *Role) error {
	if r.Builtin {
		def, _ := authz.Builtin(r.Key)
		r.Permissions, r.Clearance = def.Permissions, def.Clearance
		return nil
	}
	rows, err := tx.query(ctx, `SELECT p.resource_type, p.action, COALESCE(p.max_classification, '') FROM role_permissions rp
		JOIN permissions p ON p.id = rp.permission_id WHERE rp.role_id = $1 ORDER BY p.resource_type, p.action`, r.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	r.Permissions = nil
	for rows.Next() {
		var p authz.Permission
		var a, mc string
		if err := rows.Scan(&p.Resource, &a, &mc); err != nil {
			return err
		}
		p.Action, p.MaxClass = authz.Action(a), authz.Classification(mc)
		r.Permissions = append(r.Permissions, p)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	fr, err := tx.query(ctx, `SELECT field, mask FROM field_policies WHERE role_id = $1`, r.ID)
	if err != nil {
		return err
	}
	defer fr.Close()
	for fr.Next() {
		var f, m string
		if err := fr.Scan(&f, &m); err != nil {
			return err
		}
		if r.FieldMasks == nil {
			r.FieldMasks = map[string]authz.Mask{}
		}
		r.FieldMasks[f] = authz.Mask(m)
	}
	return fr.Err()
}

// Role returns the built-in or tenant custom role with key.
func (tx *Tx) Role(ctx context.Context, tenantID, key string) (*Role, error) {
	roles, err := tx.Roles(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	for _, r := range roles {
		if r.Key == key {
			return r, nil
		}
	}
	return nil, tutela.Errorf(tutela.ENOTFOUND, "role not found")
}

// RoleForUpdate is Role for a read-modify-write: it holds the role's row until the transaction
// ends (PostgreSQL; SQLite runs one writer at a time), so two concurrent updates cannot both
// start from the same permissions, and a change judged against what the role held (widening it to
// a takeover permission) is judged against what it really holds.
func (tx *Tx) RoleForUpdate(ctx context.Context, tenantID, key string) (*Role, error) {
	err := tx.lockRow(ctx, "role not found", `SELECT id FROM roles WHERE CAST(tenant_id AS TEXT) = $1 AND key = $2`,
		tenantID, key)
	if err != nil && tutela.ErrorCode(err) != tutela.ENOTFOUND {
		return nil, err
	}
	// Not a custom role of the tenant: a built-in one (which no update changes) or none.
	return tx.Role(ctx, tenantID, key)
}

// CreateRole adds a custom role to the tenant. Its key may not shadow a built-in role.
func (tx *Tx) CreateRole(ctx context.Context, tenantID string, r *Role) error {
	if err := validateRole(r); err != nil {
		return err
	}
	if _, ok := authz.Builtin(r.Key); ok {
		return tutela.FieldErrorf("key", "%q is a built-in role", r.Key)
	}
	if err := checkRoleSize(r); err != nil {
		return err
	}
	if err := tx.lockTenant(ctx, tenantID); err != nil {
		return err
	}
	n, err := tx.count(ctx, `SELECT count(*) FROM roles WHERE tenant_id = $1 AND NOT builtin`, tenantID)
	if err != nil {
		return err
	}
	if n >= MaxRolesPerTenant {
		return tutela.Errorf(tutela.ECONFLICT, "a tenant has at most %d custom roles; delete one first", MaxRolesPerTenant)
	}
	r.ID, r.TenantID, r.Builtin, r.CreatedAt = tutela.NewID(), tenantID, false, tx.now
	_, err = tx.exec(ctx, `INSERT INTO roles (id, tenant_id, key, name, description, clearance, builtin, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7)`, r.ID, tenantID, r.Key, r.Name, r.Description, string(r.Clearance), r.CreatedAt)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return &tutela.Error{Code: tutela.ECONFLICT, Field: "key", Message: "a role with this key already exists"}
	}
	if err != nil {
		return err
	}
	if err := tx.setRoleContents(ctx, r); err != nil {
		return err
	}
	return tx.Record(ctx, "role.create", tenantID, "role", r.ID, "", map[string]any{"key": r.Key, "clearance": string(r.Clearance),
		"permissions": permStrings(r.Permissions)})
}

// checkRoleSize refuses a role with more than MaxPermissionsPerRole distinct permissions (the
// duplicates setRoleContents drops do not count). The whole set is replaced at once, so the
// request alone decides: no lock is needed.
func checkRoleSize(r *Role) error {
	distinct := map[authz.Permission]bool{}
	for _, p := range r.Permissions {
		distinct[p] = true
	}
	if len(distinct) > MaxPermissionsPerRole {
		return &tutela.Error{Code: tutela.ECONFLICT, Field: "permissions",
			Message: fmt.Sprintf("a role has at most %d permissions; this one has %d", MaxPermissionsPerRole, len(distinct))}
	}
	return nil
}

func permStrings(ps []authz.Permission) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func (tx *Tx) setRoleContents(ctx context.Context, r *Role) error {
	if _, err := tx.exec(ctx, `DELETE FROM role_permissions WHERE role_id = $1`, r.ID); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, p := range r.Permissions {
		id, err := tx.permissionID(ctx, p)
		if err != nil {
			return err
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		if _, err := tx.exec(ctx, `INSERT INTO role_permissions (role_id, permission_id) VALUES ($1, $2)`, r.ID, id); err != nil {
			return err
		}
	}
	if _, err := tx.exec(ctx, `DELETE FROM field_policies WHERE role_id = $1`, r.ID); err != nil {
		return err
	}
	for f, m := range r.FieldMasks {
		if _, err := tx.exec(ctx, `INSERT INTO field_policies (role_id, field, mask) VALUES ($1, $2, $3)`, r.ID, f, string(m)); err != nil {
			return err
		}
	}
	return nil
}

// UpdateRole replaces a custom role's name, description, clearance, permissions and masks.
func (tx *Tx) UpdateRole(ctx context.Context, tenantID string, r *Role) error {
	if r.Builtin {
		return tutela.Errorf(tutela.EFORBIDDEN, "built-in roles cannot be changed")
	}
	if err := validateRole(r); err != nil {
		return err
	}
	if err := checkRoleSize(r); err != nil {
		return err
	}
	res, err := tx.exec(ctx, `UPDATE roles SET name = $1, description = $2, clearance = $3 WHERE id = $4 AND tenant_id = $5 AND NOT builtin`,
		r.Name, r.Description, string(r.Clearance), r.ID, tenantID)
	if err := affectedOne(res, err, "role not found"); err != nil {
		return err
	}
	if err := tx.setRoleContents(ctx, r); err != nil {
		return err
	}
	return tx.Record(ctx, "role.update", tenantID, "role", r.ID, "", map[string]any{"key": r.Key, "clearance": string(r.Clearance),
		"permissions": permStrings(r.Permissions)})
}

// DeleteRole removes a custom role; one still granted to someone is a conflict.
func (tx *Tx) DeleteRole(ctx context.Context, tenantID string, r *Role) error {
	if r.Builtin {
		return tutela.Errorf(tutela.EFORBIDDEN, "built-in roles cannot be deleted")
	}
	var n int
	if err := tx.queryRow(ctx, `SELECT count(*) FROM user_roles WHERE role_id = $1`, r.ID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return tutela.Errorf(tutela.ECONFLICT, "role is still granted to %d users; revoke it first", n)
	}
	res, err := tx.exec(ctx, `DELETE FROM roles WHERE id = $1 AND tenant_id = $2 AND NOT builtin`, r.ID, tenantID)
	if err := affectedOne(res, err, "role not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "role.delete", tenantID, "role", r.ID, "", map[string]any{"key": r.Key})
}

// RevokeRole removes a role grant from the user.
func (r Users) RevokeRole(ctx context.Context, userID, roleKey string) error {
	role, err := r.tx.Role(ctx, r.tenantID, roleKey)
	if err != nil {
		return err
	}
	res, err := r.tx.exec(ctx, `DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2 AND role_id = $3`, r.tenantID, userID, role.ID)
	if err := affectedOne(res, err, "the user does not have this role"); err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.role_revoke", r.tenantID, "user", userID, "", map[string]any{"role": roleKey})
}

// CountRoleHoldersInTenant counts the tenant's users holding an unexpired grant of roleKey.
func (tx *Tx) CountRoleHoldersInTenant(ctx context.Context, tenantID, roleKey string) (int, error) {
	var n int
	err := tx.queryRow(ctx, `SELECT count(*) FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
		JOIN users u ON u.tenant_id = ur.tenant_id AND u.id = ur.user_id
		WHERE ur.tenant_id = $1 AND ro.key = $2 AND u.status = 'active' AND (ur.expires_at IS NULL OR ur.expires_at > $3)`,
		tenantID, roleKey, tx.now).Scan(&n)
	return n, err
}

// IsLastProgramAdmin reports whether removing userID's program_admin role (or the user) would
// leave the tenant without an active programme administrator. It first locks the tenant's row
// until the transaction ends (lockTenant), so two transactions removing two different
// administrators of one tenant cannot both see the other still there. Call it in the
// transaction that makes the change.
func (tx *Tx) IsLastProgramAdmin(ctx context.Context, tenantID, userID string) (bool, error) {
	if err := tx.lockTenant(ctx, tenantID); err != nil {
		return false, err
	}
	keys, err := tx.Users(tenantID).Roles(ctx, userID)
	if err != nil {
		return false, err
	}
	if !slices.Contains(keys, authz.RoleProgramAdmin) {
		return false, nil
	}
	n, err := tx.CountRoleHoldersInTenant(ctx, tenantID, authz.RoleProgramAdmin)
	return n <= 1, err
}

// UserPermission is a per-user grant or explicit deny.
type UserPermission struct {
	ID string `json:"id"`
	authz.Permission
	Effect    authz.Effect `json:"effect"`
	GrantedBy string       `json:"granted_by,omitempty"`
	GrantedAt time.Time    `json:"granted_at"`
	ExpiresAt *time.Time   `json:"expires_at,omitempty"`
}

// GrantPermission gives the user a permission (allow) or an explicit deny.
func (r Users) GrantPermission(ctx context.Context, userID string, up *UserPermission) error {
	if err := validatePermission(up.Permission); err != nil {
		return err
	}
	if up.Effect != authz.Allow && up.Effect != authz.Deny {
		return tutela.FieldErrorf("effect", "effect must be allow or deny")
	}
	if err := r.tx.lockUser(ctx, r.tenantID, userID); err != nil {
		return err
	}
	// A partner's user holds the partner role's permissions and nothing more; a deny only
	// takes away, so it may still be set.
	if up.Effect == authz.Allow {
		if partner, err := r.PartnerOf(ctx, userID); err != nil {
			return err
		} else if partner != "" {
			return errPartnerRoleOnly
		}
	}
	n, err := r.tx.count(ctx, `SELECT count(*) FROM user_permissions WHERE tenant_id = $1 AND user_id = $2`, r.tenantID, userID)
	if err != nil {
		return err
	}
	if n >= MaxPermissionGrantsPerUser {
		return tutela.Errorf(tutela.ECONFLICT, "a user has at most %d per-user grants and denies (expired ones included); revoke one first",
			MaxPermissionGrantsPerUser)
	}
	pid, err := r.tx.permissionID(ctx, up.Permission)
	if err != nil {
		return err
	}
	up.ID, up.GrantedAt = tutela.NewID(), r.tx.now
	var exp any
	if up.ExpiresAt != nil {
		exp = up.ExpiresAt.UTC()
	}
	_, err = r.tx.exec(ctx, `INSERT INTO user_permissions (id, tenant_id, user_id, permission_id, effect, granted_by, granted_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, up.ID, r.tenantID, userID, pid, string(up.Effect), nullID(up.GrantedBy), up.GrantedAt, exp)
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.permission_"+string(up.Effect), r.tenantID, "user", userID, "",
		map[string]any{"permission": up.Permission.String(), "grant_id": up.ID})
}

// RevokePermission removes a per-user grant or deny by ID.
func (r Users) RevokePermission(ctx context.Context, userID, id string) error {
	if !tutela.ValidID(id) {
		return tutela.Errorf(tutela.ENOTFOUND, "permission grant not found")
	}
	res, err := r.tx.exec(ctx, `DELETE FROM user_permissions WHERE tenant_id = $1 AND user_id = $2 AND id = $3`, r.tenantID, userID, id)
	if err := affectedOne(res, err, "permission grant not found"); err != nil {
		return err
	}
	return r.tx.Record(ctx, "user.permission_revoke", r.tenantID, "user", userID, "", map[string]any{"grant_id": id})
}

// Permissions lists the user's per-user grants and denies, expired ones included.
func (r Users) Permissions(ctx context.Context, userID string) ([]*UserPermission, error) {
	rows, err := r.tx.query(ctx, `SELECT up.id, p.resource_type, p.action, COALESCE(p.max_classification, ''), up.effect,
		COALESCE(CAST(up.granted_by AS TEXT), ''), up.granted_at, up.expires_at FROM user_permissions up JOIN permissions p ON p.id = up.permission_id
		WHERE up.tenant_id = $1 AND up.user_id = $2 ORDER BY up.granted_at`, r.tenantID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*UserPermission
	for rows.Next() {
		var up UserPermission
		var a, mc, eff string
		var exp sql.NullTime
		var byS sql.NullString
		if err := rows.Scan(&up.ID, &up.Resource, &a, &mc, &eff, &byS, &up.GrantedAt, &exp); err != nil {
			return nil, err
		}
		up.Action, up.MaxClass, up.Effect, up.GrantedBy = authz.Action(a), authz.Classification(mc), authz.Effect(eff), byS.String
		up.GrantedAt = up.GrantedAt.UTC()
		if exp.Valid {
			t := exp.Time.UTC()
			up.ExpiresAt = &t
		}
		out = append(out, &up)
	}
	return out, rows.Err()
}

// Policy builds the authorization policy of a user: grants from their unexpired roles and
// per-user grants and denies, clearance (the highest of their roles), and field masks.
//
// A partner organisation's user (users.partner_id) gets the partner role's grants and nothing
// else, whatever rows user_roles or user_permissions hold (Grant and GrantPermission refuse
// them; this is the second lock), and the policy names the partner.
func (tx *Tx) Policy(ctx context.Context, tenantID, userID string) (*authz.Policy, error) {
	keys, err := tx.Users(tenantID).Roles(ctx, userID)
	if err != nil {
		return nil, err
	}
	partner, err := tx.Users(tenantID).PartnerOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	if partner != "" {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k != authz.RolePartner })
		p := &authz.Policy{TenantID: tenantID, Subject: userID, Roles: keys, Clearance: authz.Green, Partner: partner}
		if len(keys) > 0 {
			def, _ := authz.Builtin(authz.RolePartner)
			for _, perm := range def.Permissions {
				p.Grants = append(p.Grants, authz.Grant{Permission: perm, Effect: authz.Allow, Source: "role:" + authz.RolePartner})
			}
		}
		// Denies only take away, so the user's keep applying; their allows never do.
		ups, err := tx.Users(tenantID).Permissions(ctx, userID)
		if err != nil {
			return nil, err
		}
		for _, up := range ups {
			if up.Effect == authz.Deny {
				g := authz.Grant{Permission: up.Permission, Effect: authz.Deny, Source: "user"}
				if up.ExpiresAt != nil {
					g.Expires = *up.ExpiresAt
				}
				p.Grants = append(p.Grants, g)
			}
		}
		p.Masks = authz.MasksFor(p.Clearance, nil)
		return p, nil
	}
	p := &authz.Policy{TenantID: tenantID, Subject: userID, Roles: keys, Clearance: authz.Green}
	overrides := map[string]authz.Mask{}
	if len(keys) > 0 {
		roles, err := tx.Roles(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		for _, r := range roles {
			if !slices.Contains(keys, r.Key) {
				continue
			}
			if r.Clearance.Rank() > p.Clearance.Rank() {
				p.Clearance = r.Clearance
			}
			for _, perm := range r.Permissions {
				p.Grants = append(p.Grants, authz.Grant{Permission: perm, Effect: authz.Allow, Source: "role:" + r.Key})
			}
			for f, m := range r.FieldMasks {
				if cur, ok := overrides[f]; !ok || m.Rank() < cur.Rank() {
					overrides[f] = m // several roles: the most revealing mask wins
				}
			}
		}
	}
	ups, err := tx.Users(tenantID).Permissions(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, up := range ups {
		g := authz.Grant{Permission: up.Permission, Effect: up.Effect, Source: "user"}
		if up.ExpiresAt != nil {
			g.Expires = *up.ExpiresAt
		}
		p.Grants = append(p.Grants, g)
	}
	p.Masks = authz.MasksFor(p.Clearance, overrides)
	return p, nil
}
