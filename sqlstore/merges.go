package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/privacy"
)

// Identity merges (issue 18, master person index): two subjects of a tenant found to be the same
// person become one. The survivor takes, field by field, the value chosen from either; the
// merged subject's consent state, objections, restrictions, tokens and files follow the
// survivor; the merged subject stays as a row marked merged_into the survivor, which every read,
// list, search, consent and data-subject request treats as not found. Its values stay in place
// under its own key, and what the merge replaced or moved is kept (subject_merge_saved, sealed
// under the key of the person it belongs to), so that unmerging within the window restores the
// state before the merge exactly: values, digests, consents, tokens, files and both rows.
//
// Values, token values and file keys move by re-sealing (privacy.Rekey: each is bound to its
// person, so a ciphertext cannot simply change hands); consent records cannot move (the history
// is append-only) and stay under the merged subject's ID, read as part of the survivor's
// history. Erasing the survivor erases the subjects merged into it (Subjects.Erase).

// Merge statuses.
const (
	MergeStatusMerged   = "merged"
	MergeStatusUnmerged = "unmerged"
)

// Sides of a merge choice: whose value of a field the survivor keeps.
const (
	MergeKeepSurvivor = "survivor"
	MergeKeepMerged   = "merged"
)

// MaxMergeJustification bounds a merge's or unmerge's justification, in characters.
const MaxMergeJustification = 1000

// SubjectMerge is one identity merge.
type SubjectMerge struct {
	ID            string            `json:"id"`
	TenantID      string            `json:"tenant_id"`
	SurvivorID    string            `json:"survivor_id"`
	MergedID      string            `json:"merged_id"`
	Status        string            `json:"status"`
	Choices       map[string]string `json:"choices"`
	Justification string            `json:"justification"`
	ApprovalID    string            `json:"approval_id,omitempty"`
	MergedBy      string            `json:"merged_by,omitempty"`
	MergedAt      time.Time         `json:"merged_at"`
	// UnmergeUntil ends the window in which the merge can be undone.
	UnmergeUntil         time.Time  `json:"unmerge_until"`
	UnmergedBy           string     `json:"unmerged_by,omitempty"`
	UnmergedAt           *time.Time `json:"unmerged_at,omitempty"`
	UnmergeJustification string     `json:"unmerge_justification,omitempty"`
}

// MergeRequest is a merge to execute.
type MergeRequest struct {
	SurvivorID string
	MergedID   string
	// Choices says, for each field, whose value the survivor keeps: MergeKeepSurvivor or
	// MergeKeepMerged. Every field where the two differ must be chosen.
	Choices       map[string]string
	Justification string
	ApprovalID    string
	// Window is how long the merge can be undone (config privacy.unmerge_window).
	Window time.Duration
}

// MergeCounts is what a subject holds besides its values, as a merge preview shows it.
type MergeCounts struct {
	Consents int `json:"consents"` // consent records (the history)
	Tokens   int `json:"tokens"`   // token values held
	Files    int `json:"files"`
}

// MergePreview is what merging two subjects would meet: per schema field whether their values
// differ (a field one holds and the other not differs), and what each holds.
type MergePreview struct {
	Differs  map[string]bool
	Survivor MergeCounts
	Merged   MergeCounts
}

// SubjectMerges is a tenant's identity merges. Every query carries the tenant ID.
type SubjectMerges struct {
	tx       *Tx
	tenantID string
}

// SubjectMerges returns tenantID's merge repository.
func (tx *Tx) SubjectMerges(tenantID string) SubjectMerges {
	return SubjectMerges{tx: tx, tenantID: tenantID}
}

var errMergeNotFound = tutela.Errorf(tutela.ENOTFOUND, "merge not found")

// CheckMergeJustification is the one rule for a merge's and an unmerge's justification:
// required, valid text, at most MaxMergeJustification bytes.
func CheckMergeJustification(s string) error {
	if !tutela.ValidJustification(s, MaxMergeJustification) {
		return tutela.FieldErrorf("justification", "justification is required: text of at most %d characters", MaxMergeJustification)
	}
	return nil
}

// pair locks and checks the two subjects of a merge: both live in this tenant (missing or
// erased: not found), neither merged already (a conflict naming the survivor), the merged one
// neither a survivor of other merges nor held nor with an open erasure request.
func (m SubjectMerges) pair(ctx context.Context, survivorID, mergedID, lock string) (*Subject, *Subject, error) {
	if !tutela.ValidID(survivorID) || !tutela.ValidID(mergedID) || !tutela.ValidID(m.tenantID) {
		return nil, nil, errSubjectNotFound
	}
	if survivorID == mergedID {
		return nil, nil, tutela.FieldErrorf("merged_id", "a subject cannot be merged into itself")
	}
	subs := m.tx.Subjects(m.tenantID)
	// Lock in ID order: two merges of the same pair, either way round, cannot deadlock.
	got := map[string]*Subject{}
	for _, id := range slices.Sorted(slices.Values([]string{survivorID, mergedID})) {
		s, err := subs.anySubject(ctx, id, lock)
		if err != nil {
			return nil, nil, err
		}
		if s.MergedInto != "" {
			return nil, nil, tutela.Errorf(tutela.ECONFLICT, "subject %s was already merged into %s", id, s.MergedInto)
		}
		got[id] = s
	}
	var n int
	if err := m.tx.queryRow(ctx, `SELECT count(*) FROM subjects WHERE tenant_id = $1 AND merged_into = $2`,
		m.tenantID, mergedID).Scan(&n); err != nil {
		return nil, nil, err
	}
	if n > 0 {
		return nil, nil, tutela.Errorf(tutela.ECONFLICT, "subject %s is the survivor of %d other merges: merge into it instead", mergedID, n)
	}
	holds, err := subs.holds(ctx, mergedID, true)
	if err != nil {
		return nil, nil, err
	}
	if len(holds) > 0 {
		return nil, nil, tutela.Errorf(tutela.ECONFLICT, "subject %s is under a legal hold (%s): release it, or keep it as the survivor", mergedID, holds[0].Reason)
	}
	var dsrID string
	err = m.tx.queryRow(ctx, `SELECT id FROM dsr_requests WHERE tenant_id = $1 AND subject_id IN ($2, $3) AND kind = 'erasure'
		AND status NOT IN ('completed', 'rejected') ORDER BY id LIMIT 1`, m.tenantID, survivorID, mergedID).Scan(&dsrID)
	if err == nil {
		return nil, nil, tutela.Errorf(tutela.ECONFLICT, "an erasure request (%s) is open for one of these subjects: finish or reject it first", dsrID)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, nil, err
	}
	return got[survivorID], got[mergedID], nil
}

