package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"tutela/password"
)

func TestServiceAccountCreate_PrintsSecretOnce(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	if code, _, stderr := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCmd(t, env, "service-account", "create", "--tenant", "acme", "--name", "billing")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	secret := regexp.MustCompile(`client_secret: (tss_\S+)`).FindStringSubmatch(stdout)
	if secret == nil || !strings.Contains(stdout, "client_id:     sa_") {
		t.Fatalf("output %q", stdout)
	}
	if strings.Contains(stderr, secret[1]) {
		t.Fatal("secret written to the log stream")
	}
	if code, _, _ := runCmd(t, env, "service-account", "create", "--tenant", "acme", "--name", "billing"); code != 1 {
		t.Fatal("duplicate name accepted")
	}
	if code, _, _ := runCmd(t, env, "service-account", "create", "--tenant", "nope", "--name", "x"); code != 1 {
		t.Fatal("unknown tenant accepted")
	}
}

func TestBreachImport_WritesIndexThatFindsHashes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sum := sha1.Sum([]byte("hunter2hunter2"))
	in := filepath.Join(dir, "pwned.txt")
	content := strings.ToUpper(hex.EncodeToString(sum[:])) + ":42\n" + strings.Repeat("A", 40) + ":1\n"
	if err := os.WriteFile(in, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "breach.idx")
	code, stdout, stderr := runCmd(t, nil, "breach", "import", in, out)
	if code != 0 || !strings.Contains(stdout, "wrote 2 hashes") {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	ix, err := password.OpenIndex(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if hit, err := ix.Breached(context.Background(), "hunter2hunter2"); err != nil || !hit {
		t.Fatalf("imported hash not found: %v %v", hit, err)
	}
	if hit, _ := ix.Breached(context.Background(), "a genuinely unusual passphrase 7"); hit {
		t.Fatal("false positive")
	}
	if err := os.WriteFile(in, []byte("not-a-hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, nil, "breach", "import", in, filepath.Join(dir, "bad.idx")); code != 1 || !strings.Contains(stderr, "line 1") {
		t.Fatalf("malformed input: exit %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.idx")); err == nil {
		t.Fatal("a failed import left an index behind")
	}
}
