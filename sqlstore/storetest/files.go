package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"tutela"
	"tutela/files"
	"tutela/sqlstore"
)

// FilesTests is safe file intake's part of the suite (issue 17): the file records and their
// wrapped data keys, scan transitions, shredding on infection, deletion and a subject's
// erasure, the download links, the tenant's policy and the files keyset's rewrap, each scoped to
// its tenant.
var FilesTests = []Test{
	{"FilesCreateGetListPaginated", testFilesCreateList},
	{"FilesCreateValidatesAndStoresNothingOnError", testFilesCreateInvalid},
	{"FilesTenantIsolation", testFilesIsolation},
	{"FilesMalformedIDsAreNotFound", testFilesMalformedIDs},
	{"FilesSubjectMustBeLiveAndOfTheTenant", testFilesSubjectRefused},
	{"FilesPolicyDefaultAndSet", testFilesPolicy},
	{"FilesScanTransitions", testFilesScan},
	{"FilesInfectedShredsAndPurgesOnce", testFilesInfected},
	{"FilesDeleteShredsRevokesAndPurgesOnce", testFilesDelete},
	{"FilesLinksOnlyForAvailableFiles", testFilesLinks},
	{"FilesLinkSingleUse", testFilesLinkSingleUse},
	{"FilesLinkConcurrentUseOneWins", testFilesLinkConcurrent},
	{"FilesSubjectErasureErasesOnlyItsFiles", testFilesErasure},
	{"FilesErasureReappliedToARestoredBackup", testFilesErasureReapplied},
	{"FilesRewrapAfterRotation", testFilesRewrap},
	{"FilesCreateForASubjectBeingErasedRefused", testFilesCreateRacesErasure},
	{"FilesLinkToAFileBeingDeletedRefused", testFilesLinkRacesDelete},
	{"FilesExpiredLinksPurgedByRetention", testFilesLinksPurged},
}

// testFilesLinksPurged: the retention sweep removes links expired longer ago than the
// used-tokens retention, and only those.
func testFilesLinksPurged(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "fl-purge")
	f := k.available(t, k.a, "")
	old := k.link(t, k.a, f.ID, false)
	k.clock.Add(2 * time.Hour)
	fresh := k.link(t, k.a, f.ID, false)
	ret := sqlstore.Retention{LoginHistory: time.Hour, SecurityEvents: time.Hour, EndedSessions: time.Hour,
		UsedTokens: time.Hour, DeadJobs: time.Hour}
	c, err := k.db.PurgeExpired(ctx, k.clock.Now(), ret)
	if err != nil {
		t.Fatal(err)
	}
	if c.FileLinks != 1 {
		t.Fatalf("purged %d links, want 1 (%s)", c.FileLinks, c)
	}
	var links []files.Link
	k.must(t, k.a, func(s sqlstore.Files) (err error) { links, err = s.Links(ctx, f.ID); return err })
	if len(links) != 1 || links[0].ID != fresh.ID || old.ID == fresh.ID {
		t.Fatalf("links left: %+v", links)
	}
}

// filesKit is a store with a vault, two tenants with a subject schema, and a subject in each.
type filesKit struct {
	*subjectKit
	a, b         string // tenants
	subA, subB   string // a subject of each
	blobSequence int
}

func newFilesKit(t *testing.T, open Opener, slug string) *filesKit {
	t.Helper()
	sk := newSubjectKit(t, open, slug+"-a")
	k := &filesKit{subjectKit: sk, a: sk.tenant.ID, b: sk.addTenant(t, slug+"-b").ID}
	k.subA = k.create(t, k.a, map[string]string{"full_name": "Ada Lovelace"})
	k.subB = k.create(t, k.b, map[string]string{"full_name": "Grace Hopper"})
	return k
}

func (k *filesKit) do(tenantID string, fn func(sqlstore.Files) error) error {
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return fn(tx.Files(tenantID)) })
}

func (k *filesKit) must(t *testing.T, tenantID string, fn func(sqlstore.Files) error) {
	t.Helper()
	if err := k.do(tenantID, fn); err != nil {
		t.Fatal(err)
	}
}

// draft is a new file's record as intake makes it (the sealed values are stand-ins: the store
// never opens them).
func (k *filesKit) draft(subjectID string) *files.File {
	k.blobSequence++
	sum := sha256.Sum256([]byte{byte(k.blobSequence)})
	return &files.File{SubjectID: subjectID, DeclaredType: files.TypePDF, DetectedType: files.TypePDF, Extension: ".pdf",
		Size: 1234, SHA256: hex.EncodeToString(sum[:]), Classification: "YELLOW", UploadedBy: "user-1",
		BlobKey: "blob-" + hex.EncodeToString(sum[:8]), WrappedDEK: []byte("wrapped-dek"), NameSealed: []byte("sealed-name")}
}