// differences compares every schema field of the two subjects by plaintext, without returning
// any: true where they differ.
func (m SubjectMerges) differences(ctx context.Context, schema privacy.Schema, sv, mv map[string][]byte, spk, mpk *privacy.PersonKey) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range schema {
		a, aok := sv[f.Name]
		b, bok := mv[f.Name]
		switch {
		case !aok && !bok:
			out[f.Name] = false
		case aok != bok:
			out[f.Name] = true
		default:
			same, err := privacy.EqualSealed(spk, mpk, f.Name, a, b)
			if err != nil {
				return nil, err
			}
			out[f.Name] = !same
		}
	}
	return out, nil
}

func (m SubjectMerges) values(ctx context.Context, subjectID string) (map[string][]byte, map[string]time.Time, error) {
	rows, err := m.tx.query(ctx, `SELECT field, ciphertext, updated_at FROM subject_values WHERE tenant_id = $1 AND subject_id = $2`,
		m.tenantID, subjectID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	cts, times := map[string][]byte{}, map[string]time.Time{}
	for rows.Next() {
		var f string
		var ct []byte
		var at time.Time
		if err := rows.Scan(&f, &ct, &at); err != nil {
			return nil, nil, err
		}
		cts[f], times[f] = ct, at
	}
	return cts, times, rows.Err()
}

func (m SubjectMerges) keys(ctx context.Context, survivorID, mergedID string) (*privacy.PersonKey, *privacy.PersonKey, error) {
	spk, err := m.tx.userKey(ctx, m.tenantID, survivorID)
	if err != nil {
		return nil, nil, err
	}
	mpk, err := m.tx.userKey(ctx, m.tenantID, mergedID)
	return spk, mpk, err
}

func (m SubjectMerges) counts(ctx context.Context, subjectID string) (MergeCounts, error) {
	var c MergeCounts
	err := m.tx.queryRow(ctx, `SELECT
		(SELECT count(*) FROM consent_records WHERE tenant_id = $1 AND subject_id = $2),
		(SELECT count(*) FROM token_values WHERE tenant_id = $1 AND person_id = $2),
		(SELECT count(*) FROM files WHERE tenant_id = $1 AND subject_id = $2)`, m.tenantID, subjectID).
		Scan(&c.Consents, &c.Tokens, &c.Files)
	return c, err
}

// Preview reports what merging mergedID into survivorID would meet, refusing what Merge would
// refuse about the pair. It changes nothing and writes no audit event: the caller records the
// read with what it showed.
func (m SubjectMerges) Preview(ctx context.Context, survivorID, mergedID string) (*MergePreview, error) {
	if _, _, err := m.pair(ctx, survivorID, mergedID, ""); err != nil {
		return nil, err
	}
	schema, err := m.tx.SubjectSchema(m.tenantID).Get(ctx)
	if err != nil {
		return nil, err
	}
	sv, _, err := m.values(ctx, survivorID)
	if err != nil {
		return nil, err
	}
	mv, _, err := m.values(ctx, mergedID)
	if err != nil {
		return nil, err
	}
	spk, mpk, err := m.keys(ctx, survivorID, mergedID)
	if err != nil {
		return nil, err
	}
	p := &MergePreview{}
	if p.Differs, err = m.differences(ctx, schema, sv, mv, spk, mpk); err != nil {
		return nil, err
	}
	if p.Survivor, err = m.counts(ctx, survivorID); err != nil {
		return nil, err
	}
	if p.Merged, err = m.counts(ctx, mergedID); err != nil {
		return nil, err
	}
	return p, nil
}

// Saved rows, as subject_merge_saved holds them (JSON).
type (
	savedField struct {
		Field string `json:"field"`
	}
	savedValue struct {
		Field      string    `json:"field"`
		Ciphertext []byte    `json:"ciphertext"`
		UpdatedAt  time.Time `json:"updated_at"`
	}
	savedIndex struct {
		Field  string `json:"field"`
		KeyID  int64  `json:"key_id"`
		Digest []byte `json:"digest"`
	}
	savedConsentState struct {
		SubjectID     string    `json:"subject_id"`
		Purpose       string    `json:"purpose"`
		Action        string    `json:"action"`
		NoticeVersion int       `json:"notice_version"`
		RecordID      string    `json:"record_id"`
		UpdatedAt     time.Time `json:"updated_at"`
	}
	savedObjection struct {
		SubjectID string    `json:"subject_id"`
		Purpose   string    `json:"purpose"`
		Reference string    `json:"reference"`
		ActorType string    `json:"actor_type"`
		ActorID   string    `json:"actor_id"`
		CreatedAt time.Time `json:"created_at"`
	}
	savedRestriction struct {
		SubjectID string    `json:"subject_id"`
		Reference string    `json:"reference"`
		ActorType string    `json:"actor_type"`
		ActorID   string    `json:"actor_id"`
		CreatedAt time.Time `json:"created_at"`
	}
	savedToken struct {
		TokenID    string    `json:"token_id"`
		Ciphertext []byte    `json:"ciphertext"`
		CreatedAt  time.Time `json:"created_at"`
	}
	savedFile struct {
		ID         string    `json:"id"`
		WrappedDEK []byte    `json:"wrapped_dek"`
		NameSealed []byte    `json:"name_sealed"`
		UpdatedAt  time.Time `json:"updated_at"`
	}
)

// Kinds of saved rows.
const (
	savedKindField       = "field" // a field the merge changed in the survivor
	savedKindValue       = "value" // the survivor's value it replaced
	savedKindIndex       = "index" // the survivor's digest it replaced
	savedKindConsent     = "consent_state"
	savedKindObjection   = "objection"
	savedKindRestriction = "restriction"
	savedKindToken       = "token"       // the merged subject's token value, as it was
	savedKindTokenAdded  = "token_added" // a token value the survivor received
	savedKindFile        = "file"        // the merged subject's file, as it was
)

type saver struct {
	m       SubjectMerges
	mergeID string
	seq     map[string]int
}

func (s *saver) save(ctx context.Context, personID, kind string, row any) error {
	b, err := json.Marshal(row)
	if err != nil {
		return err
	}
	s.seq[kind]++
	_, err = s.m.tx.exec(ctx, `INSERT INTO subject_merge_saved (tenant_id, merge_id, person_id, kind, seq, data)
		VALUES ($1, $2, $3, $4, $5, $6)`, s.m.tenantID, s.mergeID, personID, kind, s.seq[kind], string(b))
	return err
}

// load reads the saved rows of kind, in the order they were saved, into a new T each.
func load[T any](ctx context.Context, m SubjectMerges, mergeID, kind string) ([]T, error) {
	rows, err := m.tx.query(ctx, `SELECT data FROM subject_merge_saved WHERE tenant_id = $1 AND merge_id = $2 AND kind = $3 ORDER BY seq`,
		m.tenantID, mergeID, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// mergePlan is a merge checked and ready to apply.
type mergePlan struct {
	surv, merged *Subject
	schema       privacy.Schema
	sv, mv       map[string][]byte
	svAt         map[string]time.Time
	spk, mpk     *privacy.PersonKey
	take         []string // fields the survivor takes from the merged subject
}

// Check refuses a merge that Merge would refuse, changing nothing: the approval gate asks it
// before a request is made, so nobody approves a merge that cannot run.
func (m SubjectMerges) Check(ctx context.Context, q MergeRequest) error {
	_, err := m.plan(ctx, q)
	return err
}

func (m SubjectMerges) plan(ctx context.Context, q MergeRequest) (*mergePlan, error) {
	if err := CheckMergeJustification(q.Justification); err != nil {
		return nil, err
	}
	if q.Window <= 0 {
		return nil, tutela.Errorf(tutela.EINVALID, "the unmerge window must be positive")
	}
	for _, f := range slices.Sorted(maps.Keys(q.Choices)) {
		if c := q.Choices[f]; c != MergeKeepSurvivor && c != MergeKeepMerged {
			return nil, tutela.FieldErrorf("choices", "the choice for %s must be survivor or merged", f)
		}
	}
	pl := &mergePlan{}
	var err error
	if pl.surv, pl.merged, err = m.pair(ctx, q.SurvivorID, q.MergedID, "FOR UPDATE"); err != nil {
		return nil, err
	}
	if pl.schema, err = m.tx.SubjectSchema(m.tenantID).get(ctx, "FOR SHARE"); err != nil {
		return nil, err
	}
	for _, f := range slices.Sorted(maps.Keys(q.Choices)) {
		if _, ok := pl.schema.Field(f); !ok {
			return nil, tutela.FieldErrorf("choices", "%s is not a field of this tenant's subject schema", f)
		}
	}
	if pl.sv, pl.svAt, err = m.values(ctx, pl.surv.ID); err != nil {
		return nil, err
	}
	if pl.mv, _, err = m.values(ctx, pl.merged.ID); err != nil {
		return nil, err
	}
	if pl.spk, pl.mpk, err = m.keys(ctx, pl.surv.ID, pl.merged.ID); err != nil {
		return nil, err
	}
	differs, err := m.differences(ctx, pl.schema, pl.sv, pl.mv, pl.spk, pl.mpk)
	if err != nil {
		return nil, err
	}
	for _, f := range pl.schema {
		if !differs[f.Name] {
			continue
		}
		switch q.Choices[f.Name] {
		case "":
			return nil, tutela.FieldErrorf("choices", "the subjects differ in %s: choose survivor or merged for it", f.Name)
		case MergeKeepMerged:
			pl.take = append(pl.take, f.Name)
		}
	}
	return pl, nil
}

// Merge merges q.MergedID into q.SurvivorID (see the package comment above): the pair is
// checked as Preview does, every field where they differ must be chosen (a missing choice is an
// invalid-input error naming the field), and everything happens in this transaction with its
// audit event subject.merged (justification, approval, fields taken from the merged subject and
// what moved).
func (m SubjectMerges) Merge(ctx context.Context, q MergeRequest) (*SubjectMerge, error) {
	pl, err := m.plan(ctx, q)
	if err != nil {
		return nil, err
	}
	surv, merged, schema, sv, svAt, mv, spk, mpk, take := pl.surv, pl.merged, pl.schema, pl.sv, pl.svAt, pl.mv, pl.spk, pl.mpk, pl.take
	ev := EventFromContext(ctx, "subject.merged", m.tenantID, "subject", surv.ID, "", nil)
	now := m.tx.now
	out := &SubjectMerge{ID: tutela.NewID(), TenantID: m.tenantID, SurvivorID: surv.ID, MergedID: merged.ID,
		Status: MergeStatusMerged, Choices: q.Choices, Justification: strings.TrimSpace(q.Justification), ApprovalID: q.ApprovalID,
		MergedBy: ev.ActorID, MergedAt: now, UnmergeUntil: now.Add(q.Window)}
	if out.Choices == nil {
		out.Choices = map[string]string{}
	}
	choices, err := json.Marshal(out.Choices)
	if err != nil {
		return nil, err
	}
	if _, err := m.tx.exec(ctx, `INSERT INTO subject_merges (id, tenant_id, survivor_id, merged_id, status, choices, justification,
		approval_id, merged_by, merged_at, unmerge_until, survivor_updated_at, survivor_retain_until, merged_updated_at,
		merged_retain_until, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '')`,
		out.ID, m.tenantID, surv.ID, merged.ID, out.Status, string(choices), out.Justification, out.ApprovalID, out.MergedBy, now,
		out.UnmergeUntil, surv.UpdatedAt, optTimeArg(surv.RetainUntil), merged.UpdatedAt, optTimeArg(merged.RetainUntil)); err != nil {
		return nil, err
	}
	sv2 := &saver{m: m, mergeID: out.ID, seq: map[string]int{}}
	if err := m.saveBefore(ctx, sv2, surv.ID, merged.ID, take, sv, svAt); err != nil {
		return nil, err
	}
	// The survivor's values: each field taken is re-sealed under its key, with the merged
	// subject's digests (a digest binds the field and value, not the person); a field taken
	// empty is cleared.
	sealed := &privacy.Sealed{SubjectID: surv.ID, Values: map[string][]byte{}, Types: map[string]privacy.FieldType{}}
	for _, f := range take {
		fd, _ := schema.Field(f)
		sealed.Types[f] = fd.Type
		ct, ok := mv[f]
		if !ok {
			sealed.Clear = append(sealed.Clear, f)
			continue
		}
		if sealed.Values[f], err = privacy.Rekey(mpk, spk, f, ct); err != nil {
			return nil, err
		}
	}
	if err := m.tx.Subjects(m.tenantID).write(ctx, sealed); err != nil {
		return nil, err
	}
	for _, f := range take {
		if _, err := m.tx.exec(ctx, `INSERT INTO subject_index (tenant_id, field, key_id, digest, subject_id)
			SELECT tenant_id, field, key_id, digest, $3 FROM subject_index WHERE tenant_id = $1 AND subject_id = $2 AND field = $4`,
			m.tenantID, merged.ID, surv.ID, f); err != nil {
			return nil, err
		}
	}
	moved, err := m.moveHoldings(ctx, sv2, surv.ID, merged.ID, spk, mpk)
	if err != nil {
		return nil, err
	}
	// The merged subject: marked, out of the retention schedule (the survivor's governs, and
	// erasing the survivor erases it).
	if _, err := m.tx.exec(ctx, `UPDATE subjects SET merged_into = $1, merged_at = $2, updated_at = $2, retain_until = NULL
		WHERE tenant_id = $3 AND id = $4`, surv.ID, now, m.tenantID, merged.ID); err != nil {
		return nil, err
	}
	fp, err := m.fingerprint(ctx, surv.ID)
	if err != nil {
		return nil, err
	}
	if _, err := m.tx.exec(ctx, `UPDATE subject_merges SET fingerprint = $1 WHERE tenant_id = $2 AND id = $3`,
		fp, m.tenantID, out.ID); err != nil {
		return nil, err
	}
	ev.Details = map[string]any{"merge_id": out.ID, "survivor_id": surv.ID, "merged_id": merged.ID,
		"justification": out.Justification, "approval_id": out.ApprovalID, "fields_from_merged": nonNil(take),
		"unmerge_until": out.UnmergeUntil.Format(time.RFC3339Nano), "moved": moved}
	if err := m.tx.Audit(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// saveBefore keeps what the merge is about to replace or move.
func (m SubjectMerges) saveBefore(ctx context.Context, s *saver, survivorID, mergedID string, take []string, sv map[string][]byte, svAt map[string]time.Time) error {
	for _, f := range take {
		if err := s.save(ctx, survivorID, savedKindField, savedField{Field: f}); err != nil {
			return err
		}
		if ct, ok := sv[f]; ok {
			if err := s.save(ctx, survivorID, savedKindValue, savedValue{Field: f, Ciphertext: ct, UpdatedAt: svAt[f]}); err != nil {
				return err
			}
		}
		idx, err := queryAll(ctx, m.tx, func(sc interface{ Scan(...any) error }) (savedIndex, error) {
			var x savedIndex
			return x, sc.Scan(&x.Field, &x.KeyID, &x.Digest)
		}, `SELECT field, key_id, digest FROM subject_index WHERE tenant_id = $1 AND subject_id = $2 AND field = $3 ORDER BY key_id, digest`,
			m.tenantID, survivorID, f)
		if err != nil {
			return err
		}
		for _, x := range idx {
			if err := s.save(ctx, survivorID, savedKindIndex, x); err != nil {
				return err
			}
		}
	}
	for _, id := range []string{survivorID, mergedID} {
		cs, err := queryAll(ctx, m.tx, func(sc interface{ Scan(...any) error }) (savedConsentState, error) {
			var x savedConsentState
			return x, sc.Scan(&x.SubjectID, &x.Purpose, &x.Action, &x.NoticeVersion, &x.RecordID, &x.UpdatedAt)
		}, `SELECT subject_id, purpose, action, notice_version, record_id, updated_at FROM consent_state
			WHERE tenant_id = $1 AND subject_id = $2 ORDER BY purpose`, m.tenantID, id)
		if err != nil {
			return err
		}
		for _, x := range cs {
			if err := s.save(ctx, id, savedKindConsent, x); err != nil {
				return err
			}
		}
		obj, err := queryAll(ctx, m.tx, func(sc interface{ Scan(...any) error }) (savedObjection, error) {
			var x savedObjection
			return x, sc.Scan(&x.SubjectID, &x.Purpose, &x.Reference, &x.ActorType, &x.ActorID, &x.CreatedAt)
		}, `SELECT subject_id, purpose, reference, actor_type, actor_id, created_at FROM subject_objections
			WHERE tenant_id = $1 AND subject_id = $2 ORDER BY purpose`, m.tenantID, id)
		if err != nil {
			return err
		}
		for _, x := range obj {
			if err := s.save(ctx, id, savedKindObjection, x); err != nil {
				return err
			}
		}
		res, err := queryAll(ctx, m.tx, func(sc interface{ Scan(...any) error }) (savedRestriction, error) {
			var x savedRestriction
			return x, sc.Scan(&x.SubjectID, &x.Reference, &x.ActorType, &x.ActorID, &x.CreatedAt)
		}, `SELECT subject_id, reference, actor_type, actor_id, created_at FROM subject_restrictions
			WHERE tenant_id = $1 AND subject_id = $2`, m.tenantID, id)
		if err != nil {
			return err
		}
		for _, x := range res {
			if err := s.save(ctx, id, savedKindRestriction, x); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveHoldings hands the merged subject's consent state, objections, restrictions, token values
// and files to the survivor, saving the originals; it returns how many of each moved.
func (m SubjectMerges) moveHoldings(ctx context.Context, s *saver, survivorID, mergedID string, spk, mpk *privacy.PersonKey) (map[string]any, error) {
	moved := map[string]any{}
	// Consent state: the newer entry per purpose wins, by the rule Consent.Record keeps
	// ((updated_at, record_id) only moves forward), so the survivor's state is the latest of
	// the two histories.
	res, err := m.tx.exec(ctx, `INSERT INTO consent_state (tenant_id, subject_id, purpose, action, notice_version, record_id, updated_at)
		SELECT tenant_id, $3, purpose, action, notice_version, record_id, updated_at FROM consent_state
		WHERE tenant_id = $1 AND subject_id = $2
		ON CONFLICT (tenant_id, subject_id, purpose) DO UPDATE SET
		action = excluded.action, notice_version = excluded.notice_version, record_id = excluded.record_id,
		updated_at = excluded.updated_at
		WHERE consent_state.updated_at < excluded.updated_at
		   OR (consent_state.updated_at = excluded.updated_at AND consent_state.record_id < excluded.record_id)`,
		m.tenantID, mergedID, survivorID)
	if err != nil {
		return nil, err
	}
	n, _ := res.RowsAffected()
	moved["consent_state"] = n
	// Objections and restrictions: either subject's counts for the person (fail closed: the
	// survivor keeps its own when both have one).
	for _, q := range []struct{ name, sql string }{
		{"objections", `INSERT INTO subject_objections (tenant_id, subject_id, purpose, reference, actor_type, actor_id, created_at)
			SELECT tenant_id, $3, purpose, reference, actor_type, actor_id, created_at FROM subject_objections
			WHERE tenant_id = $1 AND subject_id = $2 ON CONFLICT DO NOTHING`},
		{"restrictions", `INSERT INTO subject_restrictions (tenant_id, subject_id, reference, actor_type, actor_id, created_at)
			SELECT tenant_id, $3, reference, actor_type, actor_id, created_at FROM subject_restrictions
			WHERE tenant_id = $1 AND subject_id = $2 ON CONFLICT DO NOTHING`},
	} {
		res, err := m.tx.exec(ctx, q.sql, m.tenantID, mergedID, survivorID)
		if err != nil {
			return nil, err
		}
		n, _ := res.RowsAffected()
		moved[q.name] = n
	}
	for _, table := range []string{"consent_state", "subject_objections", "subject_restrictions"} {
		if _, err := m.tx.exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = $1 AND subject_id = $2`, m.tenantID, mergedID); err != nil {
			return nil, err
		}
	}
	// Token values: re-sealed under the survivor's key, unless the survivor already holds the
	// token (a deterministic token of the same value); the merged subject's rows are saved.
	toks, err := queryAll(ctx, m.tx, func(sc interface{ Scan(...any) error }) (savedToken, error) {
		var x savedToken
		return x, sc.Scan(&x.TokenID, &x.Ciphertext, &x.CreatedAt)
	}, `SELECT token_id, ciphertext, created_at FROM token_values WHERE tenant_id = $1 AND person_id = $2 ORDER BY token_id`,
		m.tenantID, mergedID)
	if err != nil {
		return nil, err
	}
	ntok := 0
	for _, t := range toks {
		if err := s.save(ctx, mergedID, savedKindToken, t); err != nil {
			return nil, err
		}
		ct, err := privacy.Rekey(mpk, spk, privacy.PersonValueField(t.TokenID), t.Ciphertext)
		if err != nil {
			return nil, err
		}
		res, err := m.tx.exec(ctx, `INSERT INTO token_values (tenant_id, token_id, holder, person_id, ciphertext, created_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, m.tenantID, t.TokenID, survivorID, survivorID, ct, t.CreatedAt)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if err := s.save(ctx, survivorID, savedKindTokenAdded, savedToken{TokenID: t.TokenID}); err != nil {
				return nil, err
			}
			ntok++
		}
	}
	moved["tokens"] = ntok
	if _, err := m.tx.exec(ctx, `DELETE FROM token_values WHERE tenant_id = $1 AND person_id = $2`, m.tenantID, mergedID); err != nil {
		return nil, err
	}
	// Files: their data keys and names re-sealed under the survivor's key.
	fs, err := queryAll(ctx, m.tx, func(sc interface{ Scan(...any) error }) (savedFile, error) {
		var x savedFile
		return x, sc.Scan(&x.ID, &x.WrappedDEK, &x.NameSealed, &x.UpdatedAt)
	}, `SELECT id, wrapped_dek, name_sealed, updated_at FROM files WHERE tenant_id = $1 AND subject_id = $2 ORDER BY id`+
		m.tx.lockClause("FOR UPDATE"), m.tenantID, mergedID)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if err := s.save(ctx, mergedID, savedKindFile, f); err != nil {
			return nil, err
		}
		var dek, name []byte
		if f.WrappedDEK != nil {
			if dek, err = privacy.Rekey(mpk, spk, fileDEKField(f.ID), f.WrappedDEK); err != nil {
				return nil, err
			}
		}
		if f.NameSealed != nil {
			if name, err = privacy.Rekey(mpk, spk, fileNameField(f.ID), f.NameSealed); err != nil {
				return nil, err
			}
		}
		if _, err := m.tx.exec(ctx, `UPDATE files SET subject_id = $1, wrapped_dek = $2, name_sealed = $3, updated_at = $4
			WHERE tenant_id = $5 AND id = $6`, survivorID, dek, name, m.tx.now, m.tenantID, f.ID); err != nil {
			return nil, err
		}
	}
	moved["files"] = len(fs)
	return moved, nil
}

// fingerprintParts are the parts of a subject an unmerge would overwrite, each with the query
// that reads it in a stable order ($1 tenant, $2 subject).
var fingerprintParts = []struct{ name, sql string }{
	{"values", `SELECT field, ciphertext, updated_at FROM subject_values WHERE tenant_id = $1 AND subject_id = $2 ORDER BY field`},
	{"consents", `SELECT id, 'record' FROM consent_records WHERE tenant_id = $1 AND subject_id = $2
		UNION ALL SELECT record_id, purpose || ':' || action FROM consent_state WHERE tenant_id = $1 AND subject_id = $2 ORDER BY 1, 2`},
	{"objections", `SELECT purpose, reference, created_at FROM subject_objections WHERE tenant_id = $1 AND subject_id = $2 ORDER BY purpose`},
	{"restrictions", `SELECT reference, created_at FROM subject_restrictions WHERE tenant_id = $1 AND subject_id = $2`},
	{"tokens", `SELECT token_id, ciphertext FROM token_values WHERE tenant_id = $1 AND person_id = $2 ORDER BY token_id`},
	{"files", `SELECT id, status, wrapped_dek, name_sealed FROM files WHERE tenant_id = $1 AND subject_id = $2 ORDER BY id`},
}

// fingerprint digests each part of the survivor, as JSON (part -> hex SHA-256).
func (m SubjectMerges) fingerprint(ctx context.Context, subjectID string) (string, error) {
	out := map[string]string{}
	for _, p := range fingerprintParts {
		d, err := m.tx.digestRows(ctx, p.sql, m.tenantID, subjectID)
		if err != nil {
			return "", err
		}
		out[p.name] = d
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// Unmerge undoes a merge within its window, restoring exactly the state before it: both
// subjects' values, digests and rows, which consents, objections, restrictions, token values and
// files belonged to whom. A survivor changed since the merge (values, consents, objections,
// restrictions, tokens or files) is a conflict naming the parts: restoring would silently undo
// the later change. After the window, a second time, or with the survivor erased: conflict.
// Audited subject.unmerged with the justification.
func (m SubjectMerges) Unmerge(ctx context.Context, mergeID, justification string) (*SubjectMerge, error) {
	if err := CheckMergeJustification(justification); err != nil {
		return nil, err
	}
	mg, fp, err := m.get(ctx, mergeID, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	switch {
	case mg.Status == MergeStatusUnmerged:
		return nil, tutela.Errorf(tutela.ECONFLICT, "this merge was already undone")
	case m.tx.now.After(mg.UnmergeUntil):
		return nil, tutela.Errorf(tutela.ECONFLICT, "the window to undo this merge closed at %s", mg.UnmergeUntil.Format(time.RFC3339))
	}
	subs := m.tx.Subjects(m.tenantID)
	for _, id := range slices.Sorted(slices.Values([]string{mg.SurvivorID, mg.MergedID})) {
		s, err := subs.anySubject(ctx, id, "FOR UPDATE")
		if errors.Is(err, ErrSubjectErased) {
			return nil, tutela.Errorf(tutela.ECONFLICT, "subject %s was erased: there is nothing left to unmerge", id)
		}
		if err != nil {
			return nil, err
		}
		if id == mg.MergedID && s.MergedInto != mg.SurvivorID {
			return nil, tutela.Errorf(tutela.ECONFLICT, "subject %s is no longer merged into %s", id, mg.SurvivorID)
		}
		if id == mg.SurvivorID && s.MergedInto != "" {
			return nil, tutela.Errorf(tutela.ECONFLICT, "the survivor %s was itself merged into %s since: unmerge that first", id, s.MergedInto)
		}
	}
	now, err := m.fingerprint(ctx, mg.SurvivorID)
	if err != nil {
		return nil, err
	}
	if changed := fingerprintDiff(fp, now); len(changed) > 0 {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the survivor changed since the merge (%s): unmerging would undo those changes; revert them first",
			strings.Join(changed, ", "))
	}
	if err := m.restore(ctx, mg); err != nil {
		return nil, err
	}
	ev := EventFromContext(ctx, "subject.unmerged", m.tenantID, "subject", mg.SurvivorID, "", nil)
	mg.Status, mg.UnmergedBy, mg.UnmergeJustification = MergeStatusUnmerged, ev.ActorID, strings.TrimSpace(justification)
	at := m.tx.now
	mg.UnmergedAt = &at
	if _, err := m.tx.exec(ctx, `UPDATE subject_merges SET status = $1, unmerged_by = $2, unmerged_at = $3, unmerge_justification = $4
		WHERE tenant_id = $5 AND id = $6`, mg.Status, mg.UnmergedBy, at, mg.UnmergeJustification, m.tenantID, mg.ID); err != nil {
		return nil, err
	}
	// What was kept for unmerging is not needed any more.
	if _, err := m.tx.exec(ctx, `DELETE FROM subject_merge_saved WHERE tenant_id = $1 AND merge_id = $2`, m.tenantID, mg.ID); err != nil {
		return nil, err
	}
	ev.Details = map[string]any{"merge_id": mg.ID, "survivor_id": mg.SurvivorID, "merged_id": mg.MergedID,
		"justification": mg.UnmergeJustification}
	return mg, m.tx.Audit(ctx, ev)
}

func fingerprintDiff(was, now string) []string {
	var a, b map[string]string
	if json.Unmarshal([]byte(was), &a) != nil || json.Unmarshal([]byte(now), &b) != nil {
		return []string{"unreadable fingerprint"}
	}
	var out []string
	for _, p := range fingerprintParts {
		if a[p.name] != b[p.name] {
			out = append(out, p.name)
		}
	}
	return out
}

// restore puts back what Merge saved.
func (m SubjectMerges) restore(ctx context.Context, mg *SubjectMerge) error {
	tx, t, sid, mid := m.tx, m.tenantID, mg.SurvivorID, mg.MergedID
	fields, err := load[savedField](ctx, m, mg.ID, savedKindField)
	if err != nil {
		return err
	}
	for _, f := range fields {
		for _, table := range []string{"subject_values", "subject_index"} {
			if _, err := tx.exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = $1 AND subject_id = $2 AND field = $3`, t, sid, f.Field); err != nil {
				return err
			}
		}
	}
	vals, err := load[savedValue](ctx, m, mg.ID, savedKindValue)
	if err != nil {
		return err
	}
	for _, v := range vals {
		if _, err := tx.exec(ctx, `INSERT INTO subject_values (tenant_id, subject_id, field, ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5)`,
			t, sid, v.Field, v.Ciphertext, v.UpdatedAt); err != nil {
			return err
		}
	}
	idx, err := load[savedIndex](ctx, m, mg.ID, savedKindIndex)
	if err != nil {
		return err
	}
	for _, x := range idx {
		if _, err := tx.exec(ctx, `INSERT INTO subject_index (tenant_id, field, key_id, digest, subject_id) VALUES ($1, $2, $3, $4, $5)`,
			t, x.Field, x.KeyID, x.Digest, sid); err != nil {
			return err
		}
	}
	for _, table := range []string{"consent_state", "subject_objections", "subject_restrictions"} {
		if _, err := tx.exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = $1 AND subject_id IN ($2, $3)`, t, sid, mid); err != nil {
			return err
		}
	}
	cs, err := load[savedConsentState](ctx, m, mg.ID, savedKindConsent)
	if err != nil {
		return err
	}
	for _, x := range cs {
		if _, err := tx.exec(ctx, `INSERT INTO consent_state (tenant_id, subject_id, purpose, action, notice_version, record_id, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, t, x.SubjectID, x.Purpose, x.Action, x.NoticeVersion, x.RecordID, x.UpdatedAt); err != nil {
			return err
		}
	}
	obj, err := load[savedObjection](ctx, m, mg.ID, savedKindObjection)
	if err != nil {
		return err
	}
	for _, x := range obj {
		if _, err := tx.exec(ctx, `INSERT INTO subject_objections (tenant_id, subject_id, purpose, reference, actor_type, actor_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, t, x.SubjectID, x.Purpose, x.Reference, x.ActorType, x.ActorID, x.CreatedAt); err != nil {
			return err
		}
	}
	rs, err := load[savedRestriction](ctx, m, mg.ID, savedKindRestriction)
	if err != nil {
		return err
	}
	for _, x := range rs {
		if _, err := tx.exec(ctx, `INSERT INTO subject_restrictions (tenant_id, subject_id, reference, actor_type, actor_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, t, x.SubjectID, x.Reference, x.ActorType, x.ActorID, x.CreatedAt); err != nil {
			return err
		}
	}
	added, err := load[savedToken](ctx, m, mg.ID, savedKindTokenAdded)
	if err != nil {
		return err
	}
	for _, x := range added {
		if _, err := tx.exec(ctx, `DELETE FROM token_values WHERE tenant_id = $1 AND token_id = $2 AND holder = $3`, t, x.TokenID, sid); err != nil {
			return err
		}
	}
	toks, err := load[savedToken](ctx, m, mg.ID, savedKindToken)
	if err != nil {
		return err
	}
	for _, x := range toks {
		if _, err := tx.exec(ctx, `INSERT INTO token_values (tenant_id, token_id, holder, person_id, ciphertext, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, t, x.TokenID, mid, mid, x.Ciphertext, x.CreatedAt); err != nil {
			return err
		}
	}
	fs, err := load[savedFile](ctx, m, mg.ID, savedKindFile)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if _, err := tx.exec(ctx, `UPDATE files SET subject_id = $1, wrapped_dek = $2, name_sealed = $3, updated_at = $4
			WHERE tenant_id = $5 AND id = $6`, mid, f.WrappedDEK, f.NameSealed, f.UpdatedAt, t, f.ID); err != nil {
			return err
		}
	}
	var su, mu time.Time
	var sr, mr sql.NullTime
	if err := tx.queryRow(ctx, `SELECT survivor_updated_at, survivor_retain_until, merged_updated_at, merged_retain_until
		FROM subject_merges WHERE tenant_id = $1 AND id = $2`, t, mg.ID).Scan(&su, &sr, &mu, &mr); err != nil {
		return err
	}
	if _, err := tx.exec(ctx, `UPDATE subjects SET updated_at = $1, retain_until = $2 WHERE tenant_id = $3 AND id = $4`,
		su, optTimeArg(optTime(sr)), t, sid); err != nil {
		return err
	}
	_, err = tx.exec(ctx, `UPDATE subjects SET merged_into = NULL, merged_at = NULL, updated_at = $1, retain_until = $2
		WHERE tenant_id = $3 AND id = $4`, mu, optTimeArg(optTime(mr)), t, mid)
	return err
}

const mergeCols = `id, tenant_id, survivor_id, merged_id, status, choices, justification, approval_id, merged_by, merged_at,
	unmerge_until, unmerged_by, unmerged_at, unmerge_justification, fingerprint`

func scanMerge(sc interface{ Scan(...any) error }) (*SubjectMerge, string, error) {
	var mg SubjectMerge
	var choices, fp string
	var unmergedAt sql.NullTime
	if err := sc.Scan(&mg.ID, &mg.TenantID, &mg.SurvivorID, &mg.MergedID, &mg.Status, &choices, &mg.Justification, &mg.ApprovalID,
		&mg.MergedBy, &mg.MergedAt, &mg.UnmergeUntil, &mg.UnmergedBy, &unmergedAt, &mg.UnmergeJustification, &fp); err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal([]byte(choices), &mg.Choices); err != nil {
		return nil, "", err
	}
	mg.MergedAt, mg.UnmergeUntil, mg.UnmergedAt = mg.MergedAt.UTC(), mg.UnmergeUntil.UTC(), optTime(unmergedAt)
	return &mg, fp, nil
}

func (m SubjectMerges) get(ctx context.Context, id, lock string) (*SubjectMerge, string, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(m.tenantID) {
		return nil, "", errMergeNotFound
	}
	mg, fp, err := scanMerge(m.tx.queryRow(ctx, `SELECT `+mergeCols+` FROM subject_merges WHERE tenant_id = $1 AND id = $2`+
		m.tx.lockClause(lock), m.tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", errMergeNotFound
	}
	return mg, fp, err
}

// Get returns one merge of this tenant.
func (m SubjectMerges) Get(ctx context.Context, id string) (*SubjectMerge, error) {
	mg, _, err := m.get(ctx, id, "")
	return mg, err
}

// List returns the tenant's merges, newest first, those naming subjectID (as survivor or
// merged) when it is set, up to limit.
func (m SubjectMerges) List(ctx context.Context, subjectID string, limit int) ([]*SubjectMerge, error) {
	out := []*SubjectMerge{}
	if !tutela.ValidID(m.tenantID) {
		return out, nil
	}
	q, args := `SELECT `+mergeCols+` FROM subject_merges WHERE tenant_id = $1`, []any{m.tenantID}
	if subjectID != "" {
		if !tutela.ValidID(subjectID) {
			return nil, tutela.FieldErrorf("subject_id", "subject_id must be a UUID")
		}
		q, args = q+` AND (survivor_id = $2 OR merged_id = $2)`, append(args, subjectID)
	}
	args = append(args, clampLimit(limit))
	rows, err := m.tx.query(ctx, q+` ORDER BY id DESC LIMIT $`+fmt.Sprint(len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		mg, _, err := scanMerge(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, mg)
	}
	return out, rows.Err()
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, tx *Tx, scan func(interface{ Scan(...any) error }) (T, error), q string, args ...any) ([]T, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// digestRows is a SHA-256 of every value of every row q returns, in order: equal rows read the
// same way give equal digests (both reads go through the same driver and query).
func (tx *Tx) digestRows(ctx context.Context, q string, args ...any) (string, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		for _, v := range vals {
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Format(time.RFC3339Nano)
			}
			fmt.Fprintf(h, "%T:%d:%v;", v, len(fmt.Sprint(v)), v)
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)), rows.Err()
}
