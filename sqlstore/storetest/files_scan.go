package storetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/files"
	"tutela/sqlstore"
	"tutela/vault"
)

// A scan without a verdict counts the attempt and leaves the file quarantined; a clean one
// makes it available with the time of the verdict; after that no scan changes it.
func testFilesScan(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-scan")
	f := k.newFile(t, k.a, "")
	k.clock.Add(time.Minute)
	got, err := k.scan(k.a, f.ID, sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineUnavailable})
	if err != nil || got.Status != files.StatusQuarantined || got.QuarantineReason != files.QuarantineUnavailable ||
		got.ScanAttempts != 1 || got.ScannedAt != nil {
		t.Fatalf("a scan without a verdict: %+v, %v", got, err)
	}
	k.clock.Add(time.Minute)
	if _, err := k.scan(k.a, f.ID, sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineTimeout}); err != nil {
		t.Fatal(err)
	}
	k.clock.Add(time.Minute)
	verdictAt := k.clock.Now().UTC().Truncate(time.Microsecond)
	if _, err := k.scan(k.a, f.ID, clean); err != nil {
		t.Fatal(err)
	}
	got = k.get(t, k.a, f.ID)
	if got.Status != files.StatusAvailable || got.QuarantineReason != "" || got.ScanResult != "clean" || got.ScanAttempts != 3 ||
		got.ScannedAt == nil || !got.ScannedAt.Equal(verdictAt) || !got.UpdatedAt.Equal(verdictAt) || got.WrappedDEK == nil {
		t.Fatalf("after a clean scan: %+v", got)
	}
	for _, r := range []sqlstore.ScanRecord{clean, {Status: files.StatusInfected, Result: "Eicar-Test-Signature"},
		{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineError}} {
		_, err := k.scan(k.a, f.ID, r)
		mustCode(t, err, tutela.ECONFLICT)
	}
	if again := k.get(t, k.a, f.ID); again.Status != files.StatusAvailable || again.ScanAttempts != 3 || again.WrappedDEK == nil {
		t.Fatalf("a scan of an available file changed it: %+v", again)
	}
	if n := len(pendingFileJobs(t, k.db, files.JobPurge)); n != 0 {
		t.Fatalf("%d purge jobs for a clean file", n)
	}
	q := k.newFile(t, k.a, "")
	for _, r := range []sqlstore.ScanRecord{
		{Status: files.StatusQuarantined},
		{Status: files.StatusQuarantined, QuarantineReason: "whatever"},
		{Status: files.StatusAvailable, Result: "Eicar"},
		{Status: files.StatusAvailable, Result: "clean", QuarantineReason: files.QuarantineError},
		{Status: files.StatusInfected},
		{Status: files.StatusInfected, Result: "clean"},
		{Status: files.StatusInfected, Result: "Eicar\x00"},
		{Status: files.StatusDeleted, Result: "clean"},
		{Status: files.StatusErased},
	} {
		_, err := k.scan(k.a, q.ID, r)
		mustCode(t, err, tutela.EINVALID)
	}
	if got := k.get(t, k.a, q.ID); got.ScanAttempts != 0 || got.Status != files.StatusQuarantined {
		t.Fatalf("invalid scan records changed the file: %+v", got)
	}
}

