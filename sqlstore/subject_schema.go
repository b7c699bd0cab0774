package sqlstore

import (
	"context"
	"encoding/json"
	"slices"

	"tutela"
	"tutela/privacy"
)

// SubjectSchema is a tenant's subject field schema (privacy.Schema) in the store.
type SubjectSchema struct {
	tx       *Tx
	tenantID string
}

// SubjectSchema returns tenantID's subject schema repository.
func (tx *Tx) SubjectSchema(tenantID string) SubjectSchema {
	return SubjectSchema{tx: tx, tenantID: tenantID}
}

// lockClause is a PostgreSQL row lock clause; SQLite serializes writers (immediate
// transactions) and has none.
func (tx *Tx) lockClause(clause string) string {
	if tx.db.dialect == Postgres {
		return " " + clause
	}
	return ""
}

// Get returns the schema, fields in name order; a tenant without one has an empty schema.
func (r SubjectSchema) Get(ctx context.Context) (privacy.Schema, error) {
	return r.get(ctx, "")
}

func (r SubjectSchema) get(ctx context.Context, lock string) (privacy.Schema, error) {
	if !tutela.ValidID(r.tenantID) {
		return privacy.Schema{}, nil
	}
	rows, err := r.tx.query(ctx, `SELECT name, type, classification, purposes, retention_days, mask, searchable
		FROM subject_fields WHERE tenant_id = $1 ORDER BY name`+r.tx.lockClause(lock), r.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := privacy.Schema{}
	for rows.Next() {
		var f privacy.Field
		var purposes string
		if err := rows.Scan(&f.Name, &f.Type, &f.Classification, &purposes, &f.RetentionDays, &f.Mask, &f.Searchable); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(purposes), &f.Purposes); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Put replaces the schema, trusting the caller with every change: for tools and tests. A
// request on someone's behalf goes through PutAuthorized.
func (r SubjectSchema) Put(ctx context.Context, schema privacy.Schema) error {
	return r.PutAuthorized(ctx, schema, func([]privacy.FieldChange) error { return nil })
}

// PutAuthorized replaces the schema once authorize has accepted the changes, computed against
// the schema as locked in this transaction (a concurrent change cannot slip between the check
// and the write). It refuses (conflict, changing nothing) to remove a field or change its type
// while subjects hold values in it (they were validated and indexed as that type), or to make
// a field holding values searchable (its values have no digests, and computing them would mean
// decrypting every subject). Making a field unsearchable deletes its digests. The audit event
// names the fields added, removed and changed, with each changed field's old and new
// classification, mask and purposes (names and levels, never values).
func (r SubjectSchema) PutAuthorized(ctx context.Context, schema privacy.Schema, authorize func([]privacy.FieldChange) error) error {
	if !tutela.ValidID(r.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err := schema.Validate(); err != nil {
		return err
	}
	// The tenant row serializes schema changes on PostgreSQL: row locks on subject_fields
	// alone would not stop a concurrent insert of the field being checked.
	if _, err := r.tx.exec(ctx, `SELECT id FROM tenants WHERE id = $1`+r.tx.lockClause("FOR NO KEY UPDATE"), r.tenantID); err != nil {
		return err
	}
	old, err := r.get(ctx, "FOR UPDATE")
	if err != nil {
		return err
	}
	changes := schema.Changes(old)
	if err := authorize(changes); err != nil {
		return err
	}
	var added, removed, changed []string
	audited := make([]any, 0, len(changes))
	for _, c := range changes {
		audited = append(audited, map[string]any{"field": c.Name, "old": auditedField(c.Old), "new": auditedField(c.New)})
		switch o, n := c.Old, c.New; {
		case n == nil:
			removed = append(removed, o.Name)
			if err := r.refuseIfHeld(ctx, o.Name, "it cannot be removed; clear the field in those subjects or erase them first"); err != nil {
				return err
			}
		case o == nil:
			added = append(added, n.Name)
		case n.Type != o.Type:
			if err := r.refuseIfHeld(ctx, o.Name, "its type cannot change from "+string(o.Type)+" to "+string(n.Type)); err != nil {
				return err
			}
			changed = append(changed, o.Name)
		case n.Searchable && !o.Searchable:
			if err := r.refuseIfHeld(ctx, o.Name, "it cannot become searchable: its stored values have no blind-index digests"); err != nil {
				return err
			}
			changed = append(changed, o.Name)
		default:
			changed = append(changed, o.Name)
		}
	}
	names := make([]string, 0, len(schema))
	for _, f := range schema {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	for _, name := range removed {
		if _, err := r.tx.exec(ctx, `DELETE FROM subject_fields WHERE tenant_id = $1 AND name = $2`, r.tenantID, name); err != nil {
			return err
		}
	}
	for _, f := range schema {
		purposes, err := json.Marshal(f.Purposes)
		if err != nil {
			return err
		}
		if _, err := r.tx.exec(ctx, `INSERT INTO subject_fields (tenant_id, name, type, classification, purposes, retention_days, mask, searchable, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
			ON CONFLICT (tenant_id, name) DO UPDATE SET type = excluded.type, classification = excluded.classification,
				purposes = excluded.purposes, retention_days = excluded.retention_days, mask = excluded.mask,
				searchable = excluded.searchable, updated_at = excluded.updated_at`,
			r.tenantID, f.Name, string(f.Type), string(f.Classification), string(purposes), f.RetentionDays, string(f.Mask),
			f.Searchable, r.tx.now); err != nil {
			return err
		}
		if !f.Searchable {
			if _, err := r.tx.exec(ctx, `DELETE FROM subject_index WHERE tenant_id = $1 AND field = $2`, r.tenantID, f.Name); err != nil {
				return err
			}
		}
	}
	return r.tx.Record(ctx, "subject_schema.update", r.tenantID, "subject_schema", r.tenantID, "", map[string]any{
		"fields": names, "added": nonNil(added), "removed": nonNil(removed), "changed": nonNil(changed), "changes": audited})
}

// auditedField is what the audit log keeps of a field definition: its classification, mask
// and purposes; nil for a field that does not exist on that side of the change.
func auditedField(f *privacy.Field) any {
	if f == nil {
		return nil
	}
	return map[string]any{"classification": string(f.Classification), "mask": string(f.Mask), "purposes": slices.Clone(f.Purposes)}
}

func (r SubjectSchema) refuseIfHeld(ctx context.Context, field, why string) error {
	var n int
	if err := r.tx.queryRow(ctx, `SELECT count(*) FROM subject_values WHERE tenant_id = $1 AND field = $2`,
		r.tenantID, field).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return tutela.Errorf(tutela.ECONFLICT, "field %s holds values in %d subject(s): %s", field, n, why)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkSealed verifies, against the schema read in this transaction, that every field of a
// sealed change still exists with the type it was validated as: the schema may have changed
// since the values were sealed.
func checkSealed(schema privacy.Schema, s *privacy.Sealed) error {
	for name, t := range s.Types {
		f, ok := schema.Field(name)
		if !ok || f.Type != t {
			return tutela.Errorf(tutela.ECONFLICT, "the subject schema changed while the change was prepared (field %s); retry", name)
		}
	}
	for name := range s.Values {
		if _, ok := s.Types[name]; !ok {
			return tutela.Errorf(tutela.EINVALID, "field %s was sealed without its type", name)
		}
	}
	for name := range s.Digests {
		if f, _ := schema.Field(name); !f.Searchable {
			return tutela.Errorf(tutela.ECONFLICT, "the subject schema changed while the change was prepared (field %s is no longer searchable); retry", name)
		}
	}
	return nil
}
