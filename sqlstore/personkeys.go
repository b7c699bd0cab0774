package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"tutela"
	"tutela/audit"
)

// Person kinds: whose key a person_keys row holds.
const (
	PersonSubject = "subject"
	PersonUser    = "user"
)

// PersonKeys is the tenant's store of wrapped person data keys (privacy.Keys makes and opens
// them). Every query carries the tenant ID.
type PersonKeys struct {
	tx       *Tx
	tenantID string
}

// PersonKeys returns tenantID's person key repository.
func (tx *Tx) PersonKeys(tenantID string) PersonKeys { return PersonKeys{tx: tx, tenantID: tenantID} }

// Create stores a new person's wrapped key. A person who already has one, or who was erased, is
// a conflict: an erased person's ID never gets a key again.
func (r PersonKeys) Create(ctx context.Context, personID, kind string, wrapped []byte) error {
	if !tutela.ValidID(personID) || !tutela.ValidID(r.tenantID) {
		return tutela.Errorf(tutela.EINVALID, "person ID is not valid")
	}
	if kind != PersonSubject && kind != PersonUser {
		return tutela.Errorf(tutela.EINVALID, "person kind must be subject or user")
	}
	var erased int
	if err := r.tx.queryRow(ctx, `SELECT count(*) FROM erasures WHERE tenant_id = $1 AND person_id = $2`,
		r.tenantID, personID).Scan(&erased); err != nil {
		return err
	}
	if erased > 0 {
		return tutela.Errorf(tutela.ECONFLICT, "this person was erased")
	}
	_, err := r.tx.exec(ctx, `INSERT INTO person_keys (tenant_id, person_id, kind, wrapped, created_at)
		VALUES ($1, $2, $3, $4, $5)`, r.tenantID, personID, kind, wrapped, r.tx.now)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return tutela.Errorf(tutela.ECONFLICT, "this person already has a key")
	}
	return err
}

// Get returns a person's wrapped key, or nil when there is none: never made, or erased
// (privacy.Keys.Open turns nil into privacy.ErrErased).
func (r PersonKeys) Get(ctx context.Context, personID string) ([]byte, error) {
	if !tutela.ValidID(personID) || !tutela.ValidID(r.tenantID) {
		return nil, nil
	}
	var w []byte
	err := r.tx.queryRow(ctx, `SELECT wrapped FROM person_keys WHERE tenant_id = $1 AND person_id = $2`,
		r.tenantID, personID).Scan(&w)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return w, err
}

// Erasure is one entry of the erasure ledger: who was erased and why, never what they held.
type Erasure struct {
	ID         string    `json:"id"`
	TenantID   string    `json:"tenant_id"`
	PersonID   string    `json:"person_id"`
	Kind       string    `json:"kind"`
	ErasedAt   time.Time `json:"erased_at"`
	ActorType  string    `json:"actor_type"`
	ActorID    string    `json:"actor_id,omitempty"`
	Trigger    string    `json:"trigger"` // "request" or "retention"
	Reason     string    `json:"reason"`
	LegalBasis string    `json:"legal_basis"`
}

// Erasure triggers.
const (
	ErasureRequest   = "request"
	ErasureRetention = "retention"
)

// personData lists every table holding a person's data outside person_keys, with the column
// naming the person. ErasePerson deletes their rows there too: the ciphertexts are unreadable
// once the key is gone, but blind-index digests would still confirm a guessed value, and
// nothing of an erased person should remain. A new table of personal data adds itself here.
var personData = []struct{ table, column string }{
	{"subject_values", "subject_id"},
	{"subject_index", "subject_id"},
	{"subject_exports", "subject_id"},
	{"token_values", "person_id"},
	// What a data-subject request's subject wrote and their access/portability package: the
	// request row and its steps stay (IDs and times: the record that the request was answered).
	{"dsr_texts", "subject_id"},
	{"dsr_packages", "subject_id"},
	// What an identity merge replaced or moved, kept for unmerging (sealed under this person's
	// key, and blind-index digests).
	{"subject_merge_saved", "person_id"},
}

// personDataFirst runs before the deletions above, with the same (tenant, person) arguments:
// rows that are not the person's but exist only for them, found through their rows.
var personDataFirst = []string{
	// A token whose value nobody else holds goes with the person: its lookup digest would
	// otherwise confirm a guessed value (tokenizing it again would find the token).
	`DELETE FROM tokens WHERE tenant_id = $1
		AND id IN (SELECT token_id FROM token_values WHERE tenant_id = $1 AND person_id = $2)
		AND NOT EXISTS (SELECT 1 FROM token_values o WHERE o.tenant_id = $1 AND o.token_id = tokens.id
			AND (o.person_id IS NULL OR o.person_id <> $2))`,
}

