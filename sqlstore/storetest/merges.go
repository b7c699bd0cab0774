package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/dsr"
	"tutela/files"
	"tutela/privacy"
	"tutela/sqlstore"
)

// MergeTests is the identity merge part of the suite (issue 18): a merge moves consents, tokens
// and files to the survivor, the merged subject is not found, an unmerge within the window
// restores every row as it was, and erasing the survivor erases what was merged into it.
var MergeTests = []Test{
	{"MergeThenUnmergeRestoresEveryRow", testMergeUnmergeExact},
	{"MergeMovesConsentsTokensFilesToSurvivor", testMergeFollowsSurvivor},
	{"MergedSubjectIsNotFound", testMergedNotFound},
	{"MergeRefusals", testMergeRefusals},
	{"UnmergeWindowTwiceAndLaterChange", testUnmergeRefusals},
	{"EraseSurvivorShredsMergedSubject", testMergeEraseSurvivor},
	{"MergePreviewDiffersAndCounts", testMergePreview},
	{"MergeConcurrentOppositeWaysOneWins", testMergeConcurrent},
	{"MergeRetentionFollowsSurvivor", testMergeRetention},
}

// mergeKit is a consent kit whose store has the vault (merges re-seal in the transaction), the
// tenant's token keys prepared, and two subjects: ada (the survivor) and king (the same person,
// recorded again), each with consents, tokens and a file.
type mergeKit struct {
	*consentKit
	tk        privacy.Tokenizer
	ada, king string
	adaTok    []string // phone (deterministic), notes token (random)
	kingTok   []string // phone (deterministic), national_id shared with ada (deterministic)
	sharedTok string
	kingFile  string
}

var king = map[string]string{"full_name": "Augusta Ada King", "date_of_birth": "1815-12-10", "phone": "+44 20 7946 0000",
	"national_id": "AB-947 381"}

func newMergeKit(t *testing.T, open Opener, slug string) *mergeKit {
	t.Helper()
	k := &mergeKit{consentKit: newConsentKit(t, open, slug)}
	k.db.SetVault(k.vault)
	k.tk = privacy.Tokenizer{Vault: k.vault}
	tn := k.tenant.ID
	if err := k.tk.Prepare(ctx, tn); err != nil {
		t.Fatal(err)
	}
	k.ada = k.create(t, tn, ada)
	k.king = k.create(t, tn, king)
	k.clock.Add(time.Minute)
	// ada withdrew outreach; king granted it later: the survivor's state becomes king's grant.
	for _, rec := range []*privacy.ConsentRecord{grant(k.ada, "outreach", 2), withdrawal(k.ada, "outreach")} {
		if err := k.record(tn, rec); err != nil {
			t.Fatal(err)
		}
		k.clock.Add(time.Second)
	}
	// king's grant was recorded by a caseworker, with evidence sealed under king's key.
	kg := grant(k.king, "outreach", 2)
	kg.RecordedBy, kg.Channel, kg.Evidence = privacy.RecordedByCaseworker, "paper", kingEvidence
	kpk, err := k.seal.Keys.Open(ctx, tn, k.king, mustWrapped(t, k, k.king))
	if err != nil {
		t.Fatal(err)
	}
	if kg.EvidenceSealed, err = kpk.Seal(privacy.EvidenceField(kg.ID), []byte(kingEvidence)); err != nil {
		t.Fatal(err)
	}
	if err := k.record(tn, kg); err != nil {
		t.Fatal(err)
	}
	k.consent(t, tn, func(c sqlstore.Consent) error { return c.Object(ctx, k.king, "research", "") })
	k.tokenize(t, k.ada, &k.adaTok, "phone", privacy.Deterministic, "+44 20 7946 0958")
	k.tokenize(t, k.ada, &k.adaTok, "notes", privacy.Random, "letter only")
	k.tokenize(t, k.king, &k.kingTok, "phone", privacy.Deterministic, "+44 20 7946 0000")
	k.tokenize(t, k.king, &k.kingTok, "national_id", privacy.Deterministic, "AB-947 381")
	var shared []string
	k.tokenize(t, k.ada, &shared, "national_id", privacy.Deterministic, "AB-947 381")
	if shared[0] != k.kingTok[1] {
		t.Fatal("the same value's deterministic token differs between two people")
	}
	k.sharedTok = shared[0]
	k.kingFile = k.newFile(t, k.king, "king-letter.pdf")
	k.clock.Add(time.Minute)
	return k
}

