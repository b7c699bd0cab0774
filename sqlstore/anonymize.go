package sqlstore

import (
	"context"
	cryptorand "crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/privacy"
	"tutela/vault"
)

// An anonymized copy for staging (`tutela export --anonymize`, docs/staging.md): configuration
// copied as it is, every user and subject with synthetic values (privacy.Synthesizer) under new
// IDs, sealed under the copy's own vault, no credentials, no history.

// AnonymizeCounts is what a run copied; the audit events of both databases carry it.
type AnonymizeCounts struct {
	Tenants  int `json:"tenants"`
	Roles    int `json:"roles"`
	Users    int `json:"users"`
	Grants   int `json:"grants"`
	Subjects int `json:"subjects"`
	Values   int `json:"values"`
	// Skipped: users whose key is gone and subjects holding no value.
	Skipped int `json:"skipped"`
}

func (c AnonymizeCounts) details(runID string) map[string]any {
	return map[string]any{"run_id": runID, "tenants": c.Tenants, "roles": c.Roles, "users": c.Users, "grants": c.Grants,
		"subjects": c.Subjects, "values": c.Values, "skipped": c.Skipped}
}

// AnonymizeInto fills dst, a freshly migrated database with its own vault (SetVault), with an
// anonymized copy of db (the source, with the production vault), then records
// export.anonymize in db's audit log. dst must hold nothing yet. runID names the run in both
// audit logs and nothing else; syn makes the run's synthetic values.
//
// On error dst may hold part of the copy: the caller deletes it.
func (db *DB) AnonymizeInto(ctx context.Context, dst *DB, syn *privacy.Synthesizer, runID string) (AnonymizeCounts, error) {
	var c AnonymizeCounts
	if dst.vault == nil {
		return c, errNoVault
	}
	if used, table, err := dst.InUse(ctx); err != nil {
		return c, err
	} else if used {
		return c, fmt.Errorf("the target database is not empty (table %s holds data)", table)
	}
	// The source's time when read: a grant's remaining time is counted from it (anonExpiry).
	readAt := db.Now()
	src, err := db.readAnonSource(ctx)
	if err != nil {
		return c, fmt.Errorf("reading the source: %w", err)
	}
	if err := shuffleAnonSource(src); err != nil {
		return c, err
	}
	// Every original first, so no synthetic value of the run equals any of them.
	for _, u := range src.users {
		syn.Forbid(privacy.FieldEmail, u.email)
		syn.Forbid(privacy.FieldName, u.name)
	}
	for _, s := range src.subjects {
		for name, v := range s.values {
			f, _ := src.schemas[s.tenantID].Field(name)
			syn.Forbid(f.Type, v)
		}
	}
	if err := dst.Update(ctx, func(tx *Tx) error { return writeAnonConfig(ctx, tx, src, &c) }); err != nil {
		return c, fmt.Errorf("writing the configuration: %w", err)
	}
	// The tenants exist now: their person-key and blind-index keysets are made before the
	// write transaction, which may not create them (one SQLite writer).
	for _, t := range src.tenants {
		for _, p := range []string{vault.PurposePersonKeys, vault.PurposeBlindIndex} {
			if err := dst.createKeyset(ctx, &needKeysetError{tenantID: t.id, purpose: p}); err != nil {
				return c, err
			}
		}
	}
	sealed, err := sealAnonSubjects(ctx, dst, syn, src, &c)
	if err != nil {
		return c, err
	}
	users, err := synthUsers(syn, src)
	if err != nil {
		return c, err
	}
	c.Skipped = src.skippedUsers + src.skippedSubjects
	at, base := dst.Now(), c
	err = dst.Update(ctx, func(tx *Tx) error {
		// Counted afresh on each attempt: Update may run the function again.
		cc := base
		ids, err := writeAnonUsers(ctx, tx, src, users, &cc)
		if err != nil {
			return err
		}
		if err := writeAnonGrants(ctx, tx, src, ids, readAt, &cc); err != nil {
			return err
		}
		if err := writeAnonSubjects(ctx, tx, src, sealed, ids); err != nil {
			return err
		}
		if err := tx.ReplaceSetting(ctx, SettingEnvironment, EnvironmentStaging); err != nil {
			return err
		}
		if err := tx.ReplaceSetting(ctx, SettingAnonymizedAt, at.Format(time.RFC3339)); err != nil {
			return err
		}
		c = cc
		// The copy's audit log starts here; it names the run, not the source.
		return tx.Record(ctx, "export.anonymized", "", "export", runID, "", c.details(runID))
	})
	if err != nil {
		return c, fmt.Errorf("writing users and subjects: %w", err)
	}
	if err := db.Update(ctx, func(tx *Tx) error {
		return tx.Record(ctx, "export.anonymize", "", "export", runID, "", c.details(runID))
	}); err != nil {
		return c, fmt.Errorf("recording the export in the source's audit log: %w", err)
	}
	return c, nil
}