// An infected file can never be read: its data key and name are gone at once, the row stays as
// the record, one purge job removes the blob, and the blob key is cleared only by the purge.
func testFilesInfected(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-infected")
	f := k.newFile(t, k.a, "")
	got, err := k.scan(k.a, f.ID, sqlstore.ScanRecord{Status: files.StatusInfected, Result: "Win.Test.EICAR_HDB-1"})
	if err != nil || got.Status != files.StatusInfected || got.ScanResult != "Win.Test.EICAR_HDB-1" || got.ScannedAt == nil ||
		got.WrappedDEK != nil || got.NameSealed != nil {
		t.Fatalf("infected: %+v, %v", got, err)
	}
	raw := readRaw(t, k, f.ID)
	if raw.dek != nil || raw.name != nil || raw.blob == nil || *raw.blob != f.BlobKey || raw.sha != f.SHA256 {
		t.Fatalf("infected row holds dek %x name %x blob %v sha %q", raw.dek, raw.name, raw.blob, raw.sha)
	}
	jobs := pendingFileJobs(t, k.db, files.JobPurge)
	if len(jobs) != 1 || jobs[0].Payload != f.ID || jobs[0].TenantID != k.a {
		t.Fatalf("purge jobs: %+v", jobs)
	}
	// A late scan cannot resurrect it; no link can be made to it.
	_, err = k.scan(k.a, f.ID, clean)
	mustCode(t, err, tutela.ECONFLICT)
	mustCode(t, k.do(k.a, func(s sqlstore.Files) error {
		return s.CreateLink(ctx, &files.Link{FileID: f.ID, Audience: files.AudienceAnyone, ExpiresAt: k.clock.Now().Add(time.Minute)})
	}), tutela.ENOTFOUND)
	// Deleting it before the purge ran adds no second purge.
	k.must(t, k.a, func(s sqlstore.Files) error { _, err := s.Delete(ctx, f.ID); return err })
	if n := purgesOf(t, k.db, f.ID); n != 1 {
		t.Fatalf("%d purge jobs after delete of an infected file", n)
	}
	// The purge reports the blob gone: only the key it removed clears it, and only once.
	k.must(t, k.a, func(s sqlstore.Files) error { return s.BlobRemoved(ctx, f.ID, "another-blob") })
	if raw := readRaw(t, k, f.ID); raw.blob == nil {
		t.Fatal("blob key cleared for another key")
	}
	k.must(t, k.a, func(s sqlstore.Files) error { return s.BlobRemoved(ctx, f.ID, f.BlobKey) })
	k.must(t, k.a, func(s sqlstore.Files) error { return s.BlobRemoved(ctx, f.ID, f.BlobKey) })
	if raw := readRaw(t, k, f.ID); raw.blob != nil {
		t.Fatalf("blob key after the purge: %q", *raw.blob)
	}
	// A file that must keep its blob refuses.
	av := k.available(t, k.a, "")
	mustCode(t, k.do(k.a, func(s sqlstore.Files) error { return s.BlobRemoved(ctx, av.ID, av.BlobKey) }), tutela.ECONFLICT)
	if raw := readRaw(t, k, av.ID); raw.blob == nil {
		t.Fatal("an available file lost its blob key")
	}
}

func testFilesDelete(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-delete")
	f := k.available(t, k.a, k.subA)
	l1, l2 := k.link(t, k.a, f.ID, true), k.link(t, k.a, f.ID, false)
	other := k.available(t, k.a, "")
	lo := k.link(t, k.a, other.ID, false)
	k.clock.Add(time.Second)
	var del *files.File
	k.must(t, k.a, func(s sqlstore.Files) (err error) { del, err = s.Delete(ctx, f.ID); return err })
	if del.Status != files.StatusDeleted || del.WrappedDEK != nil || del.NameSealed != nil || del.SHA256 != "" {
		t.Fatalf("deleted: %+v", del)
	}
	raw := readRaw(t, k, f.ID)
	if raw.dek != nil || raw.name != nil || raw.sha != "" || raw.blob == nil {
		t.Fatalf("deleted row holds dek %x name %x sha %q blob %v", raw.dek, raw.name, raw.sha, raw.blob)
	}
	if got := k.get(t, k.a, f.ID); got.Status != files.StatusDeleted {
		t.Fatalf("status %s", got.Status)
	}
	if n := purgesOf(t, k.db, f.ID); n != 1 || len(pendingFileJobs(t, k.db, files.JobPurge)) != 1 {
		t.Fatalf("%d purge jobs for the deleted file", n)
	}
	var links []files.Link
	k.must(t, k.a, func(s sqlstore.Files) (err error) { links, err = s.Links(ctx, f.ID); return err })
	if len(links) != 2 {
		t.Fatalf("links %+v", links)
	}
	for _, l := range links {
		if l.RevokedAt == nil || (l.ID != l1.ID && l.ID != l2.ID) {
			t.Fatalf("a link of the deleted file was not revoked: %+v", l)
		}
	}
	if got := k.fileLink(t, lo.ID); got.RevokedAt != nil {
		t.Fatal("another file's link was revoked")
	}
	mustCode(t, k.do(k.a, func(s sqlstore.Files) error { _, err := s.Delete(ctx, f.ID); return err }), tutela.ENOTFOUND)
	if n := purgesOf(t, k.db, f.ID); n != 1 {
		t.Fatalf("%d purge jobs after a second delete", n)
	}
	_, err := k.scan(k.a, f.ID, clean)
	mustCode(t, err, tutela.ECONFLICT)
}