func (k *mergeKit) tokenize(t *testing.T, person string, out *[]string, field string, kind privacy.TokenKind, value string) {
	t.Helper()
	update(t, k.db, func(tx *sqlstore.Tx) error {
		toks, err := tx.TokenVault(k.tenant.ID, k.tk).Tokenize(ctx, sqlstore.TokenizeRequest{Field: field, Kind: kind, PersonID: person, Values: []string{value}})
		*out = append(*out, toks...)
		return err
	})
}

// newFile stores a file of subject with its data key and name really sealed under the subject's
// key, as intake does.
func (k *mergeKit) newFile(t *testing.T, subject, name string) string {
	t.Helper()
	f := &files.File{ID: tutela.NewID(), SubjectID: subject, DeclaredType: files.TypePDF, DetectedType: files.TypePDF,
		Extension: ".pdf", Size: 10, SHA256: strings.Repeat("ab", 32), Classification: "YELLOW", UploadedBy: "user-1",
		BlobKey: "blob-" + tutela.NewID()}
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		if f.WrappedDEK, f.NameSealed, err = tx.SealFile(ctx, k.tenant.ID, subject, f.ID, bytes.Repeat([]byte{7}, 32), name); err != nil {
			return err
		}
		return tx.Files(k.tenant.ID).Create(ctx, f)
	})
	return f.ID
}

func (k *mergeKit) openFile(t *testing.T, id string) (owner, name string) {
	t.Helper()
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) error {
		f, err := tx.Files(k.tenant.ID).Get(ctx, id)
		if err != nil {
			return err
		}
		dek, nm, err := tx.OpenFile(ctx, f)
		if err != nil {
			return err
		}
		if !bytes.Equal(dek, bytes.Repeat([]byte{7}, 32)) {
			return errors.New("the file's data key changed")
		}
		owner, name = f.SubjectID, nm
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return owner, name
}

func (k *mergeKit) detokenize(t *testing.T, refs ...sqlstore.TokenRef) []sqlstore.Detokenized {
	t.Helper()
	var out []sqlstore.Detokenized
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		out, err = tx.TokenVault(k.tenant.ID, k.tk).Detokenize(ctx, refs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func (k *mergeKit) allRefs() []sqlstore.TokenRef {
	return []sqlstore.TokenRef{{Field: "phone", Token: k.adaTok[0]}, {Field: "notes", Token: k.adaTok[1]},
		{Field: "phone", Token: k.kingTok[0]}, {Field: "national_id", Token: k.kingTok[1]}}
}

// holders lists who holds each token value, sorted: "token/holder".
func (k *mergeKit) holders(t *testing.T) []string {
	t.Helper()
	rows := rawRows(t, k.db, `SELECT t.token, v.holder FROM token_values v JOIN tokens t ON t.id = v.token_id ORDER BY 1, 2`)
	return rows
}

var mergeChoices = map[string]string{"full_name": sqlstore.MergeKeepMerged, "phone": sqlstore.MergeKeepSurvivor,
	"notes": sqlstore.MergeKeepSurvivor}

func (k *mergeKit) merge(q sqlstore.MergeRequest) (*sqlstore.SubjectMerge, error) {
	if q.Window == 0 {
		q.Window = 30 * 24 * time.Hour
	}
	if q.Justification == "" {
		q.Justification = "same person: matching national ID and date of birth"
	}
	var mg *sqlstore.SubjectMerge
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		mg, err = tx.SubjectMerges(k.tenant.ID).Merge(ctx, q)
		return err
	})
	return mg, err
}

func (k *mergeKit) mustMerge(t *testing.T) *sqlstore.SubjectMerge {
	t.Helper()
	mg, err := k.merge(sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: k.king, Choices: mergeChoices})
	if err != nil {
		t.Fatal(err)
	}
	return mg
}

