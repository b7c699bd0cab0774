package deploy

import (
	"encoding/base64"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		User        string            `yaml:"user"`
		ReadOnly    bool              `yaml:"read_only"`
		CapDrop     []string          `yaml:"cap_drop"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test    []string `yaml:"test"`
			Disable bool     `yaml:"disable"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	// Top-level keys of the Compose specification; a misspelt one would be ignored by Compose.
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	for k := range top {
		if !contains([]string{"name", "services", "networks", "volumes", "secrets", "configs"}, k) {
			t.Errorf("compose.yaml: unknown top-level key %q", k)
		}
	}
	return c
}

// CI has no container engine, so the compose file is checked for what matters: the official
// PostgreSQL image with a health check the API waits for, TLS to the database, and every secret
// read from a generated file, none written in the file or checked in.
func TestCompose_PostgresHealthySecretsFromFilesNoPasswords(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	pg, ok := c.Services["postgres"]
	if !ok {
		t.Fatal("no postgres service")
	}
	if !strings.HasPrefix(pg.Image, "docker.io/library/postgres:") {
		t.Errorf("postgres image %q is not the official image", pg.Image)
	}
	if len(pg.Healthcheck.Test) == 0 || pg.Healthcheck.Disable || !strings.Contains(strings.Join(pg.Healthcheck.Test, " "), "pg_isready") {
		t.Errorf("postgres health check %v", pg.Healthcheck.Test)
	}
	if pg.Environment["POSTGRES_PASSWORD"] != "" || pg.Environment["POSTGRES_PASSWORD_FILE"] != "/run/secrets/db_password" {
		t.Errorf("postgres password not from the db_password secret: %v", pg.Environment)
	}
	tu, ok := c.Services["tutela"]
	if !ok {
		t.Fatal("no tutela service")
	}
	if hc := strings.Join(tu.Healthcheck.Test, " "); tu.Healthcheck.Disable || !strings.HasPrefix(hc, "CMD /usr/local/bin/tutela health") {
		t.Errorf("tutela health check %q, want the binary's own probe", hc)
	}
	if tu.DependsOn["postgres"].Condition != "service_healthy" {
		t.Errorf("tutela depends_on postgres %q, want service_healthy", tu.DependsOn["postgres"].Condition)
	}
	if uid, _, _ := strings.Cut(tu.User, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("tutela runs as %q", tu.User)
	}
	if !tu.ReadOnly || len(tu.CapDrop) != 1 || tu.CapDrop[0] != "ALL" {
		t.Errorf("tutela container: read_only %v cap_drop %v", tu.ReadOnly, tu.CapDrop)
	}
	dsn, err := url.Parse(tu.Environment["TUTELA_DATABASE_URL"])
	if err != nil || dsn.Host != "postgres:5432" || dsn.Query().Get("sslmode") != "verify-full" {
		t.Errorf("DSN %q: want the postgres service with sslmode=verify-full", tu.Environment["TUTELA_DATABASE_URL"])
	}
	if _, has := dsn.User.Password(); has {
		t.Error("the DSN holds a password")
	}
	for name, svc := range c.Services {
		for k, v := range svc.Environment {
			if secretValue(k, v) {
				t.Errorf("service %s: %s is written in compose.yaml", name, k)
			}
			// Every *_FILE and sslrootcert points at a secret this service mounts.
			for _, ref := range append([]string{v}, queryFiles(v)...) {
				if !strings.HasPrefix(ref, "/run/secrets/") {
					continue
				}
				s := strings.TrimPrefix(ref, "/run/secrets/")
				if !contains(svc.Secrets, s) {
					t.Errorf("service %s: %s reads %s, a secret it does not mount", name, k, ref)
				}
			}
		}
		for _, s := range svc.Secrets {
			if _, ok := c.Secrets[s]; !ok {
				t.Errorf("service %s mounts undeclared secret %s", name, s)
			}
		}
	}
	ignore, _ := os.ReadFile("compose/.gitignore")
	for name, s := range c.Secrets {
		if !strings.HasPrefix(s.File, "deploy/compose/secrets/") {
			t.Errorf("secret %s comes from %q, not the generated deploy/compose/secrets/", name, s.File)
		}
		if _, err := os.Stat(filepath.Join("..", s.File)); err == nil && tracked(t, s.File) {
			t.Errorf("secret file %s is checked in", s.File)
		}
	}
	if !strings.Contains(string(ignore), "secrets/") {
		t.Error("deploy/compose/.gitignore does not ignore secrets/")
	}
}

func queryFiles(v string) []string {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" {
		return nil
	}
	return []string{u.Query().Get("sslrootcert")}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func tracked(t *testing.T, path string) bool {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "ls-files", "--", path).Output()
	return err == nil && strings.TrimSpace(string(out)) != ""
}

// setup.sh writes every secret compose.yaml names, fresh each run: a different password and a
// 256-bit master key each time, certificates the DSN's sslmode=verify-full accepts, a private
// directory; and it refuses to overwrite secrets already there.
func TestComposeSetup_GeneratesEverySecretFresh(t *testing.T) {
	t.Parallel()
	tool(t, "openssl")
	c := loadCompose(t)
	var passwords []string
	for range 2 {
		dir := t.TempDir()
		script := filepath.Join(dir, "setup.sh")
		b, err := os.ReadFile("compose/setup.sh")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(script, b, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("sh", script).CombinedOutput(); err != nil {
			t.Fatalf("setup.sh: %v\n%s", err, out)
		}
		for name, s := range c.Secrets {
			p := filepath.Join(dir, "secrets", filepath.Base(s.File))
			if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
				t.Errorf("secret %s: %s not written (%v)", name, p, err)
			}
		}
		if fi, _ := os.Stat(filepath.Join(dir, "secrets")); fi == nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("secrets directory mode %v, want 0700", fi)
		}
		key, _ := os.ReadFile(filepath.Join(dir, "secrets", "master_key"))
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key))); err != nil || len(raw) != 32 {
			t.Errorf("master_key is not base64 of 32 bytes: %v", err)
		}
		pw, _ := os.ReadFile(filepath.Join(dir, "secrets", "db_password"))
		passwords = append(passwords, string(pw))
		for _, leaf := range []string{"tls.crt", "db.crt"} {
			out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "secrets", "ca.crt"),
				filepath.Join(dir, "secrets", leaf)).CombinedOutput()
			if err != nil {
				t.Errorf("%s does not chain to ca.crt: %s", leaf, out)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "secrets", "ca.key")); err == nil {
			t.Error("the CA's private key was left behind")
		}
		if err := exec.Command("sh", script).Run(); err == nil {
			t.Error("a second run overwrote existing secrets")
		}
	}
	if len(passwords[0]) < 32 || passwords[0] == passwords[1] {
		t.Errorf("database passwords %d chars, equal across runs: %v", len(passwords[0]), passwords[0] == passwords[1])
	}
}