func (k *filesKit) fileLink(t *testing.T, id string) *files.Link {
	t.Helper()
	var l *files.Link
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { l, err = tx.FileLink(ctx, id); return err }); err != nil {
		t.Fatal(err)
	}
	return l
}

func testFilesLinks(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-links")
	f := k.newFile(t, k.a, "")
	newLink := func() *files.Link {
		return &files.Link{FileID: f.ID, Audience: files.AudienceUser, UserID: tutela.NewID(), KeyID: 3,
			ExpiresAt: k.clock.Now().Add(files.DefaultLinkTTL), CreatedBy: "user-1"}
	}
	err := k.do(k.a, func(s sqlstore.Files) error { return s.CreateLink(ctx, newLink()) })
	var e *tutela.Error
	if !errors.As(err, &e) || e.Code != tutela.EQUARANTINED || e.Reason != files.QuarantinePending {
		t.Fatalf("a link to a quarantined file: %v, want file_quarantined with reason scan_pending", err)
	}
	if _, err := k.scan(k.a, f.ID, sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineLimit}); err != nil {
		t.Fatal(err)
	}
	err = k.do(k.a, func(s sqlstore.Files) error { return s.CreateLink(ctx, newLink()) })
	if !errors.As(err, &e) || e.Code != tutela.EQUARANTINED || e.Reason != files.QuarantineLimit {
		t.Fatalf("after a scan without verdict: %v, want reason scanner_limit", err)
	}
	if n := countRows(t, k.db, "file_links"); n != 0 {
		t.Fatalf("%d links stored for a quarantined file", n)
	}
	if _, err := k.scan(k.a, f.ID, clean); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(l *files.Link){
		"audience":          func(l *files.Link) { l.Audience = "everyone" },
		"user link no user": func(l *files.Link) { l.UserID = "" },
		"anyone with user":  func(l *files.Link) { l.Audience = files.AudienceAnyone },
		"expired":           func(l *files.Link) { l.ExpiresAt = k.clock.Now().Add(-time.Second) },
		"too long":          func(l *files.Link) { l.ExpiresAt = k.clock.Now().Add(files.MaxLinkTTL + time.Hour) },
		"created by":        func(l *files.Link) { l.CreatedBy = "a\tb" },
	} {
		l := newLink()
		spoil(l)
		if err := k.do(k.a, func(s sqlstore.Files) error { return s.CreateLink(ctx, l) }); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	// A caller may choose the ID (intake signs a token over it before storing the link), but
	// only a valid one; none: one is assigned.
	l := newLink()
	l.ID = "chosen-by-caller"
	if err := k.do(k.a, func(s sqlstore.Files) error { return s.CreateLink(ctx, l) }); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("invalid chosen ID: %v", err)
	}
	chosen := tutela.NewID()
	l = newLink()
	l.ID = chosen
	k.must(t, k.a, func(s sqlstore.Files) error { return s.CreateLink(ctx, l) })
	if l.ID != chosen {
		t.Fatalf("chosen ID %s replaced by %s", chosen, l.ID)
	}
	l = newLink()
	k.must(t, k.a, func(s sqlstore.Files) error { return s.CreateLink(ctx, l) })
	if !tutela.ValidID(l.ID) || l.TenantID != k.a || !l.CreatedAt.Equal(k.clock.Now().UTC().Truncate(time.Microsecond)) {
		t.Fatalf("created link %+v", l)
	}
	// The public route finds it without knowing the tenant, as stored.
	got := k.fileLink(t, l.ID)
	if got.TenantID != k.a || got.FileID != f.ID || got.UserID != l.UserID || got.KeyID != 3 || got.Audience != files.AudienceUser ||
		!got.ExpiresAt.Equal(l.ExpiresAt) || got.UsedAt != nil || got.RevokedAt != nil || got.CreatedBy != "user-1" {
		t.Fatalf("FileLink %+v, want %+v", got, l)
	}
	k.clock.Add(time.Second)
	l2 := k.link(t, k.a, f.ID, true)
	var links []files.Link
	k.must(t, k.a, func(s sqlstore.Files) (err error) { links, err = s.Links(ctx, f.ID); return err })
	if len(links) != 3 || links[0].ID != l2.ID || !slices.ContainsFunc(links[1:], func(x files.Link) bool { return x.ID == l.ID }) ||
		!slices.ContainsFunc(links[1:], func(x files.Link) bool { return x.ID == chosen }) {
		t.Fatalf("links newest first: %+v", links)
	}
	k.must(t, k.a, func(s sqlstore.Files) error { return s.RevokeLink(ctx, f.ID, l.ID) })
	revokedAt := k.fileLink(t, l.ID).RevokedAt
	if revokedAt == nil {
		t.Fatal("not revoked")
	}
	k.clock.Add(time.Minute)
	k.must(t, k.a, func(s sqlstore.Files) error { return s.RevokeLink(ctx, f.ID, l.ID) })
	if again := k.fileLink(t, l.ID).RevokedAt; !again.Equal(*revokedAt) {
		t.Fatalf("a second revocation moved revoked_at %v → %v", revokedAt, again)
	}
	// A link of this file through another file of the tenant is not found.
	g := k.available(t, k.a, "")
	mustCode(t, k.do(k.a, func(s sqlstore.Files) error { return s.RevokeLink(ctx, g.ID, l2.ID) }), tutela.ENOTFOUND)
	if k.fileLink(t, l2.ID).RevokedAt != nil {
		t.Fatal("revoked through another file")
	}
	mustCode(t, k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.FileLink(ctx, tutela.NewID()); return err }), tutela.ENOTFOUND)
}

