// Package deploy holds Tutela's packaging (compose.yaml at the repository root, the Helm chart,
// the systemd unit) and the tests that check them without a container engine or a cluster.
package deploy

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// tool finds a program on PATH or in GOPATH/bin (where .ci/run installs helm). Under CI=true a
// missing tool fails the test: a check that silently skips in CI checks nothing.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join(build.Default.GOPATH, "bin", name); isExecutable(p) {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found on PATH or in GOPATH/bin (CI=true: .ci/run installs it)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// secretName matches environment variable names that carry a secret when given as a value. Only
// their _FILE forms (a path) may appear in a manifest, a compose file or a unit.
var secretName = regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|MASTER_KEY|_PIN|PRIVATE)`)

// secretValue reports whether an environment entry puts a secret in plain sight: a secret-named
// variable with a literal value, or any value holding URL credentials (user:password@).
func secretValue(name, value string) bool {
	if strings.HasSuffix(name, "_FILE") {
		return false
	}
	if secretName.MatchString(name) && value != "" {
		return true
	}
	return regexp.MustCompile(`://[^/@\s]+:[^/@\s]+@`).MatchString(value)
}

func TestSecretValue_Rules(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, value string
		want        bool
	}{
		{"TUTELA_DATABASE_PASSWORD", "hunter2", true},
		{"TUTELA_DATABASE_PASSWORD_FILE", "/run/secrets/db_password", false},
		{"TUTELA_MASTER_KEY", "c2VjcmV0", true},
		{"TUTELA_METRICS_TOKEN", "x", true},
		{"TUTELA_DATABASE_URL", "postgres://tutela@db/tutela?sslmode=verify-full", false},
		{"DSN", "postgres://tutela:hunter2@db/tutela", true},
		{"TUTELA_LOG_LEVEL", "info", false},
		{"TUTELA_AUTH_ISSUER", "https://id.example.org", false},
	} {
		if got := secretValue(tt.name, tt.value); got != tt.want {
			t.Errorf("secretValue(%s=%s) = %v, want %v", tt.name, tt.value, got, tt.want)
		}
	}
}
