package compliance_test

import (
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