func (k *filesKit) use(l *files.Link) error {
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UseFileLink(ctx, l) })
}

func testFilesLinkSingleUse(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-once")
	f := k.available(t, k.a, "")
	once := k.link(t, k.a, f.ID, true)
	if err := k.use(k.fileLink(t, once.ID)); err != nil {
		t.Fatal(err)
	}
	if k.fileLink(t, once.ID).UsedAt == nil {
		t.Fatal("used_at not set")
	}
	mustCode(t, k.use(k.fileLink(t, once.ID)), tutela.ELINKGONE)
	// A stale copy read before the first use loses too: the row decides, not the caller's copy.
	mustCode(t, k.use(once), tutela.ELINKGONE)
	many := k.link(t, k.a, f.ID, false)
	for range 3 {
		if err := k.use(many); err != nil {
			t.Fatal(err)
		}
	}
	if k.fileLink(t, many.ID).UsedAt != nil {
		t.Fatal("a multi-use link was marked used")
	}
	revoked := k.link(t, k.a, f.ID, true)
	k.must(t, k.a, func(s sqlstore.Files) error { return s.RevokeLink(ctx, f.ID, revoked.ID) })
	mustCode(t, k.use(revoked), tutela.ELINKGONE)
	expiring := k.link(t, k.a, f.ID, true)
	k.clock.Add(files.DefaultLinkTTL + time.Second)
	mustCode(t, k.use(expiring), tutela.ELINKGONE)
	if k.fileLink(t, expiring.ID).UsedAt != nil || k.fileLink(t, revoked.ID).UsedAt != nil {
		t.Fatal("a refused use was recorded")
	}
	// The tenant recorded on the caller's copy must be the link's.
	wrong := k.link(t, k.a, f.ID, true)
	forged := *wrong
	forged.TenantID = k.b
	mustCode(t, k.use(&forged), tutela.ELINKGONE)
	if err := k.use(wrong); err != nil {
		t.Fatal(err)
	}
}

