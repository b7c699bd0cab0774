package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tutela/audit"
	"tutela/monitor"
	"tutela/sqlstore"
)

// auditRun runs an audit subcommand in-process (until auditCmd is wired into the cli struct,
// through its Run method with the same env run would build).
func auditRun(t *testing.T, environ []string, cmd interface{ Run(*env) error }) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cmd.Run(&env{ctx: context.Background(), environ: environ, stdout: &out, stderr: &errb})
	return out.String() + errb.String(), err
}

func TestAuditCommands_VerifyExportPruneAndDetectTampering(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	dataDir := strings.TrimPrefix(environ[0], "TUTELA_DATA_DIR=")
	if code, _, stderr := runCmd(t, environ, "migrate", "up"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(dataDir, "tutela.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		ev := audit.Event{ActorType: audit.ActorSystem, Action: fmt.Sprintf("test.%d", i), Outcome: audit.OutcomeSuccess}
		if i < 2 {
			ev.Time = old
		}
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, ev) }); err != nil {
			t.Fatal(err)
		}
	}
	// Six test events, plus the vault's creation of the keyset that seals the audit key (every
	// key operation is audited).
	if out, err := auditRun(t, environ, auditSequenceCmd{}); err != nil || !strings.Contains(out, "sequenced 7 events") {
		t.Fatalf("sequence: %s %v", out, err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, audit.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit.key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "checkpoints", "7.checkpoint")); err != nil {
		t.Fatalf("checkpoint not published: %v", err)
	}
	out, err := auditRun(t, environ, auditVerifyCmd{})
	if err != nil || !strings.Contains(out, "result:      OK") || !strings.Contains(out, "1 published") {
		t.Fatalf("verify: %s %v", out, err)
	}
	vkey, _ := auditRun(t, environ, auditKeyCmd{})
	vkey = strings.TrimSpace(vkey)

	bundle := filepath.Join(t.TempDir(), "bundle.jsonl")
	if out, err := auditRun(t, environ, auditExportCmd{From: 1, To: 4, File: bundle}); err != nil {
		t.Fatalf("export: %s %v", out, err)
	}
	if out, err := auditRun(t, nil, auditVerifyCmd{Bundle: bundle, Key: vkey}); err != nil || !strings.Contains(out, "4 entries") {
		t.Fatalf("verify bundle: %s %v", out, err)
	}
	_, otherVkey, _ := audit.GenerateKey(AuditOrigin)
	if _, err := auditRun(t, nil, auditVerifyCmd{Bundle: bundle, Key: otherVkey}); err == nil {
		t.Fatal("bundle verified under another key")
	}

	if out, err := auditRun(t, environ, auditPruneCmd{Before: "2021-01-01"}); err != nil || !strings.Contains(out, "bodies of 2 events") {
		t.Fatalf("prune: %s %v", out, err)
	}
	_, _ = auditRun(t, environ, auditSequenceCmd{})
	if out, err := auditRun(t, environ, auditVerifyCmd{}); err != nil || !strings.Contains(out, "pruned:      2") {
		t.Fatalf("verify after prune: %s %v", out, err)
	}

	// Change one byte of entry 3 behind the triggers' back: verify names it and fails.
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`,
		`UPDATE audit_events SET canonical = replace(canonical, 'test.3', 'test.X') WHERE action = 'test.3'`} {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	out, err = auditRun(t, environ, auditVerifyCmd{})
	if err == nil || !strings.Contains(err.Error(), "first: index 3 event ") || !strings.Contains(err.Error(), audit.KindContentMismatch) {
		t.Fatalf("tampered log: err %v\n%s", err, out)
	}
	// The failure is itself recorded (compliance.audit_verified, outcome failure), for security monitoring to alert on.
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: monitor.ActionAuditVerifyFailed})
	var failed []sqlstore.AuditRecord
	for _, r := range recs {
		if r.Event.Outcome == audit.OutcomeFailure {
			failed = append(failed, r)
		}
	}
	if err != nil || len(failed) != 1 || fmt.Sprint(failed[0].Event.Details["first_failure"]) != audit.KindContentMismatch {
		t.Fatalf("failed verifications recorded %+v, %v", failed, err)
	}
}
