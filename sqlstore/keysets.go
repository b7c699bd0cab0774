package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"tutela"
	"tutela/vault"
)

// KeysetStore keeps the vault's wrapped keysets in the keysets table. Every change records its
// audit event in its own transaction.
type KeysetStore struct{ DB *DB }

var _ vault.Store = KeysetStore{}

func nullTenant(id string) any {
	if id == "" {
		return nil
	}
	return id
}

const keysetCols = `id, tenant_id, purpose, kind, version, wrapped, kek_uri, key_info, created_at, rotated_at`

func scanKeyset(sc interface{ Scan(...any) error }) (*vault.Keyset, error) {
	var ks vault.Keyset
	var tenant sql.NullString
	var info string
	var rotated sql.NullTime
	if err := sc.Scan(&ks.ID, &tenant, &ks.Purpose, &ks.Kind, &ks.Version, &ks.Wrapped, &ks.KEKURI, &info,
		&ks.CreatedAt, &rotated); err != nil {
		return nil, mapErr(err)
	}
	ks.TenantID = tenant.String
	ks.CreatedAt = ks.CreatedAt.UTC()
	if rotated.Valid {
		ks.RotatedAt = rotated.Time.UTC()
	}
	if err := json.Unmarshal([]byte(info), &ks.Keys); err != nil {
		return nil, fmt.Errorf("keyset %s: key_info: %w", ks.ID, err)
	}
	return &ks, nil
}

// GetKeyset returns the (tenantID, purpose) keyset; tenantID "" is the platform.
func (s KeysetStore) GetKeyset(ctx context.Context, tenantID, purpose string) (ks *vault.Keyset, err error) {
	err = s.DB.viewKeys(ctx, func(tx *Tx) error {
		ks, err = tx.Keyset(ctx, tenantID, purpose)
		return err
	})
	return ks, err
}

// Keyset reads one keyset in tx.
func (tx *Tx) Keyset(ctx context.Context, tenantID, purpose string) (*vault.Keyset, error) {
	q := `SELECT ` + keysetCols + ` FROM keysets WHERE tenant_id = $1 AND purpose = $2`
	args := []any{tenantID, purpose}
	if tenantID == "" {
		q, args = `SELECT `+keysetCols+` FROM keysets WHERE tenant_id IS NULL AND purpose = $1`, []any{purpose}
	}
	return scanKeyset(tx.queryRow(ctx, q, args...))
}

// ListKeysets lists every keyset, platform first, then by tenant and purpose.
func (s KeysetStore) ListKeysets(ctx context.Context) (out []vault.Keyset, err error) {
	err = s.DB.viewKeys(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, `SELECT `+keysetCols+` FROM keysets
			ORDER BY COALESCE(tenant_id`+tx.textCast()+`, ''), purpose`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			ks, err := scanKeyset(rows)
			if err != nil {
				return err
			}
			out = append(out, *ks)
		}
		return rows.Err()
	})
	return out, err
}

func (tx *Tx) textCast() string {
	if tx.db.dialect == Postgres {
		return "::text"
	}
	return ""
}

func keyInfoJSON(keys []vault.KeyInfo) (string, error) {
	if keys == nil {
		keys = []vault.KeyInfo{}
	}
	b, err := json.Marshal(keys)
	return string(b), err
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func (s KeysetStore) record(ctx context.Context, tx *Tx, ks *vault.Keyset, ev vault.Event) error {
	d := map[string]any{}
	for k, v := range ev.Details {
		d[k] = v
	}
	d["version"] = ks.Version
	// Without the request's IP and user agent (the request's api.request event, linked by the
	// request ID, has them): sealing them here could need the very keyset being created.
	e := EventFromContext(ctx, ev.Action, ks.TenantID, "keyset", ks.ID, "", d)
	e.SourceIP, e.UserAgent = "", ""
	return tx.Audit(ctx, e)
}

// CreateKeyset inserts a new keyset; a second one for the same (tenant, purpose) is a conflict.
func (s KeysetStore) CreateKeyset(ctx context.Context, ks *vault.Keyset, ev vault.Event) error {
	info, err := keyInfoJSON(ks.Keys)
	if err != nil {
		return err
	}
	create := func(tx *Tx) error {
		now := tx.Now()
		if ks.CreatedAt.IsZero() {
			ks.CreatedAt = now
		}
		ks.CreatedAt = ks.CreatedAt.UTC().Truncate(time.Microsecond)
		if _, err := tx.exec(ctx, `INSERT INTO keysets (id, tenant_id, purpose, kind, version, wrapped, kek_uri, key_info,
			created_at, rotated_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			ks.ID, nullTenant(ks.TenantID), ks.Purpose, ks.Kind, ks.Version, ks.Wrapped, ks.KEKURI, info,
			ks.CreatedAt, nullTime(ks.RotatedAt), now); err != nil {
			return err
		}
		return s.record(ctx, tx, ks, ev)
	}
	if tx, ok := ctx.Value(inTxKey{}).(*Tx); ok {
		// Asked from inside a write transaction (people.go): a keyset of a tenant this very
		// transaction created is made in it (should it roll back, the tenant ID is never used
		// again, so the vault's cached copy is harmless); any other is made outside, after it.
		if !tx.newTenants[ks.TenantID] {
			return &needKeysetError{tenantID: ks.TenantID, purpose: ks.Purpose}
		}
		return create(tx)
	}
	return s.DB.Update(ctx, create)
}

// UpdateKeyset replaces a keyset if nobody changed it since prevVersion (else ECONFLICT).
func (s KeysetStore) UpdateKeyset(ctx context.Context, ks *vault.Keyset, prevVersion int64, ev vault.Event) error {
	info, err := keyInfoJSON(ks.Keys)
	if err != nil {
		return err
	}
	return s.DB.Update(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE keysets SET version = $1, wrapped = $2, kek_uri = $3, key_info = $4,
			rotated_at = $5, updated_at = $6 WHERE id = $7 AND version = $8`,
			ks.Version, ks.Wrapped, ks.KEKURI, info, nullTime(ks.RotatedAt), tx.Now(), ks.ID, prevVersion)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return tutela.Errorf(tutela.ECONFLICT, "keyset changed concurrently; retry")
		}
		return s.record(ctx, tx, ks, ev)
	})
}