func testFilesLinkConcurrent(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-race")
	f := k.available(t, k.a, "")
	l := k.link(t, k.a, f.ID, true)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
				got, err := tx.FileLink(ctx, l.ID)
				if err != nil {
					return err
				}
				return tx.UseFileLink(ctx, got)
			})
			if err == nil {
				wins.Add(1)
			} else if tutela.ErrorCode(err) != tutela.ELINKGONE {
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("single-use link used %d times, want exactly once", wins.Load())
	}
}

// Erasing a subject erases exactly that subject's files: no data key, name or hash left, their
// links revoked, one purge per blob; another subject's and the tenant's own files stay.
func testFilesErasure(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-erase")
	subA2 := k.create(t, k.a, map[string]string{"full_name": "Mary Somerville"})
	mine := []*files.File{k.available(t, k.a, k.subA), k.newFile(t, k.a, k.subA)}
	infected := k.newFile(t, k.a, k.subA)
	if _, err := k.scan(k.a, infected.ID, sqlstore.ScanRecord{Status: files.StatusInfected, Result: "Eicar"}); err != nil {
		t.Fatal(err)
	}
	mine = append(mine, infected)
	gone := k.available(t, k.a, k.subA)
	k.must(t, k.a, func(s sqlstore.Files) error { _, err := s.Delete(ctx, gone.ID); return err })
	l := k.link(t, k.a, mine[0].ID, false)
	others := []*files.File{k.available(t, k.a, subA2), k.available(t, k.a, ""), k.available(t, k.b, k.subB)}
	lo := k.link(t, k.a, others[0].ID, false)
	purgesBefore := len(pendingFileJobs(t, k.db, files.JobPurge))

	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.a).Erase(ctx, k.subA, "the subject asked", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
		return err
	})
	for _, f := range mine {
		got := k.get(t, k.a, f.ID)
		raw := readRaw(t, k, f.ID)
		if got.Status != files.StatusErased || raw.dek != nil || raw.name != nil || raw.sha != "" {
			t.Fatalf("subject's file after erasure: %s dek %x name %x sha %q", got.Status, raw.dek, raw.name, raw.sha)
		}
	}
	if got := k.get(t, k.a, gone.ID); got.Status != files.StatusDeleted {
		t.Fatalf("an already deleted file became %s", got.Status)
	}
	if k.fileLink(t, l.ID).RevokedAt == nil {
		t.Fatal("the erased file's link was not revoked")
	}
	for _, f := range others {
		tn := k.a
		if f.SubjectID == k.subB {
			tn = k.b
		}
		got, raw := k.get(t, tn, f.ID), readRaw(t, k, f.ID)
		if got.Status != files.StatusAvailable || raw.dek == nil || raw.name == nil || raw.sha != f.SHA256 {
			t.Fatalf("another file changed by the erasure: %+v", got)
		}
	}
	if k.fileLink(t, lo.ID).RevokedAt != nil {
		t.Fatal("another subject's link was revoked")
	}
	// One purge each for the two with a blob and no pending purge; the infected one has its own.
	for _, f := range mine {
		if n := purgesOf(t, k.db, f.ID); n != 1 {
			t.Fatalf("%d purge jobs for erased file %s", n, f.ID)
		}
	}
	if n := len(pendingFileJobs(t, k.db, files.JobPurge)); n != purgesBefore+2 {
		t.Fatalf("purge jobs %d → %d, want 2 more", purgesBefore, n)
	}
	// Re-applying the ledger to this database changes nothing more.
	if n := applyLedger(t, k.db, ledgerOf(t, k.db, k.a)...); n != 0 {
		t.Fatalf("re-applied %d erasures to a database that holds them", n)
	}
	if n := len(pendingFileJobs(t, k.db, files.JobPurge)); n != purgesBefore+2 {
		t.Fatalf("purge jobs after a re-application: %d", n)
	}
}