func (k *mergeKit) unmerge(id, justification string) error {
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.SubjectMerges(k.tenant.ID).Unmerge(ctx, id, justification)
		return err
	})
}

// rawRows reads q's rows as text, every column.
func rawRows(t *testing.T, db *sqlstore.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format(time.RFC3339Nano)
			}
			fmt.Fprintf(&b, "%s=%x|", cols[i], fmt.Sprint(v))
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshot is every row of the tenant a merge may touch, raw.
func (k *mergeKit) snapshot(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for table, order := range map[string]string{
		"subjects": "id", "subject_values": "subject_id, field", "subject_index": "subject_id, field, key_id",
		"consent_records": "id", "consent_state": "subject_id, purpose", "subject_objections": "subject_id, purpose",
		"subject_restrictions": "subject_id", "tokens": "id", "token_values": "token_id, holder", "files": "id",
		"person_keys": "person_id", "subject_holds": "id",
	} {
		out[table] = rawRows(t, k.db, `SELECT * FROM `+table+` WHERE tenant_id = $1 ORDER BY `+order, k.tenant.ID)
	}
	return out
}

func testMergeUnmergeExact(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "merge-exact")
	tn := k.tenant.ID
	k.consent(t, tn, func(c sqlstore.Consent) error { return c.Restrict(ctx, k.ada, "") })
	before := k.snapshot(t)
	adaVals, kingVals := k.read(t, tn, k.ada), k.read(t, tn, k.king)
	adaHist, kingHist := k.history(t, tn, k.ada), k.history(t, tn, k.king)
	detok := k.detokenize(t, k.allRefs()...)
	holders := k.holders(t)

	for _, table := range []string{"subject_values", "subject_index", "consent_state", "subject_objections", "subject_restrictions", "token_values", "files"} {
		if len(before[table]) == 0 {
			t.Fatalf("the kit holds no %s: the comparison would prove nothing", table)
		}
	}
	k.clock.Add(time.Hour)
	mg := k.mustMerge(t)
	during := k.snapshot(t)
	for _, table := range []string{"subjects", "subject_values", "subject_index", "consent_state", "subject_objections", "token_values", "files"} {
		if slices.Equal(before[table], during[table]) {
			t.Fatalf("the merge changed nothing in %s", table)
		}
	}
	k.clock.Add(time.Hour)
	if err := k.unmerge(mg.ID, "the registry office confirmed two different people"); err != nil {
		t.Fatal(err)
	}
	after := k.snapshot(t)
	for table, rows := range before {
		if !slices.Equal(rows, after[table]) {
			t.Errorf("%s after unmerge differs from before the merge:\nbefore %v\nafter  %v", table, rows, after[table])
		}
	}
	if n := countRows(t, k.db, "subject_merge_saved"); n != 0 {
		t.Fatalf("%d saved rows left after the unmerge", n)
	}
	if got := k.read(t, tn, k.ada); !maps2Equal(got, adaVals) {
		t.Fatalf("survivor's values after unmerge %v, want %v", got, adaVals)
	}
	if got := k.read(t, tn, k.king); !maps2Equal(got, kingVals) {
		t.Fatalf("merged subject's values after unmerge %v, want %v", got, kingVals)
	}
	if !sameHistory(k.history(t, tn, k.ada), adaHist) || !sameHistory(k.history(t, tn, k.king), kingHist) {
		t.Fatal("consent histories differ after unmerge")
	}
	if got := k.detokenize(t, k.allRefs()...); !slices.Equal(got, detok) {
		t.Fatalf("detokenized after unmerge %v, want %v", got, detok)
	}
	if got := k.holders(t); !slices.Equal(got, holders) {
		t.Fatalf("token holders after unmerge %v, want %v", got, holders)
	}
	if owner, name := k.openFile(t, k.kingFile); owner != k.king || name != "king-letter.pdf" {
		t.Fatalf("file after unmerge: owner %s name %q", owner, name)
	}
	mustCode(t, k.check(tn, k.king, "outreach"), "")
	mustCode(t, k.check(tn, k.ada, "outreach"), tutela.ERESTRICTED)
	if got := k.search(t, tn, "full_name", "Augusta Ada King"); !slices.Equal(got, []string{k.king}) {
		t.Fatalf("search after unmerge finds %v, want the merged subject again", got)
	}
	// Both steps are in the audit log with their justification.
	var merged, unmerged bool
	for _, r := range allAuditEvents(t, k.db) {
		e := r.Event
		switch e.Action {
		case "subject.merged":
			merged = e.TargetID == k.ada && e.Details["merge_id"] == mg.ID && e.Details["merged_id"] == k.king &&
				e.Details["justification"] == "same person: matching national ID and date of birth"
		case "subject.unmerged":
			unmerged = e.TargetID == k.ada && e.Details["merge_id"] == mg.ID &&
				e.Details["justification"] == "the registry office confirmed two different people"
		}
	}
	if !merged || !unmerged {
		t.Fatalf("audit: merged event %v, unmerged event %v", merged, unmerged)
	}
	var got *sqlstore.SubjectMerge
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.SubjectMerges(tn).Get(ctx, mg.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if got.Status != sqlstore.MergeStatusUnmerged || got.UnmergedAt == nil || got.UnmergeJustification == "" {
		t.Fatalf("merge record after unmerge: %+v", got)
	}
}

