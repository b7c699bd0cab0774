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

// Put replaces the schema. It refuses (conflict, changing nothing) to remove a field or change
// its type while subjects hold values in it (they were validated and indexed as that type), or
// to make a field holding values searchable (its values have no digests, and computing them
// would mean decrypting every subject). Making a field unsearchable deletes its digests. The
// audit event names the fields, added, removed and changed.
func (r SubjectSchema) Put(ctx context.Context, schema privacy.Schema) error {
	if !tutela.ValidID(r.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err := schema.Validate(); err != nil {
		return err
	}
	old, err := r.get(ctx, "FOR UPDATE")
	if err != nil {
		return err
	}
	var added, removed, changed []string
	for _, o := range old {
		n, ok := schema.Field(o.Name)
		switch {
		case !ok:
			removed = append(removed, o.Name)
			if err := r.refuseIfHeld(ctx, o.Name, "it cannot be removed; clear the field in those subjects or erase them first"); err != nil {
				return err
			}
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
		case !fieldEqual(n, o):
			changed = append(changed, o.Name)
		}
	}
	names := make([]string, 0, len(schema))
	for _, f := range schema {
		names = append(names, f.Name)
		if _, ok := old.Field(f.Name); !ok {
			added = append(added, f.Name)
		}
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
		"fields": names, "added": nonNil(added), "removed": nonNil(removed), "changed": nonNil(changed)})
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

func fieldEqual(a, b privacy.Field) bool {
	return a.Type == b.Type && a.Classification == b.Classification && slices.Equal(a.Purposes, b.Purposes) &&
		a.RetentionDays == b.RetentionDays && a.Mask == b.Mask && a.Searchable == b.Searchable
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
