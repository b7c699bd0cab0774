package httpapi_test

// Regression test for a review finding (fixed): erasing a subject clears its files' names and
// content hashes from the files table (eraseSubjectFiles / shredFile: "no name, hash or data key
// left"), but intake.receive wrote the same SHA-256 into the file.uploaded audit event next to
// the subject_id (files/intake/intake.go, tx.Record "file.uploaded"). The append-only audit log
// keeps, after erasure, a fingerprint of the erased person's document linked to them (anyone with
// the document, e.g. a leaked passport scan, can confirm it was theirs). The audit log is also
// readable at lower clearance than a RED file.

import (
	"strings"
	"testing"

	"tutela/sqlstore"
)

func TestFiles_ErasureLeavesNoFileHashInAudit(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	subj := fe.create(t)
	f := fe.mustUpload(t, "passport.png", "image/png", pngBytes, "?subject_id="+subj)
	if f.SHA256 == "" {
		t.Fatal("no hash")
	}
	if res, b := fe.req(t, "DELETE", fe.base+"/subjects/"+subj, `{"reason":"asked by the person","legal_basis":"GDPR Art. 17(1)(a)"}`, "", fe.root); res.StatusCode != 200 && res.StatusCode != 204 {
		t.Fatalf("erase: %d %s", res.StatusCode, b)
	}
	res, b := fe.req(t, "GET", fe.base+"/files/"+f.ID, "", "", fe.operator)
	if res.StatusCode != 200 || strings.Contains(string(b), f.SHA256) {
		t.Fatalf("files row after erasure: %d %s", res.StatusCode, b)
	}
	if strings.Contains(fe.auditText(t), f.SHA256) {
		t.Fatalf("the erased subject's file hash %s is still in the audit log (file.uploaded)", f.SHA256)
	}
}
