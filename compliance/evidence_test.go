package compliance_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"tutela/compliance"
	"tutela/config"
)

func evidenceValue(c compliance.Control, item string) string {
	for _, e := range c.Evidence {
		if e.Item == item {
			return e.Value
		}
	}
	return ""
}

// Recorded details come back from JSON as float64: a backup's size prints as an integer
// (bytes=1381400), not 1.3814e+06; a fraction stays a fraction.
func TestBuild_EvidenceNumbersPrintAsWritten(t *testing.T) {
	t.Parallel()
	st := state()
	st.Backup.Details = map[string]any{"bytes": float64(1381400), "recipients": float64(2), "ratio": 0.25}
	c := find(t, compliance.Build(config.Default(), compliance.Runtime{}, st, false, now), compliance.CtlBackups, "")
	got := evidenceValue(c, "last encrypted backup")
	for _, want := range []string{"bytes=1381400", "recipients=2", "ratio=0.25"} {
		if !strings.Contains(got, want) {
			t.Errorf("backup evidence %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "e+") {
		t.Errorf("backup evidence %q prints a number in exponent form", got)
	}
}

// A PostgreSQL restore test that only decrypted the backup and checked its hashes is not a
// restore: backups are partial, and the close text names the full restore test. An SQLite one
// (loaded and opened) is met; an older PostgreSQL record without "loaded" counts as not loaded.
func TestBuild_PostgresRestoreTestNotLoadedIsPartial(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		details map[string]any
		want    compliance.Status
	}{
		{"postgres not loaded", map[string]any{"dialect": "postgres", "loaded": false, "checked": "decrypted and hash-checked only, not loaded"}, compliance.Partial},
		{"postgres record before loaded", map[string]any{"dialect": "postgres"}, compliance.Partial},
		{"sqlite loaded", map[string]any{"dialect": "sqlite", "loaded": true, "checked": "decrypted, hash-checked, loaded and opened"}, compliance.Met},
	} {
		st := state()
		st.RestoreTest.Details = tc.details
		c := find(t, compliance.Build(config.Default(), compliance.Runtime{}, st, false, now), compliance.CtlBackups, "")
		if c.Status != tc.want {
			t.Errorf("%s: status %s, want %s (close %q)", tc.name, c.Status, tc.want, c.Close)
		}
		closeText := strings.Join(c.Close, "\n")
		if tc.want == compliance.Partial && (!strings.Contains(closeText, "did not load it") ||
			!strings.Contains(closeText, "`tutela backup restore --identity KEYFILE FILE` into a scratch database")) {
			t.Errorf("%s: close text %q does not name the full restore test", tc.name, closeText)
		}
		if ev := evidenceValue(c, "last restore test"); tc.details["checked"] != nil && !strings.Contains(ev, "checked="+tc.details["checked"].(string)) {
			t.Errorf("%s: evidence %q does not say what was checked", tc.name, ev)
		}
	}
}

var docRefRE = regexp.MustCompile(`docs/[A-Za-z0-9_/.-]+\.md(#[a-z0-9-]+)?`)

// headingSlug is the anchor GitHub gives a Markdown heading.
func headingSlug(h string) string {
	h = strings.ToLower(strings.TrimSpace(strings.TrimLeft(h, "#")))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// Every document a close text points at exists, and so does the section its anchor names: a
// failed verification points at the runbook for it (regression: it named a section of
// docs/audit.md that does not exist).
func TestBuild_CloseTextsPointAtExistingRunbookSections(t *testing.T) {
	t.Parallel()
	st := state()
	st.AuditVerify.Outcome = compliance.OutcomeFailure
	st.Backup = nil
	r := compliance.Build(config.Default(), compliance.Runtime{}, st, false, now)
	var refs []string
	for _, c := range r.Controls {
		for _, s := range c.Close {
			refs = append(refs, docRefRE.FindAllString(s, -1)...)
		}
	}
	if !slices.Contains(refs, "docs/RUNBOOKS.md#audit-verification-failure") {
		t.Fatalf("the failed verification does not point at its runbook: %v", refs)
	}
	for _, ref := range refs {
		file, anchor, _ := strings.Cut(ref, "#")
		b, err := os.ReadFile("../" + file)
		if err != nil {
			t.Errorf("close text names %s: %v", ref, err)
			continue
		}
		if anchor == "" {
			continue
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "#") && headingSlug(line) == anchor {
				found = true
			}
		}
		if !found {
			t.Errorf("close text names %s: no such section in %s", ref, file)
		}
	}
}
