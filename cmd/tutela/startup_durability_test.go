package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// database.sqlite_synchronous reaches the store the commands open: FULL by default, NORMAL
// when asked, and a value that is neither stops start-up.
func TestStartup_SQLiteSynchronousFromConfig(t *testing.T) {
	t.Parallel()
	for setting, want := range map[string]int{"": 2, "normal": 1, "full": 2} {
		t.Run("setting="+setting, func(t *testing.T) {
			t.Parallel()
			environ := baseEnv(t)
			if setting != "" {
				environ = append(environ, "TUTELA_DATABASE_SQLITE_SYNCHRONOUS="+setting)
			}
			e := &env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: io.Discard}
			m, err := open(e, false)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var got int
			if err := m.DB.SQL().QueryRowContext(e.ctx, `PRAGMA synchronous`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("PRAGMA synchronous = %d, want %d", got, want)
			}
		})
	}
	code, _, stderr := runCmd(t, append(baseEnv(t), "TUTELA_DATABASE_SQLITE_SYNCHRONOUS=off"), "migrate", "status")
	if code == 0 || !strings.Contains(stderr, "database.sqlite_synchronous") {
		t.Fatalf("synchronous=off: exit %d, stderr %q", code, stderr)
	}
}