func sameHistory(a, b []*privacy.ConsentRecord) bool {
	return slices.EqualFunc(a, b, func(x, y *privacy.ConsentRecord) bool {
		return x.ID == y.ID && x.SubjectID == y.SubjectID && x.Action == y.Action && x.At.Equal(y.At)
	})
}

func testMergeFollowsSurvivor(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "merge-follow")
	tn := k.tenant.ID
	mustCode(t, k.check(tn, k.ada, "outreach"), tutela.ECONSENTREQUIRED)
	mustCode(t, k.check(tn, k.ada, "research"), "")
	detok := k.detokenize(t, k.allRefs()...)
	k.mustMerge(t)

	// Values: full_name taken from king, the rest ada's; date_of_birth and national_id were equal.
	want := map[string]string{"full_name": "Augusta Ada King", "date_of_birth": ada["date_of_birth"], "phone": ada["phone"],
		"national_id": ada["national_id"], "notes": ada["notes"]}
	if got := k.read(t, tn, k.ada); !maps2Equal(got, want) {
		t.Fatalf("survivor after merge %v, want %v", got, want)
	}
	if got := k.search(t, tn, "full_name", "Augusta Ada King"); !slices.Equal(got, []string{k.ada}) {
		t.Fatalf("search for the taken name finds %v, want the survivor", got)
	}
	if got := k.search(t, tn, "full_name", "Ada Lovelace"); len(got) != 0 {
		t.Fatalf("the replaced name still finds %v", got)
	}
	// Consents: king's later grant is the survivor's state; king's objection is the survivor's.
	mustCode(t, k.check(tn, k.ada, "outreach"), "")
	mustCode(t, k.check(tn, k.ada, "research"), tutela.ECONSENTREQUIRED)
	if h := k.history(t, tn, k.ada); len(h) != 3 {
		t.Fatalf("survivor's history has %d records, want ada's 2 and king's 1", len(h))
	}
	// Tokens: every token still detokenizes to the same value, and only the survivor holds them.
	if got := k.detokenize(t, k.allRefs()...); !slices.Equal(got, detok) {
		t.Fatalf("detokenized after merge %v, want %v", got, detok)
	}
	for _, h := range k.holders(t) {
		if !strings.Contains(h, fmt.Sprintf("%x", k.ada)) {
			t.Fatalf("a token value is still held by someone else: %s", h)
		}
	}
	// The survivor's consent is what a detokenization of king's former token asks now.
	var asked []string
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.TokenVault(tn, k.tk).WithHolderCheck(func(_ context.Context, _, holder string) error {
			asked = append(asked, holder)
			return tx.Consent(tn).Check(ctx, holder, "outreach")
		}).Detokenize(ctx, []sqlstore.TokenRef{{Field: "phone", Token: k.kingTok[0]}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []string{k.ada}) {
		t.Fatalf("detokenization asked the consent of %v, want the survivor", asked)
	}
	// Files: king's file is the survivor's, its key re-sealed under the survivor's key.
	if owner, name := k.openFile(t, k.kingFile); owner != k.ada || name != "king-letter.pdf" {
		t.Fatalf("file after merge: owner %s name %q", owner, name)
	}
	// The survivor's data-subject access package holds king's record, its evidence opened
	// under king's key.
	var src *sqlstore.DSRSources
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { src, err = tx.DSRs(tn).PackageSources(ctx, k.ada); return err }); err != nil {
		t.Fatal(err)
	}
	pkg, err := dsr.Open(ctx, k.seal.Keys, tn, tutela.NewID(), src, k.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(pkg.Consents, func(c *privacy.ConsentRecord) bool { return c.Evidence == kingEvidence }) {
		t.Fatal("the survivor's access package lacks the merged subject's consent evidence")
	}
	// Tokenizing for the merged subject is refused.
	err = k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.TokenVault(tn, k.tk).Tokenize(ctx, sqlstore.TokenizeRequest{Field: "phone", Kind: privacy.Random, PersonID: k.king, Values: []string{"1"}})
		return err
	})
	if !errors.Is(err, sqlstore.ErrSubjectMerged) {
		t.Fatalf("tokenizing for the merged subject: %v", err)
	}
}

