package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela/authz"
	"tutela/privacy"
)

// What `tutela export --anonymize` reads from the source (anonymize.go writes it to the copy).
// The tables and columns it copies, and the ones it leaves behind with the reason, are listed in
// anonymize_tables.go.

type anonTenant struct {
	id, slug, name, region, status    string
	idle, absolute                    sql.NullInt64
	composition                       sql.NullString
	mfaAll, privateKeyJWT, saTakeOver bool
	createdAt                         time.Time
}

type anonPermission struct {
	id, resource, action string
	maxClass             sql.NullString
}

type anonRole struct {
	id, tenantID, key, name, clearance, description string
	createdAt                                       time.Time
}

type anonMask struct{ roleID, field, mask string }

type anonProfile struct{ tenantID, purpose, rules, updatedBy string }

// anonUser is a user with their opened e-mail and display name.
type anonUser struct {
	tenantID, id, email, name, status string
}

type anonUserRole struct {
	tenantID, userID, roleID string
	grantedBy                sql.NullString
	expiresAt                sql.NullTime
}

type anonUserPermission struct {
	tenantID, userID, permissionID, effect string
	grantedBy                              sql.NullString
	expiresAt                              sql.NullTime
}

// anonSubject is a live subject with its opened values.
type anonSubject struct {
	tenantID, id, createdBy string
	values                  map[string]string
}

// anonSource is everything the copy is made of, read in one transaction.
type anonSource struct {
	tenants     []anonTenant
	permissions []anonPermission
	roles       []anonRole
	rolePerms   [][2]string // role ID, permission ID
	masks       []anonMask
	schemas     map[string]privacy.Schema
	purposes    map[string][]*privacy.Purpose // the register of purposes, by tenant
	profiles    []anonProfile
	users       []anonUser
	userRoles   []anonUserRole
	userPerms   []anonUserPermission
	subjects    []anonSubject
	// skipped: users whose key is gone (a leftover row reads as erased) and subjects holding no
	// value (nothing to copy; SealNew needs one).
	skippedUsers, skippedSubjects int
}

