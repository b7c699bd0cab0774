package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tutela/audit"
	"tutela/clocktest"
)

// Regression (issue 19): `audit verify` records its own result as an audit event. With no node
// running, that event stayed unsequenced, so a second verify more than the sequencer grace later
// failed on "unsequenced" and recorded a failure: a false audit_verify_failed produced by verify
// itself. Now the command sequences what it recorded when no sequencer is alive, as `audit
// sequence` does, and verify after verify (and after backup test) stays OK.
func TestAuditVerify_RepeatedWithNoNodeStaysOK(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	seedSource(t, environ, sqliteDSN(environ))
	clock := clocktest.New(time.Now().UTC().Add(time.Minute))
	if code, out, stderr := runCmdAt(t, environ, clock.Now, "audit", "sequence"); code != 0 {
		t.Fatalf("audit sequence: %s %s", out, stderr)
	}
	verify := func(step string) {
		t.Helper()
		clock.Add(6 * time.Second)
		code, out, stderr := runCmdAt(t, environ, clock.Now, "audit", "verify")
		if code != 0 || !strings.Contains(out, "result:      OK") {
			t.Fatalf("%s: exit %d\n%s%s", step, code, out, stderr)
		}
	}
	verify("first verify")
	verify("second verify, 6 s later")

	// backup test records its result in the live database too.
	rcpt, idFile := ageKey(t)
	file := filepath.Join(t.TempDir(), "tutela.backup")
	if code, out, stderr := runCmdAt(t, environ, clock.Now, "backup", "create", file, "--recipient", rcpt); code != 0 {
		t.Fatalf("backup create: %s %s", out, stderr)
	}
	if code, out, stderr := runCmdAt(t, environ, clock.Now, "audit", "sequence"); code != 0 { // backup create's record
		t.Fatalf("audit sequence: %s %s", out, stderr)
	}
	if code, out, stderr := runCmdAt(t, environ, clock.Now, "backup", "test", file, "--identity", idFile); code != 0 {
		t.Fatalf("backup test: %s %s", out, stderr)
	}
	verify("verify after backup test")

	var failures, pending int
	db := openDB(t, environ)
	ctx := context.Background()
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM compliance_evidence WHERE outcome = 'failure'`).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_events e WHERE NOT EXISTS
		(SELECT 1 FROM audit_log l WHERE l.event_id = e.id)`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if failures != 0 || pending != 0 {
		t.Fatalf("%d failures recorded, %d events left pending; want none", failures, pending)
	}
}

// Without the audit key in the data directory the command cannot sequence: it warns, keeps the
// events pending (it never creates a key) and still succeeds.
func TestAuditIdleSequence_NoKeyWarnsAndKeepsPending(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	seedSource(t, environ, sqliteDSN(environ))
	code, vkey, stderr := runCmd(t, environ, "audit", "key")
	if code != 0 {
		t.Fatalf("audit key: %s", stderr)
	}
	if code, out, stderr := runCmd(t, environ, "audit", "sequence"); code != 0 {
		t.Fatalf("audit sequence: %s %s", out, stderr)
	}
	keyPath := filepath.Join(dataDirOf(environ), audit.KeyFile)
	if err := os.Rename(keyPath, filepath.Join(t.TempDir(), audit.KeyFile)); err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(time.Now().UTC().Add(time.Minute))
	code, out, stderr := runCmdAt(t, environ, clock.Now, "audit", "verify", "--key", strings.TrimSpace(vkey))
	if code != 0 || !strings.Contains(stderr, "the audit key is not at "+keyPath) || !strings.Contains(stderr, "1 events stay pending") {
		t.Fatalf("audit verify without the audit key: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an audit key was created: %v", err)
	}
	var pending int
	if err := openDB(t, environ).SQL().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM audit_events e WHERE NOT EXISTS
		(SELECT 1 FROM audit_log l WHERE l.event_id = e.id)`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 1 { // verify's own record
		t.Fatalf("%d events pending, want 1", pending)
	}
}