func testMergedNotFound(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "merge-404")
	tn := k.tenant.ID
	k.mustMerge(t)
	if _, err := k.get(tn, k.king); !errors.Is(err, sqlstore.ErrSubjectMerged) {
		t.Fatalf("reading the merged subject: %v", err)
	}
	mustCode(t, k.check(tn, k.king, "outreach"), tutela.ENOTFOUND)
	mustCode(t, k.record(tn, grant(k.king, "outreach", 2)), tutela.ENOTFOUND)
	var list []*sqlstore.Subject
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { list, err = tx.Subjects(tn).List(ctx, "", 100); return err }); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != k.ada {
		t.Fatalf("list after merge: %d subjects", len(list))
	}
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tn).PlaceHold(ctx, k.king, "litigation")
		return err
	}), tutela.ENOTFOUND)
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tn).Erase(ctx, k.king, "request", "GDPR Art. 17", sqlstore.ErasureRequest)
		return err
	}), tutela.ENOTFOUND)
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Consent(tn).Object(ctx, k.king, "research", "") }), tutela.ENOTFOUND)
	// The merges name it, for those who may merge.
	var ms []*sqlstore.SubjectMerge
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { ms, err = tx.SubjectMerges(tn).List(ctx, k.king, 10); return err }); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].SurvivorID != k.ada {
		t.Fatalf("merges naming the merged subject: %+v", ms)
	}
}