// readAnonSource reads the source in one read transaction (REPEATABLE READ on PostgreSQL, a
// snapshot in SQLite's WAL mode), so grants, users and subjects are consistent with each other.
func (db *DB) readAnonSource(ctx context.Context) (*anonSource, error) {
	if db.vault == nil {
		return nil, errNoVault
	}
	opts := &sql.TxOptions{}
	if db.dialect == Postgres {
		opts = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	src := &anonSource{schemas: map[string]privacy.Schema{}, purposes: map[string][]*privacy.Purpose{}}
	err := db.run(ctx, db.read, opts, func(tx *Tx) error {
		for _, step := range []func(context.Context, *Tx, *anonSource) error{readAnonConfig, readAnonUsers, readAnonSubjects} {
			if err := step(ctx, tx, src); err != nil {
				return err
			}
		}
		return nil
	})
	return src, err
}

// scanAll runs q and calls scan for each row.
func scanAll(ctx context.Context, tx *Tx, q string, scan func(*sql.Rows) error, args ...any) error {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// readAnonConfig reads tenants, the permission catalog, custom roles with their permissions and
// masks, subject schemas and minimization profiles: configuration, copied as it is.
func readAnonConfig(ctx context.Context, tx *Tx, src *anonSource) error {
	// A region-bound node copies its region's tenants only, and of the tables read here as a
	// whole only their rows (docs/residency.md): the other regions' data is not this node's.
	where, args := tx.regionWhere("id")
	if err := scanAll(ctx, tx, `SELECT id, slug, name, data_region, status, session_idle_seconds, session_absolute_seconds,
		password_composition, mfa_required_all, require_private_key_jwt, service_accounts_may_take_over, created_at
		FROM tenants`+where+` ORDER BY id`, func(r *sql.Rows) error {
		var t anonTenant
		if err := r.Scan(&t.id, &t.slug, &t.name, &t.region, &t.status, &t.idle, &t.absolute, &t.composition, &t.mfaAll,
			&t.privateKeyJWT, &t.saTakeOver, &t.createdAt); err != nil {
			return err
		}
		src.tenants = append(src.tenants, t)
		return nil
	}, args...); err != nil {
		return err
	}
	if err := scanAll(ctx, tx, `SELECT id, resource_type, action, max_classification FROM permissions ORDER BY id`, func(r *sql.Rows) error {
		var p anonPermission
		if err := r.Scan(&p.id, &p.resource, &p.action, &p.maxClass); err != nil {
			return err
		}
		src.permissions = append(src.permissions, p)
		return nil
	}); err != nil {
		return err
	}
	scope, args := tx.regionScope("tenant_id", false)
	if err := scanAll(ctx, tx, `SELECT id, tenant_id, key, name, clearance, description, created_at FROM roles
		WHERE tenant_id IS NOT NULL AND NOT builtin`+scope+` ORDER BY id`, func(r *sql.Rows) error {
		var ro anonRole
		if err := r.Scan(&ro.id, &ro.tenantID, &ro.key, &ro.name, &ro.clearance, &ro.description, &ro.createdAt); err != nil {
			return err
		}
		src.roles = append(src.roles, ro)
		return nil
	}, args...); err != nil {
		return err
	}
	scope, args = tx.regionScope("ro.tenant_id", false)
	if err := scanAll(ctx, tx, `SELECT rp.role_id, rp.permission_id FROM role_permissions rp JOIN roles ro ON ro.id = rp.role_id
		WHERE ro.tenant_id IS NOT NULL AND NOT ro.builtin`+scope+` ORDER BY rp.role_id, rp.permission_id`, func(r *sql.Rows) error {
		var p [2]string
		if err := r.Scan(&p[0], &p[1]); err != nil {
			return err
		}
		src.rolePerms = append(src.rolePerms, p)
		return nil
	}, args...); err != nil {
		return err
	}
	if err := scanAll(ctx, tx, `SELECT f.role_id, f.field, f.mask FROM field_policies f JOIN roles ro ON ro.id = f.role_id
		WHERE ro.tenant_id IS NOT NULL AND NOT ro.builtin`+scope+` ORDER BY f.role_id, f.field`, func(r *sql.Rows) error {
		var m anonMask
		if err := r.Scan(&m.roleID, &m.field, &m.mask); err != nil {
			return err
		}
		src.masks = append(src.masks, m)
		return nil
	}, args...); err != nil {
		return err
	}
	where, args = tx.regionWhere("tenant_id")
	if err := scanAll(ctx, tx, `SELECT tenant_id, purpose, rules, updated_by FROM minimization_profiles`+where+` ORDER BY tenant_id, purpose`,
		func(r *sql.Rows) error {
			var p anonProfile
			if err := r.Scan(&p.tenantID, &p.purpose, &p.rules, &p.updatedBy); err != nil {
				return err
			}
			src.profiles = append(src.profiles, p)
			return nil
		}, args...); err != nil {
		return err
	}
	for _, t := range src.tenants {
		s, err := tx.SubjectSchema(t.id).Get(ctx)
		if err != nil {
			return err
		}
		src.schemas[t.id] = s
		if src.purposes[t.id], err = tx.Consent(t.id).Purposes(ctx); err != nil {
			return err
		}
	}
	return nil
}

// readAnonUsers reads every user with their opened e-mail and name, and their grants.
func readAnonUsers(ctx context.Context, tx *Tx, src *anonSource) error {
	for _, t := range src.tenants {
		for cursor := ""; ; {
			page, err := tx.Users(t.id).List(ctx, cursor, MaxPageSize)
			if err != nil {
				return err
			}
			for _, u := range page {
				if u.Email == ErasedPlaceholder {
					src.skippedUsers++
					continue
				}
				src.users = append(src.users, anonUser{tenantID: t.id, id: u.ID, email: u.Email, name: u.DisplayName, status: string(u.Status)})
			}
			if len(page) < MaxPageSize {
				break
			}
			cursor = page[len(page)-1].ID
		}
	}
	// The platform super-admin's grants stay behind: staging makes its own with `tutela
	// bootstrap`, which refuses to run while any super-admin exists, and copied users have no
	// password, so a copied grant would leave the copy with an administrator nobody can be.
	var superAdmin string
	if err := tx.queryRow(ctx, `SELECT id FROM roles WHERE key = $1 AND tenant_id IS NULL`, authz.RoleSuperAdmin).
		Scan(&superAdmin); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	where, args := tx.regionWhere("tenant_id")
	if err := scanAll(ctx, tx, `SELECT tenant_id, user_id, role_id, granted_by, expires_at FROM user_roles`+where+` ORDER BY tenant_id, user_id, role_id`,
		func(r *sql.Rows) error {
			var g anonUserRole
			if err := r.Scan(&g.tenantID, &g.userID, &g.roleID, &g.grantedBy, &g.expiresAt); err != nil {
				return err
			}
			if g.roleID == superAdmin {
				return nil
			}
			src.userRoles = append(src.userRoles, g)
			return nil
		}, args...); err != nil {
		return err
	}
	return scanAll(ctx, tx, `SELECT tenant_id, user_id, permission_id, effect, granted_by, expires_at FROM user_permissions`+where+`
		ORDER BY tenant_id, user_id, id`, func(r *sql.Rows) error {
		var g anonUserPermission
		if err := r.Scan(&g.tenantID, &g.userID, &g.permissionID, &g.effect, &g.grantedBy, &g.expiresAt); err != nil {
			return err
		}
		src.userPerms = append(src.userPerms, g)
		return nil
	}, args...)
}

// readAnonSubjects reads every live subject and opens all its values with the source vault.
func readAnonSubjects(ctx context.Context, tx *Tx, src *anonSource) error {
	open := privacy.NewSubjects(tx.db.vault)
	for _, t := range src.tenants {
		var fields []string
		for _, f := range src.schemas[t.id] {
			fields = append(fields, f.Name)
		}
		for cursor := ""; ; {
			page, err := tx.Subjects(t.id).List(ctx, cursor, MaxPageSize)
			if err != nil {
				return err
			}
			for _, s := range page {
				rec, err := tx.Subjects(t.id).Get(ctx, s.ID)
				if errors.Is(err, ErrSubjectErased) {
					continue
				}
				if err != nil {
					return err
				}
				values, err := open.Open(ctx, t.id, &rec.Stored, fields)
				if privacy.IsErased(err) {
					continue
				}
				if err != nil {
					return err
				}
				if len(values) == 0 {
					src.skippedSubjects++
					continue
				}
				src.subjects = append(src.subjects, anonSubject{tenantID: t.id, id: s.ID, createdBy: s.CreatedBy, values: values})
			}
			if len(page) < MaxPageSize {
				break
			}
			cursor = page[len(page)-1].ID
		}
	}
	return nil
}