func (k *filesKit) newFile(t *testing.T, tenantID, subjectID string) *files.File {
	t.Helper()
	f := k.draft(subjectID)
	k.must(t, tenantID, func(s sqlstore.Files) error { return s.Create(ctx, f) })
	return f
}

func (k *filesKit) get(t *testing.T, tenantID, id string) *files.File {
	t.Helper()
	var f *files.File
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { f, err = tx.Files(tenantID).Get(ctx, id); return err }); err != nil {
		t.Fatal(err)
	}
	return f
}

func (k *filesKit) scan(tenantID, id string, r sqlstore.ScanRecord) (*files.File, error) {
	var f *files.File
	err := k.do(tenantID, func(s sqlstore.Files) (err error) { f, err = s.RecordScan(ctx, id, r); return err })
	return f, err
}

var clean = sqlstore.ScanRecord{Status: files.StatusAvailable, Result: "clean"}

func (k *filesKit) available(t *testing.T, tenantID, subjectID string) *files.File {
	t.Helper()
	f := k.newFile(t, tenantID, subjectID)
	got, err := k.scan(tenantID, f.ID, clean)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (k *filesKit) link(t *testing.T, tenantID, fileID string, singleUse bool) *files.Link {
	t.Helper()
	l := &files.Link{FileID: fileID, Audience: files.AudienceAnyone, SingleUse: singleUse, KeyID: 7,
		ExpiresAt: k.clock.Now().Add(files.DefaultLinkTTL), CreatedBy: "user-1"}
	k.must(t, tenantID, func(s sqlstore.Files) error { return s.CreateLink(ctx, l) })
	return l
}

func (k *filesKit) list(t *testing.T, tenantID string, q sqlstore.FileQuery) ([]files.File, string) {
	t.Helper()
	var out []files.File
	var next string
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		out, next, err = tx.Files(tenantID).List(ctx, q)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out, next
}

// rawFile is what the database holds in a file's sensitive columns.
type rawFile struct {
	dek, name []byte
	sha       string
	blob      *string
}

func readRaw(t *testing.T, k *filesKit, id string) rawFile {
	t.Helper()
	var r rawFile
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT wrapped_dek, name_sealed, sha256, blob_key FROM files WHERE id = $1`, id).
		Scan(&r.dek, &r.name, &r.sha, &r.blob); err != nil {
		t.Fatal(err)
	}
	return r
}

// fileJob is a pending job of the file kinds, as stored.
type fileJob struct {
	Kind, TenantID, Payload string
	RunAt                   time.Time
	MaxAttempts             int
}

func pendingFileJobs(t *testing.T, db *sqlstore.DB, kind string) []fileJob {
	t.Helper()
	rows, err := db.SQL().QueryContext(ctx, `SELECT kind, tenant_id, payload, run_at, max_attempts FROM jobs
		WHERE state = 'pending' AND kind = $1 ORDER BY created_at, id`, kind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []fileJob
	for rows.Next() {
		var j fileJob
		var p []byte
		if err := rows.Scan(&j.Kind, &j.TenantID, &p, &j.RunAt, &j.MaxAttempts); err != nil {
			t.Fatal(err)
		}
		j.Payload, j.RunAt = string(p), j.RunAt.UTC()
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// purgesOf counts the pending purge jobs of a file.
func purgesOf(t *testing.T, db *sqlstore.DB, fileID string) int {
	t.Helper()
	n := 0
	for _, j := range pendingFileJobs(t, db, files.JobPurge) {
		if j.Payload == fileID {
			n++
		}
	}
	return n
}

func testFilesCreateList(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-crud")
	now := k.clock.Now().UTC().Truncate(time.Microsecond)
	f := k.draft(k.subA)
	f.Name = "report.pdf"
	k.must(t, k.a, func(s sqlstore.Files) error { return s.Create(ctx, f) })
	if !tutela.ValidID(f.ID) || f.TenantID != k.a || f.Status != files.StatusQuarantined ||
		f.QuarantineReason != files.QuarantinePending || !f.CreatedAt.Equal(now) || !f.UpdatedAt.Equal(now) {
		t.Fatalf("created %+v", f)
	}
	got := k.get(t, k.a, f.ID)
	want := *f
	want.Name = "" // sealed: Get leaves opening it to the caller
	if got.ID != want.ID || got.SubjectID != k.subA || got.SHA256 != want.SHA256 || got.BlobKey != want.BlobKey ||
		!bytes.Equal(got.WrappedDEK, want.WrappedDEK) || !bytes.Equal(got.NameSealed, want.NameSealed) || got.Name != "" ||
		got.Status != files.StatusQuarantined || got.ScanAttempts != 0 || got.ScannedAt != nil || !got.CreatedAt.Equal(now) ||
		got.Size != 1234 || got.Classification != "YELLOW" || got.DetectedType != files.TypePDF || got.UploadedBy != "user-1" {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
	// The safety-net scan job: one, for this tenant and file, a minute ahead.
	jobs := pendingFileJobs(t, k.db, files.JobScan)
	if len(jobs) != 1 || jobs[0].TenantID != k.a || jobs[0].Payload != f.ID || jobs[0].MaxAttempts != 72 ||
		!jobs[0].RunAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("scan jobs after Create: %+v", jobs)
	}
	// A caller-chosen ID is kept (intake binds the sealed values to it before Create).
	own := k.draft("")
	own.ID = tutela.NewID()
	chosen := own.ID
	k.must(t, k.a, func(s sqlstore.Files) error { return s.Create(ctx, own) })
	if own.ID != chosen {
		t.Fatalf("caller's ID replaced: %s → %s", chosen, own.ID)
	}

	// Newest first, in pages; the filters narrow it.
	ids := []string{f.ID, own.ID}
	for range 3 {
		ids = append(ids, k.newFile(t, k.a, "").ID)
	}
	k.newFile(t, k.b, "")
	slices.Reverse(ids)
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		out, next := k.list(t, k.a, sqlstore.FileQuery{After: cursor, Limit: 2})
		for _, x := range out {
			seen = append(seen, x.ID)
		}
		if next == "" {
			if page != 2 || len(out) != 1 {
				t.Fatalf("last page %d holds %d", page, len(out))
			}
			break
		}
		if len(out) != 2 || page > 2 {
			t.Fatalf("page %d holds %d files, next %q", page, len(out), next)
		}
		cursor = next
	}
	if !slices.Equal(seen, ids) {
		t.Fatalf("listed %v, want newest first %v", seen, ids)
	}
	if out, next := k.list(t, k.a, sqlstore.FileQuery{Limit: 5}); len(out) != 5 || next != "" {
		t.Fatalf("an exact last page: %d files, next %q", len(out), next)
	}
	if out, _ := k.list(t, k.a, sqlstore.FileQuery{SubjectID: k.subA}); len(out) != 1 || out[0].ID != f.ID {
		t.Fatalf("by subject: %v", out)
	}
	if _, err := k.scan(k.a, ids[0], clean); err != nil {
		t.Fatal(err)
	}
	if out, _ := k.list(t, k.a, sqlstore.FileQuery{Status: files.StatusAvailable}); len(out) != 1 || out[0].ID != ids[0] {
		t.Fatalf("by status: %v", out)
	}
	if out, _ := k.list(t, k.a, sqlstore.FileQuery{Status: files.StatusQuarantined, SubjectID: k.subA}); len(out) != 1 {
		t.Fatalf("by status and subject: %v", out)
	}
	for _, q := range []sqlstore.FileQuery{{Status: "gone"}, {SubjectID: "x"}, {After: "1 OR 1=1"}} {
		err := k.db.View(ctx, func(tx *sqlstore.Tx) error { _, _, err := tx.Files(k.a).List(ctx, q); return err })
		mustCode(t, err, tutela.EINVALID)
	}
}

func testFilesCreateInvalid(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-invalid")
	cases := map[string]func(f *files.File){
		"no blob key":        func(f *files.File) { f.BlobKey = "" },
		"no data key":        func(f *files.File) { f.WrappedDEK = nil },
		"no sealed name":     func(f *files.File) { f.NameSealed = nil },
		"no detected type":   func(f *files.File) { f.DetectedType = "" },
		"bad hash":           func(f *files.File) { f.SHA256 = "abc" },
		"upper-case hash":    func(f *files.File) { f.SHA256 = "AB" + f.SHA256[2:] },
		"classification":     func(f *files.File) { f.Classification = "PURPLE" },
		"negative size":      func(f *files.File) { f.Size = -1 },
		"born available":     func(f *files.File) { f.Status = files.StatusAvailable },
		"unknown quarantine": func(f *files.File) { f.QuarantineReason = "because" },
		"malformed ID":       func(f *files.File) { f.ID = "not-a-uuid" },
		"control characters": func(f *files.File) { f.UploadedBy = "a\nb" },
	}
	for name, spoil := range cases {
		f := k.draft("")
		spoil(f)
		if err := k.do(k.a, func(s sqlstore.Files) error { return s.Create(ctx, f) }); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	// A blob key is one file's: a second file naming it is a conflict.
	first := k.newFile(t, k.a, "")
	dup := k.draft("")
	dup.BlobKey = first.BlobKey
	mustCode(t, k.do(k.a, func(s sqlstore.Files) error { return s.Create(ctx, dup) }), tutela.ECONFLICT)
	if n := countRows(t, k.db, "files"); n != 1 {
		t.Fatalf("%d files stored, want only the valid one", n)
	}
	if n := len(pendingFileJobs(t, k.db, files.JobScan)); n != 1 {
		t.Fatalf("%d scan jobs, want 1: a refused file enqueues nothing", n)
	}
}

func testFilesIsolation(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-iso")
	f := k.available(t, k.a, k.subA)
	l := k.link(t, k.a, f.ID, true)
	q := k.newFile(t, k.a, "")
	before, beforeQ := k.get(t, k.a, f.ID), k.get(t, k.a, q.ID)
	jobs := countRows(t, k.db, "jobs")
	newLink := func() *files.Link {
		return &files.Link{FileID: f.ID, Audience: files.AudienceAnyone, ExpiresAt: k.clock.Now().Add(time.Minute)}
	}
	for name, fn := range map[string]func(sqlstore.Files) error{
		"Get":         func(s sqlstore.Files) error { _, err := s.Get(ctx, f.ID); return err },
		"RecordScan":  func(s sqlstore.Files) error { _, err := s.RecordScan(ctx, q.ID, clean); return err },
		"Delete":      func(s sqlstore.Files) error { _, err := s.Delete(ctx, f.ID); return err },
		"BlobRemoved": func(s sqlstore.Files) error { return s.BlobRemoved(ctx, f.ID, f.BlobKey) },
		"CreateLink":  func(s sqlstore.Files) error { return s.CreateLink(ctx, newLink()) },
		"Links":       func(s sqlstore.Files) error { _, err := s.Links(ctx, f.ID); return err },
		"RevokeLink":  func(s sqlstore.Files) error { return s.RevokeLink(ctx, f.ID, l.ID) },
	} {
		if err := k.do(k.b, fn); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("tenant B %s on A's file: %v, want not found", name, err)
		}
	}
	// B's own file with A's link ID is not found either.
	fb := k.available(t, k.b, "")
	mustCode(t, k.do(k.b, func(s sqlstore.Files) error { return s.RevokeLink(ctx, fb.ID, l.ID) }), tutela.ENOTFOUND)
	if out, _ := k.list(t, k.b, sqlstore.FileQuery{}); len(out) != 1 || out[0].ID != fb.ID {
		t.Fatalf("tenant B lists %v", out)
	}
	if out, _ := k.list(t, k.b, sqlstore.FileQuery{SubjectID: k.subA}); len(out) != 0 {
		t.Fatalf("tenant B lists A's subject's files: %v", out)
	}
	after, afterQ := k.get(t, k.a, f.ID), k.get(t, k.a, q.ID)
	if !after.UpdatedAt.Equal(before.UpdatedAt) || after.Status != before.Status || !bytes.Equal(after.WrappedDEK, before.WrappedDEK) ||
		after.BlobKey != before.BlobKey || afterQ.ScanAttempts != beforeQ.ScanAttempts || afterQ.Status != files.StatusQuarantined {
		t.Fatalf("A's files changed by B: %+v → %+v", before, after)
	}
	var links []files.Link
	k.must(t, k.a, func(s sqlstore.Files) (err error) { links, err = s.Links(ctx, f.ID); return err })
	if len(links) != 1 || links[0].RevokedAt != nil {
		t.Fatalf("A's links after B's attempts: %+v", links)
	}
	// B's new file and its scan job only.
	if n := countRows(t, k.db, "jobs"); n != jobs+1 {
		t.Fatalf("jobs %d → %d", jobs, n)
	}
}

func testFilesMalformedIDs(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-malformed")
	f := k.available(t, k.a, "")
	for _, bad := range []string{"", "1 OR 1=1", "not-a-uuid", f.ID + "x", "' OR ''='"} {
		for name, fn := range map[string]func(sqlstore.Files) error{
			"Get":         func(s sqlstore.Files) error { _, err := s.Get(ctx, bad); return err },
			"RecordScan":  func(s sqlstore.Files) error { _, err := s.RecordScan(ctx, bad, clean); return err },
			"Delete":      func(s sqlstore.Files) error { _, err := s.Delete(ctx, bad); return err },
			"BlobRemoved": func(s sqlstore.Files) error { return s.BlobRemoved(ctx, bad, "k") },
			"Links":       func(s sqlstore.Files) error { _, err := s.Links(ctx, bad); return err },
			"RevokeLink":  func(s sqlstore.Files) error { return s.RevokeLink(ctx, f.ID, bad) },
			"RevokeLinkF": func(s sqlstore.Files) error { return s.RevokeLink(ctx, bad, tutela.NewID()) },
			"CreateLink": func(s sqlstore.Files) error {
				return s.CreateLink(ctx, &files.Link{FileID: bad, Audience: files.AudienceAnyone, ExpiresAt: k.clock.Now().Add(time.Minute)})
			},
		} {
			if err := k.do(k.a, fn); tutela.ErrorCode(err) != tutela.ENOTFOUND {
				t.Errorf("%s(%q): %v, want not found", name, bad, err)
			}
		}
		err := k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.FileLink(ctx, bad); return err })
		mustCode(t, err, tutela.ENOTFOUND)
		// A malformed tenant scope finds nothing either.
		err = k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Files(bad).Get(ctx, f.ID); return err })
		mustCode(t, err, tutela.ENOTFOUND)
	}
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UseFileLink(ctx, &files.Link{ID: "x", SingleUse: true}) })
	mustCode(t, err, tutela.ENOTFOUND)
}

func testFilesSubjectRefused(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-subject")
	create := func(subjectID string) error {
		return k.do(k.a, func(s sqlstore.Files) error { return s.Create(ctx, k.draft(subjectID)) })
	}
	unknown := create(tutela.NewID())
	mustCode(t, unknown, tutela.ENOTFOUND)
	other := create(k.subB)
	mustCode(t, other, tutela.ENOTFOUND)
	// Another tenant's subject is refused exactly as an unknown one: nothing to tell them apart.
	if tutela.ErrorMessage(other) != tutela.ErrorMessage(unknown) {
		t.Fatalf("another tenant's subject: %q, unknown: %q", tutela.ErrorMessage(other), tutela.ErrorMessage(unknown))
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.a).Erase(ctx, k.subA, "the subject asked", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
		return err
	})
	erased := create(k.subA)
	mustCode(t, erased, tutela.ENOTFOUND)
	if tutela.ErrorMessage(erased) != tutela.ErrorMessage(unknown) {
		t.Fatalf("erased subject: %q", tutela.ErrorMessage(erased))
	}
	if n := countRows(t, k.db, "files"); n != 0 {
		t.Fatalf("%d files stored for refused subjects", n)
	}
}

func testFilesPolicy(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-policy")
	policy := func(tenantID string) files.Policy {
		var p files.Policy
		k.must(t, tenantID, func(s sqlstore.Files) (err error) { p, err = s.Policy(ctx); return err })
		return p
	}
	def := files.DefaultPolicy()
	if p := policy(k.a); !slices.Equal(p.AllowedTypes, def.AllowedTypes) || p.MaxSize != def.MaxSize {
		t.Fatalf("policy before any is set: %+v", p)
	}
	bad := files.DefaultPolicy()
	bad.AllowedTypes = []string{"application/x-msdownload"}
	err := k.do(k.a, func(s sqlstore.Files) error { return s.SetPolicy(ctx, bad, "admin") })
	var e *tutela.Error
	if !errors.As(err, &e) || e.Code != tutela.EINVALID || e.Field != "allowed_types" {
		t.Fatalf("an unsupported type: %v", err)
	}
	p := files.DefaultPolicy()
	p.AllowedTypes, p.MaxSize, p.MaxSizeByType = []string{files.TypePNG, files.TypeSVG}, 1<<20, map[string]int64{files.TypeSVG: 1000}
	k.must(t, k.a, func(s sqlstore.Files) error { return s.SetPolicy(ctx, p, "admin") })
	p.MaxSize = 2 << 20
	k.must(t, k.a, func(s sqlstore.Files) error { return s.SetPolicy(ctx, p, "admin") })
	got := policy(k.a)
	if !slices.Equal(got.AllowedTypes, p.AllowedTypes) || got.MaxSize != 2<<20 || got.MaxSizeByType[files.TypeSVG] != 1000 {
		t.Fatalf("stored policy %+v, want %+v", got, p)
	}
	if got := policy(k.b); got.MaxSize != def.MaxSize || got.Allows(files.TypeSVG) {
		t.Fatalf("tenant B's policy follows A's: %+v", got)
	}
	if n := countRows(t, k.db, "file_policies"); n != 1 {
		t.Fatalf("%d policy rows, want one (an upsert)", n)
	}
}
