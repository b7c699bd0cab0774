package main

import (
	"strings"
	"testing"
)

// The CLI reports what the schedule did or would do (the store behaviour is in the
// conformance suite, RetentionScheduleErasesExpiredSkipsHeldKeepsUnexpired).
func TestPrivacyRetentionRun_Reports(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	code, out, stderr := runCmd(t, environ, "privacy", "retention", "run", "--dry-run")
	if code != 0 || !strings.Contains(out, "would erase 0 subject(s); 0 kept by a legal hold") {
		t.Fatalf("dry run: %d %q %q", code, out, stderr)
	}
	code, out, stderr = runCmd(t, environ, "privacy", "retention", "run")
	if code != 0 || !strings.Contains(out, "retention schedule: erased 0 subject(s); 0 kept by a legal hold; 0 repaired; 0 failed subject(s)") {
		t.Fatalf("run: %d %q %q", code, out, stderr)
	}
}