// A backup restored from before an erasure holds the subject's files live; re-applying the
// published ledger erases them as the original erasure did.
func testFilesErasureReapplied(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-restore")
	f := k.available(t, k.a, k.subA)
	l := k.link(t, k.a, f.ID, false)
	kept := k.available(t, k.a, "")
	if n := applyLedger(t, k.db, ledgerEntry(k.db, k.a, k.subA, sqlstore.PersonSubject)); n != 1 {
		t.Fatalf("re-applied %d", n)
	}
	raw := readRaw(t, k, f.ID)
	if got := k.get(t, k.a, f.ID); got.Status != files.StatusErased || raw.dek != nil || raw.name != nil || raw.sha != "" {
		t.Fatalf("restored file after re-application: %+v", got)
	}
	if k.fileLink(t, l.ID).RevokedAt == nil || purgesOf(t, k.db, f.ID) != 1 {
		t.Fatal("link not revoked or blob not purged")
	}
	if got := k.get(t, k.a, kept.ID); got.Status != files.StatusAvailable {
		t.Fatalf("the tenant's own file became %s", got.Status)
	}
}

// The files keyset rotates like any other: the rewrap sources cover the data keys and names of
// files that belong to no subject (a subject's are sealed with the subject's key and are left
// alone), only the rotated tenant's are outdated, and everything opens after retirement.
func testFilesRewrap(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-rewrap")
	seal := func(tenantID string, f *files.File) {
		t.Helper()
		f.ID = tutela.NewID()
		var err error
		if f.WrappedDEK, err = k.vault.Encrypt(ctx, tenantID, vault.PurposeFiles, []byte("dek-"+f.ID), sqlstore.FileDEKAAD(f.ID)); err != nil {
			t.Fatal(err)
		}
		if f.NameSealed, err = k.vault.Encrypt(ctx, tenantID, vault.PurposeFiles, []byte("name-"+f.ID), sqlstore.FileNameAAD(f.ID)); err != nil {
			t.Fatal(err)
		}
		k.must(t, tenantID, func(s sqlstore.Files) error { return s.Create(ctx, f) })
	}
	var mine []*files.File
	for range 2 {
		f := k.draft("")
		seal(k.a, f)
		mine = append(mine, f)
	}
	theirs := k.draft("")
	seal(k.b, theirs)
	subjects := k.newFile(t, k.a, k.subA) // sealed with the subject's key in real use
	if _, err := k.vault.Rotate(ctx, k.a, vault.PurposeFiles); err != nil {
		t.Fatal(err)
	}
	settle(k.clock, k.vault)
	srcs := sqlstore.FilesSources(k.db)
	if len(srcs) != 2 {
		t.Fatalf("%d sources", len(srcs))
	}
	for _, src := range srcs {
		if n, err := k.vault.Outdated(ctx, src, k.a, vault.PurposeFiles); err != nil || n != 2 {
			t.Fatalf("%s: Outdated = %d, %v; want 2", src.Name(), n, err)
		}
		pr, err := k.vault.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 1})
		if err != nil || pr.Rewrapped != 2 {
			t.Fatalf("%s: rewrap %+v, %v; want 2 rewrapped", src.Name(), pr, err)
		}
		if n, err := k.vault.Outdated(ctx, src, k.a, vault.PurposeFiles); err != nil || n != 0 {
			t.Fatalf("%s: Outdated after rewrap = %d, %v", src.Name(), n, err)
		}
	}
	if _, err := k.vault.Retire(ctx, k.a, vault.PurposeFiles); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(mine, theirs) {
		tn := k.a
		if f == theirs {
			tn = k.b
		}
		got := k.get(t, tn, f.ID)
		dek, err := k.vault.Decrypt(ctx, tn, vault.PurposeFiles, got.WrappedDEK, sqlstore.FileDEKAAD(f.ID))
		if err != nil || string(dek) != "dek-"+f.ID {
			t.Fatalf("data key after rewrap and retire: %q, %v", dek, err)
		}
		name, err := k.vault.Decrypt(ctx, tn, vault.PurposeFiles, got.NameSealed, sqlstore.FileNameAAD(f.ID))
		if err != nil || string(name) != "name-"+f.ID {
			t.Fatalf("name after rewrap and retire: %q, %v", name, err)
		}
		if f == theirs && !bytes.Equal(got.WrappedDEK, theirs.WrappedDEK) {
			t.Fatal("tenant B's data key was rewritten by A's rotation")
		}
		if f != theirs && bytes.Equal(got.WrappedDEK, f.WrappedDEK) {
			t.Fatal("data key not rewritten")
		}
	}
	// A data key moved to another file's row does not open there.
	if _, err := k.vault.Decrypt(ctx, k.a, vault.PurposeFiles, k.get(t, k.a, mine[0].ID).WrappedDEK, sqlstore.FileDEKAAD(mine[1].ID)); err == nil {
		t.Fatal("a data key opened under another file's associated data")
	}
	if got := k.get(t, k.a, subjects.ID); !bytes.Equal(got.WrappedDEK, subjects.WrappedDEK) || !bytes.Equal(got.NameSealed, subjects.NameSealed) {
		t.Fatal("a subject's file was rewrapped with the tenant keyset")
	}
}

