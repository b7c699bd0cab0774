package sqlstore

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"tutela/vault"
)

// AuditRequestDataSource is the audit events' source IP and user agent sealed under their
// tenant's (or the platform's) personal_data keyset ("sealed:v1:t:", auditseal.go). It only
// counts: the log is append-only and its leaves hash the ciphertext, so a value can never be
// re-encrypted. Its items are vault.RewrapItem.Frozen: `keys rewrap` reports those under old
// keys, and `keys retire --purpose personal_data` refuses while any remains, for destroying
// the key would leave them unreadable for ever. They leave the log only with age, through
// `tutela audit prune`. Values under a person key ("sealed:v1:u:") are not here: a person's
// data key never changes (rotating person_keys rewraps the wrapped key only), and erasure is
// what destroys it.
func AuditRequestDataSource(db *DB) vault.RewrapSource { return auditRequestDataSource{db} }

type auditRequestDataSource struct{ db *DB }

func (auditRequestDataSource) Name() string { return "audit_events" }

// Next returns the tenant-sealed values of the events after the event ID after, in ID order,
// reading up to limit events at a time until it finds some (or reaches the end).
func (s auditRequestDataSource) Next(ctx context.Context, after string, limit int) (out []vault.RewrapItem, err error) {
	for len(out) == 0 {
		n := 0
		err = s.db.View(ctx, func(tx *Tx) error {
			rows, err := tx.query(ctx, `SELECT id, tenant_id, canonical FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id, tenant string
				var canonical []byte
				if err := rows.Scan(&id, &tenant, &canonical); err != nil {
					return err
				}
				n++
				after = id
				if !strings.Contains(string(canonical), sealedAuditPrefix+"t:") {
					continue
				}
				e, err := DecodeAuditEvent(canonical)
				if err != nil {
					return err
				}
				for _, f := range []struct{ column, v string }{{"source_ip", e.SourceIP}, {"user_agent", e.UserAgent}} {
					b64, ok := strings.CutPrefix(f.v, sealedAuditPrefix+"t:")
					if !ok {
						continue
					}
					// A malformed value keeps key ID 0, which is never a primary: it counts as
					// outdated, so retiring never destroys what it might still need.
					ct, _ := base64.RawURLEncoding.DecodeString(b64)
					out = append(out, vault.RewrapItem{ID: id, TenantID: tenant, Purpose: vault.PurposePersonalData,
						AAD: vault.AAD("audit_events", f.column, id), Ciphertext: ct, Frozen: true})
				}
			}
			return rows.Err()
		})
		if err != nil || n < limit {
			return out, err
		}
	}
	return out, nil
}

// errAppendOnly refuses a rewrite of the audit log.
var errAppendOnly = errors.New("audit_events is append-only: its sealed values cannot be rewrapped; they leave with `tutela audit prune`")

func (auditRequestDataSource) Save(context.Context, []vault.RewrapItem) error { return errAppendOnly }