func testMergeRefusals(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "merge-refuse")
	tn := k.tenant.ID
	other := k.addTenant(t, "merge-refuse-b").ID
	stranger := k.create(t, other, ada)
	events := countRows(t, k.db, "audit_events")
	cases := []struct {
		name string
		q    sqlstore.MergeRequest
		code string
		msg  string
	}{
		{"same subject", sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: k.ada, Choices: mergeChoices}, tutela.EINVALID, "itself"},
		{"other tenant's subject", sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: stranger, Choices: mergeChoices}, tutela.ENOTFOUND, ""},
		{"missing choice", sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: k.king,
			Choices: map[string]string{"full_name": sqlstore.MergeKeepMerged, "phone": sqlstore.MergeKeepSurvivor}}, tutela.EINVALID, "notes"},
		{"bad choice", sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: k.king,
			Choices: map[string]string{"full_name": "both", "phone": "survivor", "notes": "survivor"}}, tutela.EINVALID, "full_name"},
		{"unknown field", sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: k.king,
			Choices: map[string]string{"full_name": "merged", "phone": "survivor", "notes": "survivor", "shoe_size": "merged"}}, tutela.EINVALID, "shoe_size"},
		{"no justification", sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: k.king, Choices: mergeChoices, Justification: " "}, tutela.EINVALID, "justification"},
	}
	for _, c := range cases {
		_, err := k.merge(c.q)
		if tutela.ErrorCode(err) != c.code || !strings.Contains(fmt.Sprint(err), c.msg) {
			t.Fatalf("%s: %v, want %s naming %q", c.name, err, c.code, c.msg)
		}
	}
	// The other tenant cannot merge this tenant's subjects either.
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.SubjectMerges(other).Merge(ctx, sqlstore.MergeRequest{SurvivorID: stranger, MergedID: k.king, Choices: mergeChoices,
			Justification: "x", Window: time.Hour})
		return err
	})
	mustCode(t, err, tutela.ENOTFOUND)
	// A held subject is not merged away.
	var hold *sqlstore.Hold
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		hold, err = tx.Subjects(tn).PlaceHold(ctx, k.king, "litigation 42")
		return err
	})
	if _, err := k.merge(sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: k.king, Choices: mergeChoices}); tutela.ErrorCode(err) != tutela.ECONFLICT ||
		!strings.Contains(err.Error(), "litigation 42") {
		t.Fatalf("merging a held subject: %v", err)
	}
	if got := countRows(t, k.db, "audit_events"); got != events+1 { // the hold's event only
		t.Fatalf("refused merges wrote %d audit events", got-events-1)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(tn).ReleaseHold(ctx, k.king, hold.ID); return err })
	// An open erasure request for either subject refuses it.
	worker := createUser(t, k.db, tn, "worker@example.org")
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Users(tn).Grant(ctx, worker.ID, "operator", "", nil) })
	var req *sqlstore.DSR
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		req, err = tx.DSRs(tn).Create(as(worker), &sqlstore.NewDSR{ID: tutela.NewID(), SubjectID: k.ada, Kind: privacy.DSRErasure},
			privacy.DefaultDSRPolicy())
		return err
	})
	if _, err := k.merge(sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: k.king, Choices: mergeChoices}); tutela.ErrorCode(err) != tutela.ECONFLICT ||
		!strings.Contains(err.Error(), "erasure request") {
		t.Fatalf("merging with an open erasure request: %v", err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(tn).Reject(as(worker), req.ID, worker.ID, "identity not verified")
		return err
	})
	// Merged once: neither side can be merged again; an erased subject is not found.
	k.mustMerge(t)
	third := k.create(t, tn, map[string]string{"full_name": "Ada Byron"})
	for _, q := range []sqlstore.MergeRequest{{SurvivorID: third, MergedID: k.king}, {SurvivorID: k.king, MergedID: third}} {
		_, err := k.merge(q)
		if tutela.ErrorCode(err) != tutela.ECONFLICT || !strings.Contains(err.Error(), k.ada) {
			t.Fatalf("merging an already merged subject: %v", err)
		}
	}
	if _, err := k.merge(sqlstore.MergeRequest{SurvivorID: third, MergedID: k.ada, Choices: map[string]string{"full_name": "survivor",
		"date_of_birth": "survivor", "phone": "survivor", "national_id": "survivor", "notes": "survivor"}}); tutela.ErrorCode(err) != tutela.ECONFLICT {
		t.Fatalf("merging a survivor away: %v", err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tn).Erase(ctx, third, "request", "GDPR Art. 17", sqlstore.ErasureRequest)
		return err
	})
	if _, err := k.merge(sqlstore.MergeRequest{SurvivorID: k.ada, MergedID: third}); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("merging an erased subject: %v", err)
	}
}