// DeleteKeyset removes the keyset row, and with it the only copy of its keys in the database.
func (s KeysetStore) DeleteKeyset(ctx context.Context, tenantID, purpose string, ev vault.Event) error {
	return s.DB.Update(ctx, func(tx *Tx) error {
		ks, err := tx.Keyset(ctx, tenantID, purpose)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `DELETE FROM keysets WHERE id = $1`, ks.ID); err != nil {
			return err
		}
		return s.record(ctx, tx, ks, ev)
	})
}

// SigningKeysSource lets `tutela keys rewrap` re-encrypt the sealed access-token signing keys
// (platform keyset "signing_keys"; aad as identity/token seals them). Rewrap also moves keys
// sealed by the interim LocalSealer into the vault.
func SigningKeysSource(db *DB) SealedColumn {
	return SealedColumn{DB: db, Table: "signing_keys", Column: "sealed_private", Purpose: vault.PurposeSigningKeys,
		Extra: "alg", Item: func(id, _, alg string) (string, []byte) {
			return "", []byte("signing_key:" + id + ":" + alg)
		}}
}

// SealedColumn is a vault.RewrapSource over one column of vault ciphertexts: rows are read in id
// order and each batch is written back in one transaction, with one audit event, by a
// compare-and-swap on the old ciphertext. Table, Column, Extra and Where are fixed by the code
// that declares the source, never taken from input.
type SealedColumn struct {
	DB      *DB
	Table   string // also the source's Name
	Column  string // the ciphertext column (NULL rows are skipped)
	Purpose string // the keyset purpose the column is sealed under
	Where   string // optional extra condition, e.g. "type = 'totp'"
	// TenantCol and Extra name up to two more columns passed to Item as strings ("" when unset).
	TenantCol, Extra string
	// Item gives a row's keyset tenant and associated data from its id, tenant and extra column.
	Item func(id, tenant, extra string) (keysetTenant string, aad []byte)
	// IDCol is the row's unique key column (default "id"); Label the source's name when one
	// table has several sealed columns (default Table).
	IDCol, Label string
}

var _ vault.RewrapSource = SealedColumn{}

func (s SealedColumn) Name() string {
	if s.Label != "" {
		return s.Label
	}
	return s.Table
}

func (s SealedColumn) idCol() string {
	if s.IDCol != "" {
		return s.IDCol
	}
	return "id"
}

func (s SealedColumn) col(name string) string {
	if name == "" {
		return "''"
	}
	return "CAST(" + name + " AS TEXT)"
}

// Next returns rows with id > after in id order.
func (s SealedColumn) Next(ctx context.Context, after string, limit int) (out []vault.RewrapItem, err error) {
	q := `SELECT CAST(` + s.idCol() + ` AS TEXT), ` + s.col(s.TenantCol) + `, ` + s.col(s.Extra) + `, ` + s.Column +
		` FROM ` + s.Table + ` WHERE ` + s.Column + ` IS NOT NULL`
	if s.Where != "" {
		q += ` AND (` + s.Where + `)`
	}
	args := []any{limit}
	if after != "" {
		q += ` AND ` + s.idCol() + ` > $2`
		args = append(args, after)
	}
	q += ` ORDER BY ` + s.idCol() + ` LIMIT $1`
	err = s.DB.View(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, tenant, extra string
			var ct []byte
			if err := rows.Scan(&id, &tenant, &extra, &ct); err != nil {
				return err
			}
			kt, aad := s.Item(id, tenant, extra)
			out = append(out, vault.RewrapItem{ID: id, TenantID: kt, Purpose: s.Purpose, AAD: aad, Ciphertext: ct})
		}
		return rows.Err()
	})
	return out, err
}

// Save writes a batch of re-encrypted values in one transaction with one audit event; a row whose
// ciphertext changed (or that was deleted) since it was read is left alone.
func (s SealedColumn) Save(ctx context.Context, items []vault.RewrapItem) error {
	return s.DB.Update(ctx, func(tx *Tx) error {
		ids := make([]string, 0, len(items))
		for _, it := range items {
			res, err := tx.exec(ctx, `UPDATE `+s.Table+` SET `+s.Column+` = $1 WHERE `+s.idCol()+` = $2 AND `+s.Column+` = $3`,
				it.Ciphertext, it.ID, it.Old)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 {
				ids = append(ids, it.ID)
			}
		}
		return tx.Record(ctx, "key.rewrap", "", "table", s.Name(), "", map[string]any{"rows": len(ids), "ids": ids})
	})
}