// maxErasureText caps an erasure's reason and legal basis (one line each).
const maxErasureText = 500

// CheckErasureText is the one rule for an erasure's reason and legal basis: both required, one
// line of valid text each, at most 500 bytes. Both stay in the ledger after the erasure, so they
// must name no one (docs/privacy.md).
func CheckErasureText(reason, legalBasis string) error {
	for _, f := range []struct{ name, v string }{{"reason", reason}, {"legal_basis", legalBasis}} {
		if strings.TrimSpace(f.v) == "" || !tutela.ValidText(f.v) || len(f.v) > maxErasureText {
			return tutela.FieldErrorf(f.name, "%s is required: one line of at most %d bytes", f.name, maxErasureText)
		}
	}
	return nil
}

// ErasePerson crypto-shreds a person: it deletes their key and every row personData lists,
// records the erasure in the append-only ledger and writes the audit event (who, why, legal
// basis; no erased content), all in this transaction. Erasing someone already erased is a
// conflict. e.TenantID, PersonID, Kind, Trigger, Reason and LegalBasis must be set; the ID,
// time and actor are filled in here.
func (tx *Tx) ErasePerson(ctx context.Context, e *Erasure) error {
	switch {
	case !tutela.ValidID(e.TenantID) || !tutela.ValidID(e.PersonID):
		return tutela.Errorf(tutela.EINVALID, "person ID is not valid")
	case e.Kind != PersonSubject && e.Kind != PersonUser:
		return tutela.Errorf(tutela.EINVALID, "person kind must be subject or user")
	case e.Trigger != ErasureRequest && e.Trigger != ErasureRetention:
		return tutela.Errorf(tutela.EINVALID, "erasure trigger must be request or retention")
	}
	if err := CheckErasureText(e.Reason, e.LegalBasis); err != nil {
		return err
	}
	ev := EventFromContext(ctx, "privacy.erase", e.TenantID, e.Kind, e.PersonID, "", map[string]any{
		"trigger": e.Trigger, "reason": e.Reason, "legal_basis": e.LegalBasis})
	e.ID, e.ErasedAt, e.ActorType, e.ActorID = tutela.NewID(), tx.now, string(ev.ActorType), ev.ActorID
	if e.ActorType == "" {
		e.ActorType = audit.ActorSystem
	}
	_, err := tx.exec(ctx, `INSERT INTO erasures (id, tenant_id, person_id, kind, erased_at, actor_type, actor_id, trigger, reason, legal_basis)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, e.ID, e.TenantID, e.PersonID, e.Kind, e.ErasedAt,
		e.ActorType, e.ActorID, e.Trigger, e.Reason, e.LegalBasis)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return tutela.Errorf(tutela.ECONFLICT, "this person was already erased")
	}
	if err != nil {
		return err
	}
	if err := tx.shred(ctx, e.TenantID, e.PersonID); err != nil {
		return err
	}
	ev.Details["erasure_id"] = e.ID
	return tx.Audit(ctx, ev)
}

// shred deletes a person's key and data rows, leaving the ledger alone: the one routine
// ErasePerson and the re-application of the ledger to a restored backup share.
func (tx *Tx) shred(ctx context.Context, tenantID, personID string) error {
	for _, q := range personDataFirst {
		if _, err := tx.exec(ctx, q, tenantID, personID); err != nil {
			return err
		}
	}
	if _, err := tx.exec(ctx, `DELETE FROM person_keys WHERE tenant_id = $1 AND person_id = $2`, tenantID, personID); err != nil {
		return err
	}
	for _, d := range personData {
		if _, err := tx.exec(ctx, `DELETE FROM `+d.table+` WHERE tenant_id = $1 AND `+d.column+` = $2`, tenantID, personID); err != nil {
			return err
		}
	}
	return nil
}

// Erasures lists the tenant's ledger, oldest first, up to limit after cursor (an erasure ID).
func (tx *Tx) Erasures(ctx context.Context, tenantID, cursor string, limit int) ([]*Erasure, error) {
	if !tutela.ValidID(tenantID) {
		return nil, nil
	}
	rows, err := tx.query(ctx, `SELECT id, tenant_id, person_id, kind, erased_at, actor_type, actor_id, trigger, reason, legal_basis
		FROM erasures WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3`, tenantID, cursorID(cursor), clampLimit(limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Erasure
	for rows.Next() {
		var e Erasure
		if err := rows.Scan(&e.ID, &e.TenantID, &e.PersonID, &e.Kind, &e.ErasedAt, &e.ActorType, &e.ActorID, &e.Trigger,
			&e.Reason, &e.LegalBasis); err != nil {
			return nil, err
		}
		e.ErasedAt = e.ErasedAt.UTC()
		out = append(out, &e)
	}
	return out, rows.Err()
}
