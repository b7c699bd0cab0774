package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tutela/audit"
)

// `compliance verify --key /dev/null` says --key takes the verifier key string (as `tutela
// audit key` prints it), not "malformed note key"; a report with a newline added at the end fails
// the `format` check, as docs/compliance.md says; a report checked against another log's key is
// "not by this key".
func TestComplianceVerify_KeyAndTrailingNewlineMessages(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	seedSource(t, environ, sqliteDSN(environ))
	html := filepath.Join(t.TempDir(), "report.html")
	if code, _, stderr := runCmd(t, environ, "compliance", "report", "--format", "html", "--out", html); code != 0 {
		t.Fatalf("html report: %s", stderr)
	}
	code, out, stderr := runCmd(t, environ, "compliance", "verify", html, "--key", "/dev/null")
	if code != 1 || !strings.Contains(stderr, "--key is malformed") || !strings.Contains(stderr, "`tutela audit key`") ||
		strings.Contains(out+stderr, "note key") {
		t.Errorf("--key /dev/null: exit %d %s %s", code, out, stderr)
	}

	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "edited.html")
	if err := os.WriteFile(edited, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCmd(t, environ, "compliance", "verify", edited)
	if code != 1 || !strings.Contains(out, "result: FAILED (format check)") || !strings.Contains(out, "1 byte(s) follow the signature line") {
		t.Errorf("trailing newline: exit %d %s %s", code, out, stderr)
	}

	_, vkey, err := audit.GenerateKey(AuditOrigin) // another deployment's log key
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCmd(t, environ, "compliance", "verify", html, "--key", vkey)
	if code != 1 || !strings.Contains(out, "result: FAILED (signature check)") || !strings.Contains(out, "the report's signature is not by this key") {
		t.Errorf("another key: exit %d %s %s", code, out, stderr)
	}
}