func testUnmergeRefusals(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "unmerge-refuse")
	tn := k.tenant.ID
	mg := k.mustMerge(t)
	mustCode(t, k.unmerge(mg.ID, ""), tutela.EINVALID)
	mustCode(t, k.unmerge(tutela.NewID(), "x"), tutela.ENOTFOUND)
	other := k.addTenant(t, "unmerge-other").ID
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.SubjectMerges(other).Unmerge(ctx, mg.ID, "x")
		return err
	}), tutela.ENOTFOUND)
	// A change to the survivor since the merge is named, and refuses.
	sealed, err := k.seal.SealUpdate(ctx, tn, k.ada, mustWrapped(t, k, k.ada), k.schema, map[string]*string{"notes": ptr("moved to Paris")})
	if err != nil {
		t.Fatal(err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(tn).Update(ctx, sealed); return err })
	err = k.unmerge(mg.ID, "wrong match")
	if tutela.ErrorCode(err) != tutela.ECONFLICT || !strings.Contains(err.Error(), "values") {
		t.Fatalf("unmerge after the survivor changed: %v", err)
	}
	// A consent recorded for the survivor since is a change too.
	k2 := newMergeKit(t, open, "unmerge-refuse-2")
	mg2 := k2.mustMerge(t)
	if err := k2.record(k2.tenant.ID, withdrawal(k2.ada, "outreach")); err != nil {
		t.Fatal(err)
	}
	if err := k2.unmerge(mg2.ID, "wrong match"); tutela.ErrorCode(err) != tutela.ECONFLICT || !strings.Contains(err.Error(), "consents") {
		t.Fatalf("unmerge after a consent change: %v", err)
	}
	// The window: open until its last instant, closed after.
	k3 := newMergeKit(t, open, "unmerge-window")
	mg3, err := k3.merge(sqlstore.MergeRequest{SurvivorID: k3.ada, MergedID: k3.king, Choices: mergeChoices, Window: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	k3.clock.Add(24*time.Hour + time.Microsecond)
	if err := k3.unmerge(mg3.ID, "wrong match"); tutela.ErrorCode(err) != tutela.ECONFLICT || !strings.Contains(err.Error(), "window") {
		t.Fatalf("unmerge after the window: %v", err)
	}
	k4 := newMergeKit(t, open, "unmerge-twice")
	mg4 := k4.mustMerge(t)
	k4.clock.Add(24 * time.Hour)
	if err := k4.unmerge(mg4.ID, "wrong match"); err != nil {
		t.Fatal(err)
	}
	if err := k4.unmerge(mg4.ID, "again"); tutela.ErrorCode(err) != tutela.ECONFLICT {
		t.Fatalf("unmerging twice: %v", err)
	}
}

const kingEvidence = "REF-55012 signed form"

func mustWrapped(t *testing.T, k interface {
	get(string, string) (*sqlstore.SubjectRecord, error)
	tenantID() string
}, id string) []byte {
	t.Helper()
	rec, err := k.get(k.tenantID(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Stored.Wrapped
}

func (k *subjectKit) tenantID() string { return k.tenant.ID }

func ptr(s string) *string { return &s }

func testMergeEraseSurvivor(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "merge-erase")
	tn := k.tenant.ID
	mg := k.mustMerge(t)
	if countRows(t, k.db, "subject_merge_saved") == 0 {
		t.Fatal("the merge saved nothing to unmerge with")
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tn).Erase(ctx, k.ada, "data-subject request", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
		return err
	})
	// The merged subject's key is shredded too: its values there, its saved token values and
	// the survivor's replaced values all go.
	for _, id := range []string{k.ada, k.king} {
		var w []byte
		if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { w, err = tx.PersonKeys(tn).Get(ctx, id); return err }); err != nil {
			t.Fatal(err)
		}
		if w != nil {
			t.Fatalf("person key of %s survives the survivor's erasure", id)
		}
	}
	for _, q := range []string{`SELECT count(*) FROM subject_values`, `SELECT count(*) FROM subject_index`,
		`SELECT count(*) FROM subject_merge_saved`, `SELECT count(*) FROM token_values`,
		`SELECT count(*) FROM files WHERE wrapped_dek IS NOT NULL OR name_sealed IS NOT NULL`,
		`SELECT count(*) FROM subjects WHERE erased_at IS NULL`} {
		var n int
		if err := k.db.SQL().QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%s = %d after erasing the survivor", q, n)
		}
	}
	var ledger []*sqlstore.Erasure
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { ledger, err = tx.Erasures(ctx, tn, "", 10); return err }); err != nil {
		t.Fatal(err)
	}
	var people []string
	for _, e := range ledger {
		people = append(people, e.PersonID)
	}
	slices.Sort(people)
	want := []string{k.ada, k.king}
	slices.Sort(want)
	if !slices.Equal(people, want) {
		t.Fatalf("ledger names %v, want both subjects", people)
	}
	if err := k.unmerge(mg.ID, "too late"); tutela.ErrorCode(err) != tutela.ECONFLICT {
		t.Fatalf("unmerge after the survivor's erasure: %v", err)
	}
	if got := k.detokenize(t, k.allRefs()...); slices.ContainsFunc(got, func(d sqlstore.Detokenized) bool { return d.Found }) {
		t.Fatalf("a token still detokenizes after the erasure: %v", got)
	}
}