// writeAnonConfig copies tenants (same IDs: configuration, not people), the permission
// catalog, custom roles with their permissions and masks, subject schemas, the registers of
// purposes and minimization profiles. Their times are the export's, as every time in the copy:
// no production time survives to be matched against the production log.
func writeAnonConfig(ctx context.Context, tx *Tx, src *anonSource, c *AnonymizeCounts) error {
	for _, t := range src.tenants {
		if _, err := tx.exec(ctx, `INSERT INTO tenants (id, slug, name, data_region, status, session_idle_seconds,
			session_absolute_seconds, password_composition, mfa_required_all, require_private_key_jwt,
			service_accounts_may_take_over, created_at, mode) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			t.id, t.slug, t.name, t.region, t.status, t.idle, t.absolute, t.composition, t.mfaAll, t.privateKeyJWT,
			t.saTakeOver, tx.now, tutela.TenantSimulation); err != nil {
			return err
		}
	}
	c.Tenants = len(src.tenants)
	for _, p := range src.permissions {
		if _, err := tx.exec(ctx, `INSERT INTO permissions (id, resource_type, action, max_classification) VALUES ($1, $2, $3, $4)`,
			p.id, p.resource, p.action, p.maxClass); err != nil {
			return err
		}
	}
	for _, r := range src.roles {
		if _, err := tx.exec(ctx, `INSERT INTO roles (id, tenant_id, key, name, description, clearance, builtin, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7)`, r.id, r.tenantID, r.key, r.name, r.description, r.clearance, tx.now); err != nil {
			return err
		}
	}
	c.Roles = len(src.roles)
	for _, rp := range src.rolePerms {
		if _, err := tx.exec(ctx, `INSERT INTO role_permissions (role_id, permission_id) VALUES ($1, $2)`, rp[0], rp[1]); err != nil {
			return err
		}
	}
	for _, m := range src.masks {
		if _, err := tx.exec(ctx, `INSERT INTO field_policies (role_id, field, mask) VALUES ($1, $2, $3)`, m.roleID, m.field, m.mask); err != nil {
			return err
		}
	}
	for _, t := range src.tenants {
		for _, f := range src.schemas[t.id] {
			purposes, err := json.Marshal(f.Purposes)
			if err != nil {
				return err
			}
			if _, err := tx.exec(ctx, `INSERT INTO subject_fields (tenant_id, name, type, classification, purposes, retention_days,
				mask, searchable, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`,
				t.id, f.Name, string(f.Type), string(f.Classification), string(purposes), f.RetentionDays, string(f.Mask), f.Searchable,
				tx.now); err != nil {
				return err
			}
		}
	}
	for _, t := range src.tenants {
		// The register of purposes: without it no read in the copy could name a lawful basis.
		for _, p := range src.purposes[t.id] {
			if _, err := tx.exec(ctx, `INSERT INTO processing_purposes (tenant_id, name, description, lawful_basis, notice_id,
				notice_version, consent_min_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
				t.id, p.Name, p.Description, string(p.LawfulBasis), p.NoticeID, p.NoticeVersion, p.ConsentMinVersion, tx.now); err != nil {
				return err
			}
		}
	}
	for _, p := range src.profiles {
		// updated_by names a production user: not kept (a user ID would link back).
		if _, err := tx.exec(ctx, `INSERT INTO minimization_profiles (tenant_id, purpose, rules, updated_by, updated_at)
			VALUES ($1, $2, $3, '', $4)`, p.tenantID, p.purpose, p.rules, tx.now); err != nil {
			return err
		}
	}
	return nil
}

// synthUser is a user's synthetic e-mail and display name.
type synthUser struct{ email, name string }

func synthUsers(syn *privacy.Synthesizer, src *anonSource) ([]synthUser, error) {
	out := make([]synthUser, len(src.users))
	for i, u := range src.users {
		email, err := syn.Value(privacy.FieldEmail, u.email)
		if err != nil {
			return nil, fmt.Errorf("user e-mail: %w", err)
		}
		// A display name is optional: empty or blank says nothing and stays as it is.
		name := u.name
		if strings.TrimSpace(name) != "" {
			if name, err = syn.Value(privacy.FieldName, u.name); err != nil {
				return nil, fmt.Errorf("user display name: %w", err)
			}
		}
		out[i] = synthUser{email: email, name: name}
	}
	return out, nil
}

// sealAnonSubjects makes each subject's synthetic values and seals them under the copy's vault
// (a new ID and a new person key per subject), before the write transaction.
func sealAnonSubjects(ctx context.Context, dst *DB, syn *privacy.Synthesizer, src *anonSource, c *AnonymizeCounts) ([]*privacy.Sealed, error) {
	seal := privacy.NewSubjects(dst.vault)
	out := make([]*privacy.Sealed, len(src.subjects))
	for i, s := range src.subjects {
		schema := src.schemas[s.tenantID]
		values := make(map[string]string, len(s.values))
		for _, name := range slices.Sorted(maps.Keys(s.values)) {
			f, ok := schema.Field(name)
			if !ok {
				return nil, fmt.Errorf("a subject holds field %s, which the schema lacks", name)
			}
			v, err := syn.Value(f.Type, s.values[name])
			if err != nil {
				return nil, fmt.Errorf("subject field %s: %w", name, err)
			}
			values[name] = v
		}
		sealed, err := seal.SealNew(ctx, s.tenantID, schema, values)
		if err != nil {
			return nil, fmt.Errorf("sealing a synthetic subject: %w", err)
		}
		out[i] = sealed
		c.Values += len(values)
	}
	c.Subjects = len(out)
	return out, nil
}

// writeAnonUsers inserts the users under new IDs with their synthetic data sealed under new
// person keys, and no credentials: no password, no factors, sessions or tokens, token version
// 1, never signed in. Times are the copy's: an original creation time would match the
// production audit event naming the real user. Users come in shuffled order (shuffleAnonSource),
// so the IDs minted here rank nobody. It returns production user ID → copy user ID.
func writeAnonUsers(ctx context.Context, tx *Tx, src *anonSource, users []synthUser, c *AnonymizeCounts) (map[string]string, error) {
	ids := make(map[string]string, len(src.users))
	for i, u := range src.users {
		id := tutela.NewID()
		pk, err := tx.newUserKey(ctx, u.tenantID, id)
		if err != nil {
			return nil, err
		}
		email, err := pk.Seal(fieldUserEmail, []byte(users[i].email))
		if err != nil {
			return nil, err
		}
		name, err := pk.Seal(fieldUserName, []byte(users[i].name))
		if err != nil {
			return nil, err
		}
		digest, err := tx.emailDigest(ctx, u.tenantID, users[i].email)
		if err != nil {
			return nil, err
		}
		if _, err := tx.exec(ctx, `INSERT INTO users (id, tenant_id, email, email_norm, display_name, status, created_at, updated_at,
			email_digest, email_sealed, display_name_sealed) VALUES ($1, $2, '', $1, '', $3, $4, $4, $5, $6, $7)`,
			id, u.tenantID, u.status, tx.now, digest, email, name); err != nil {
			return nil, err
		}
		ids[u.tenantID+"/"+u.id] = id
	}
	c.Users = len(src.users)
	return ids, nil
}

// writeAnonGrants copies the users' role and permission grants to their copy IDs, user by user
// in the copy's (shuffled) user order: written in the source's order, user_roles rowids and
// user_permissions IDs would rank the grantees in production's creation order. Grant times are
// the export's and expiries coarse (anonExpiry).
func writeAnonGrants(ctx context.Context, tx *Tx, src *anonSource, ids map[string]string, readAt time.Time, c *AnonymizeCounts) error {
	rolesOf := map[string][]anonUserRole{}
	for _, g := range src.userRoles {
		rolesOf[g.tenantID+"/"+g.userID] = append(rolesOf[g.tenantID+"/"+g.userID], g)
	}
	permsOf := map[string][]anonUserPermission{}
	for _, g := range src.userPerms {
		permsOf[g.tenantID+"/"+g.userID] = append(permsOf[g.tenantID+"/"+g.userID], g)
	}
	// A grantor is kept only as the copied user they are; anyone else (a service account, a
	// user no longer there) becomes nobody.
	grantor := func(tenantID string, by sql.NullString) any {
		if id, ok := ids[tenantID+"/"+by.String]; ok && by.Valid {
			return id
		}
		return nil
	}
	for _, u := range src.users {
		key := u.tenantID + "/" + u.id
		uid := ids[key]
		for _, g := range rolesOf[key] {
			// A built-in role's grant is copied by ID (built-in roles have the same IDs
			// everywhere); a custom role's only when the role was copied. The partner role is
			// not: partners are not copied, so their users arrive as the tenant's own people
			// (partner_id empty), and the role would show them every subject at GREEN there.
			res, err := tx.exec(ctx, `INSERT INTO user_roles (tenant_id, user_id, role_id, granted_by, granted_at, expires_at)
				SELECT $1, $2, ro.id, $3, $4, $5 FROM roles ro WHERE ro.id = $6 AND (ro.tenant_id IS NULL OR ro.tenant_id = $1)
				AND ro.key <> 'partner'`,
				g.tenantID, uid, grantor(g.tenantID, g.grantedBy), tx.now, anonExpiry(g.expiresAt, readAt, tx.now), g.roleID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				c.Grants++
			}
		}
		for _, g := range permsOf[key] {
			if _, err := tx.exec(ctx, `INSERT INTO user_permissions (id, tenant_id, user_id, permission_id, effect, granted_by, granted_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, tutela.NewID(), g.tenantID, uid, g.permissionID, g.effect,
				grantor(g.tenantID, g.grantedBy), tx.now, anonExpiry(g.expiresAt, readAt, tx.now)); err != nil {
				return err
			}
			c.Grants++
		}
	}
	return nil
}

// anonExpiry is a grant's expiry in the copy: only whether it expires, and after how many whole
// days (rounded up) from the export, counted from the copy's time now. The production expiry is
// an exact time set next to the real user (and named in the grant's audit event); staging needs
// only that the grant lapses, and about when. readAt is the source's time when it was read. An
// expired grant stays expired: it lapses at now.
func anonExpiry(exp sql.NullTime, readAt, now time.Time) any {
	if !exp.Valid {
		return nil
	}
	left := exp.Time.Sub(readAt)
	if left <= 0 {
		return now
	}
	const day = 24 * time.Hour
	return now.Add((left + day - 1) / day * day)
}

// shuffleAnonSource puts users and subjects in a uniformly random order (Fisher–Yates over a
// ChaCha8 stream seeded from crypto/rand) before any copy ID is minted. They are read in ID
// order, which is creation order (UUIDv7); minted and inserted in that order, the copy's IDs
// (UUIDv7 again) and SQLite rowids would keep it, and staging user #k of a tenant would be
// production user #k, whose creation time and creator are in the production audit log.
func shuffleAnonSource(src *anonSource) error {
	var seed [32]byte
	if _, err := cryptorand.Read(seed[:]); err != nil {
		return fmt.Errorf("shuffling the copy's order: %w", err)
	}
	r := mrand.New(mrand.NewChaCha8(seed)) // #nosec G404 -- a shuffle seeded from crypto/rand (ChaCha8); it only orders rows
	clear(seed[:])
	r.Shuffle(len(src.users), func(i, j int) { src.users[i], src.users[j] = src.users[j], src.users[i] })
	r.Shuffle(len(src.subjects), func(i, j int) { src.subjects[i], src.subjects[j] = src.subjects[j], src.subjects[i] })
	return nil
}

// writeAnonSubjects stores the sealed subjects, created now by the copied creator (or nobody),
// kept for the longest retention among the fields they hold.
func writeAnonSubjects(ctx context.Context, tx *Tx, src *anonSource, sealed []*privacy.Sealed, ids map[string]string) error {
	for i, s := range src.subjects {
		schema := src.schemas[s.tenantID]
		days := 0
		for name := range s.values {
			f, _ := schema.Field(name)
			days = max(days, f.RetentionDays)
		}
		createdBy := ids[s.tenantID+"/"+s.createdBy]
		if _, err := tx.exec(ctx, `INSERT INTO subjects (id, tenant_id, created_by, created_at, updated_at, retain_until)
			VALUES ($1, $2, $3, $4, $4, $5)`, sealed[i].SubjectID, s.tenantID, createdBy, tx.now, tx.now.AddDate(0, 0, days)); err != nil {
			return err
		}
		if err := tx.PersonKeys(s.tenantID).Create(ctx, sealed[i].SubjectID, PersonSubject, sealed[i].Wrapped); err != nil {
			return err
		}
		if err := tx.Subjects(s.tenantID).insertValues(ctx, sealed[i]); err != nil {
			return err
		}
	}
	return nil
}