// whileHeld runs first in a transaction that stays open until second is waiting for a row lock
// (PostgreSQL), then commits it and returns second's error: the interleaving a missing lock
// would let second slip through.
func whileHeld(t *testing.T, db *sqlstore.DB, first func(*sqlstore.Tx) error, second func() error) error {
	t.Helper()
	held, release, firstDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		firstDone <- db.Update(ctx, func(tx *sqlstore.Tx) error {
			if err := first(tx); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	select {
	case <-held:
	case err := <-firstDone:
		t.Fatalf("first transaction: %v", err)
	}
	secondDone := make(chan error, 1)
	go func() { secondDone <- second() }()
	waitForLockWaiter(t, db)
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	return <-secondDone
}

// A file created for a subject while the subject is being erased waits for the erasure and is
// refused: it can neither slip in under the erased subject nor escape its files' erasure.
func testFilesCreateRacesErasure(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-race-erase")
	if k.db.Dialect() != sqlstore.Postgres {
		t.Skip("one writer: transactions cannot interleave")
	}
	err := whileHeld(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.a).Erase(ctx, k.subA, "the subject asked", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
		return err
	}, func() error {
		return k.do(k.a, func(s sqlstore.Files) error { return s.Create(ctx, k.draft(k.subA)) })
	})
	mustCode(t, err, tutela.ENOTFOUND)
	if n := countRows(t, k.db, "files"); n != 0 {
		t.Fatalf("%d files of the erased subject", n)
	}
}

// A link created while its file is being deleted waits for the deletion and is refused: the
// deletion's revocation of every link cannot miss it.
func testFilesLinkRacesDelete(t *testing.T, open Opener) {
	k := newFilesKit(t, open, "files-race-delete")
	if k.db.Dialect() != sqlstore.Postgres {
		t.Skip("one writer: transactions cannot interleave")
	}
	f := k.available(t, k.a, "")
	err := whileHeld(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Files(k.a).Delete(ctx, f.ID)
		return err
	}, func() error {
		return k.do(k.a, func(s sqlstore.Files) error {
			return s.CreateLink(ctx, &files.Link{FileID: f.ID, Audience: files.AudienceAnyone, ExpiresAt: k.clock.Now().Add(time.Minute)})
		})
	})
	mustCode(t, err, tutela.ENOTFOUND)
	if n := countRows(t, k.db, "file_links"); n != 0 {
		t.Fatalf("%d links to the deleted file", n)
	}
}