func testMergePreview(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "merge-preview")
	var p *sqlstore.MergePreview
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		p, err = tx.SubjectMerges(k.tenant.ID).Preview(ctx, k.ada, k.king)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"full_name": true, "date_of_birth": false, "phone": true, "national_id": false, "notes": true}
	if len(p.Differs) != len(want) {
		t.Fatalf("differs %v, want %v", p.Differs, want)
	}
	for f, d := range want {
		if p.Differs[f] != d {
			t.Fatalf("differs %v, want %v", p.Differs, want)
		}
	}
	if p.Survivor != (sqlstore.MergeCounts{Consents: 2, Tokens: 3, Files: 0}) || p.Merged != (sqlstore.MergeCounts{Consents: 1, Tokens: 2, Files: 1}) {
		t.Fatalf("counts: survivor %+v merged %+v", p.Survivor, p.Merged)
	}
	if n := countRows(t, k.db, "subject_merges"); n != 0 {
		t.Fatal("a preview stored a merge")
	}
}

// Two merges of the same pair at once, opposite ways: exactly one runs, the other is a
// conflict, and the loser's survivor is the winner's merged subject or the other way round,
// never both merged.
func testMergeConcurrent(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "merge-race")
	choices := map[string]string{"full_name": "survivor", "phone": "survivor", "notes": "survivor"}
	pairs := [][2]string{{k.ada, k.king}, {k.king, k.ada}}
	errs := make([]error, len(pairs))
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = k.merge(sqlstore.MergeRequest{SurvivorID: p[0], MergedID: p[1], Choices: choices})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case tutela.ErrorCode(err) != tutela.ECONFLICT:
			t.Fatalf("the losing merge: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d merges ran, want exactly one (%v)", ok, errs)
	}
	if n := countRows(t, k.db, "subject_merges"); n != 1 {
		t.Fatalf("%d merge records", n)
	}
	var merged int
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM subjects WHERE merged_into IS NOT NULL`).Scan(&merged); err != nil {
		t.Fatal(err)
	}
	if merged != 1 {
		t.Fatalf("%d subjects marked merged, want 1", merged)
	}
}

// The merged subject leaves the retention schedule (its own retain_until is gone); the
// survivor's expiry erases both, and nothing is erased twice.
func testMergeRetention(t *testing.T, open Opener) {
	k := newMergeKit(t, open, "merge-retention")
	k.mustMerge(t)
	k.clock.Add(20 * 365 * 24 * time.Hour) // past every field's retention
	run, err := k.db.RunRetentionSchedule(ctx, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if run.Erased != 1 || run.Failed != 0 {
		t.Fatalf("retention run: %+v, want the survivor erased (with what was merged into it)", run)
	}
	var ledger []*sqlstore.Erasure
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { ledger, err = tx.Erasures(ctx, k.tenant.ID, "", 10); return err }); err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 2 || ledger[0].Trigger != sqlstore.ErasureRetention || ledger[1].Trigger != sqlstore.ErasureRetention {
		t.Fatalf("ledger after retention: %d entries", len(ledger))
	}
	if run, err := k.db.RunRetentionSchedule(ctx, 0, false); err != nil || run.Erased != 0 || run.Failed != 0 {
		t.Fatalf("second run: %+v %v", run, err)
	}
}
