package intake_test

// Regression test for a review finding (fixed): recordRefusal runs its transaction under
// context.WithoutCancel(ctx) but writes the event with tx.Record(ctx, ...) — the request's own
// context (files/intake/intake.go, recordRefusal). When the uploader hangs up right after the last
// byte (net/http then cancels r.Context()), the file.refused audit insert fails with "context
// canceled" and the refusal of a hostile file is never audited: an attacker probing the inspector
// leaves no trace (ASVS 16.3.x). The same pattern is in Scan (RecordScan(ctx)/tx.Record(ctx)
// inside an Update run WithoutCancel), which leaves a malware verdict unrecorded until the job.

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"tutela/files"
	"tutela/files/intake"
	"tutela/sqlstore"
)

// hangUp cancels the upload's context when the body has been read to its end, as net/http does
// when the client closes the connection after sending.
type hangUp struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (h hangUp) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF {
		h.cancel()
	}
	return n, err
}

func TestUpload_RefusalAuditedWhenClientHangsUp(t *testing.T) {
	t.Parallel()
	k := newKit(t, sqlstore.SQLite, false)
	body := []byte("hello <script>alert(1)</script>\n")
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := k.svc.Upload(cctx, intake.Upload{TenantID: k.tenant, Name: "a.txt", DeclaredType: "text/plain",
		DeclaredSize: -1, UploadedBy: "tester", Body: hangUp{bytes.NewReader(body), cancel}, Policy: files.DefaultPolicy()})
	if files.RefusalReason(err) != files.ReasonHTML {
		t.Fatalf("upload: %v (want a refusal html)", err)
	}
	if !strings.Contains(k.auditActions(t), "file.refused") {
		t.Fatalf("the refusal of a hostile file was not audited (the client hung up): %s", k.auditActions(t))
	}
}
