package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"tutela/privacy"

	"tutela"
	"tutela/ai"
	"tutela/sqlstore"
)

var aiKeyIDRE = regexp.MustCompile(`Added key ([0-9a-f-]{36})`)

// cliKeys are three provider keys, added in turn through the CLI.
var cliKeys = []string{
	"sk-or-v1-1111aaaa2222bbbb3333cccc4444dddd",
	"sk-or-v1-5555eeee6666ffff7777gggg8888hhhh",
	"sk-or-v1-9999iiii0000jjjj1212kkkk3434llll",
}

// addKeyFromStdin runs `tutela ai key add` with key on stdin, as `… < key.txt` would.
func addKeyFromStdin(t *testing.T, environ []string, provider, key string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := aiKeyAddCmd{Tenant: "acme", Provider: provider}
	err := cmd.Run(&env{ctx: context.Background(), environ: environ, stdin: strings.NewReader(key + "\n"), stdout: &out, stderr: &errb})
	return out.String(), errb.String(), err
}

func openedCLIKeys(t *testing.T, environ []string, providerID string) []string {
	t.Helper()
	m, _, err := openKeys(&env{ctx: context.Background(), environ: environ, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	tn := tenantID(t, m, "acme")
	var keys []ai.Key
	if err := m.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		keys, err = tx.AI(tn).Keys(ctx, providerID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		out = append(out, k.Secret.Reveal())
	}
	return out
}

// Keys go in from stdin or a file, never argv; a third rotation retires the oldest; no key
// reaches the output, the log stream or the audit log.
func TestAICLI_KeyRotation(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCmd(t, environ, "ai", "provider", "create", "--tenant", "acme", "--name", "openrouter",
		"--base-url", "https://openrouter.ai/api/v1")
	if code != 0 || !strings.Contains(stdout, `"openrouter"`) {
		t.Fatalf("create: exit %d %q %s", code, stdout, stderr)
	}
	// There is no flag that takes the key itself.
	if code, _, _ := runCmd(t, environ, "ai", "key", "add", "--tenant", "acme", "--provider", "openrouter", "--key", cliKeys[0]); code != 2 {
		t.Fatalf("a key on the command line was accepted (exit %d)", code)
	}

	var outputs []string
	out1, err1, err := addKeyFromStdin(t, environ, "openrouter", cliKeys[0])
	if err != nil {
		t.Fatalf("add from stdin: %v %s", err, err1)
	}
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(keyFile, []byte(cliKeys[1]+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out2, err2 := runCmd(t, environ, "ai", "key", "add", "--tenant", "acme", "--provider", "openrouter", "--key-file", keyFile)
	if code != 0 {
		t.Fatalf("add from a file: exit %d %s", code, err2)
	}
	_, listOut, _ := runCmd(t, environ, "ai", "provider", "list", "--tenant", "acme")
	providerID := regexp.MustCompile(`openrouter\s+([0-9a-f-]{36})`).FindStringSubmatch(listOut)
	if providerID == nil {
		t.Fatalf("list: %q", listOut)
	}
	if keys := openedCLIKeys(t, environ, providerID[1]); len(keys) != 2 || keys[0] != cliKeys[1] || keys[1] != cliKeys[0] {
		t.Fatal("after two keys both must open, newest first, exactly as given (line break dropped)")
	}
	out3, err3, err := addKeyFromStdin(t, environ, providerID[1], cliKeys[2])
	if err != nil {
		t.Fatalf("third key: %v %s", err, err3)
	}
	first := aiKeyIDRE.FindStringSubmatch(out1)
	if first == nil || strings.Contains(out3, first[1]) || strings.Count(out3, "\n    ") != 2 || !strings.Contains(out3, ai.KeyHint(cliKeys[2])) {
		t.Fatalf("after the third key the first must be retired and two listed: %q", out3)
	}
	if keys := openedCLIKeys(t, environ, providerID[1]); len(keys) != 2 || keys[0] != cliKeys[2] || keys[1] != cliKeys[1] {
		t.Fatal("the third key did not retire the oldest")
	}
	_, listOut, _ = runCmd(t, environ, "ai", "provider", "list", "--tenant", "acme")
	outputs = append(outputs, out1, err1, out2, err2, out3, err3, listOut)

	// Refused: an empty key, one too long, one with a space; nothing is stored.
	for _, bad := range []string{"", strings.Repeat("k", ai.MaxKeyBytes+1), "sk-or-v1 with spaces 0000"} {
		out, errOut, err := addKeyFromStdin(t, environ, "openrouter", bad)
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Fatalf("bad key %.20q: %v", bad, err)
		}
		outputs = append(outputs, out, errOut, err.Error())
	}
	// A terminal (any character device: /dev/null here) is not read: a typed key would echo.
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if err := (aiKeyAddCmd{Tenant: "acme", Provider: "openrouter"}).Run(&env{ctx: context.Background(), environ: environ,
		stdin: devNull, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}); err == nil || !strings.Contains(err.Error(), "--key-file") {
		t.Fatalf("a key read from a character device: %v", err)
	}
	if _, _, err := addKeyFromStdin(t, environ, "nope", cliKeys[0]); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("unknown provider: %v", err)
	}
	if keys := openedCLIKeys(t, environ, providerID[1]); len(keys) != 2 || keys[0] != cliKeys[2] {
		t.Fatal("a refused key changed the provider's keys")
	}

	// Retire the fallback explicitly.
	second := aiKeyIDRE.FindStringSubmatch(out2)
	if code, _, stderr := runCmd(t, environ, "ai", "key", "delete", "--tenant", "acme", "--provider", "openrouter", "--key", second[1]); code != 0 {
		t.Fatalf("key delete: %s", stderr)
	}
	if code, _, _ := runCmd(t, environ, "ai", "key", "delete", "--tenant", "acme", "--provider", "openrouter", "--key", second[1]); code != 1 {
		t.Fatal("deleting a deleted key succeeded")
	}
	if keys := openedCLIKeys(t, environ, providerID[1]); len(keys) != 1 || keys[0] != cliKeys[2] {
		t.Fatal("key delete did not retire the key")
	}

	for _, key := range cliKeys {
		for _, o := range outputs {
			if strings.Contains(o, key[:16]) {
				t.Fatalf("a key is in the output: %q", o)
			}
		}
	}
	db := openDB(t, environ)
	recs, _, err := db.AuditEvents(context.Background(), sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, r := range recs {
		actions[r.Event.Action]++
		for _, key := range cliKeys {
			if bytes.Contains(r.Canonical, []byte(key[:16])) {
				t.Fatalf("%s event holds a key", r.Event.Action)
			}
		}
		if strings.HasPrefix(r.Event.Action, "ai.") && r.Event.ActorType != "system" {
			t.Errorf("%s audited as %q, want system", r.Event.Action, r.Event.ActorType)
		}
	}
	if actions["ai.key_add"] != 3 || actions["ai.key_retire"] != 2 || actions["ai.provider_create"] != 1 {
		t.Fatalf("audit actions %v", actions)
	}
}

// Models, purposes and settings through the CLI, with the store's rules.
func TestAICLI_ModelsPurposesSettings(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	// Only a purpose in the register may use the gateway.
	db := openDB(t, environ)
	tn := tenantID(t, &Main{DB: db}, "acme")
	if err := db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		_, err := tx.Consent(tn).PutPurpose(context.Background(), &privacy.Purpose{Name: "aid", Description: "Aid distribution",
			LawfulBasis: privacy.BasisContract})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	run := func(want int, args ...string) string {
		t.Helper()
		code, stdout, stderr := runCmd(t, environ, append([]string{"ai"}, args...)...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d: %s %s", args, code, want, stdout, stderr)
		}
		return stdout + stderr
	}
	run(0, "provider", "create", "--tenant", "acme", "--name", "local", "--base-url", "http://127.0.0.1:11434/v1", "--auth-style", "none")
	run(1, "provider", "create", "--tenant", "acme", "--name", "remote", "--base-url", "http://models.example/v1")
	run(1, "provider", "create", "--tenant", "acme", "--name", "local", "--base-url", "https://x.example/v1")
	run(0, "provider", "update", "--tenant", "acme", "--provider", "local", "--timeout", "120", "--disabled")
	if out := run(0, "provider", "list", "--tenant", "acme"); !strings.Contains(out, "120s") || !strings.Contains(out, "true") {
		t.Fatalf("list after update: %s", out)
	}
	run(0, "provider", "update", "--tenant", "acme", "--provider", "local", "--disabled=false")
	if out := run(0, "provider", "list", "--tenant", "acme"); !strings.Contains(out, "false") {
		t.Fatalf("list after enabling: %s", out)
	}
	run(0, "model", "put", "--tenant", "acme", "--name", "meta/llama3:8b", "--provider", "local", "--upstream", "llama3:8b")
	run(1, "model", "put", "--tenant", "acme", "--name", "x", "--provider", "nope")
	if out := run(0, "model", "list", "--tenant", "acme"); !strings.Contains(out, "meta/llama3:8b") || !strings.Contains(out, "local") {
		t.Fatalf("model list: %s", out)
	}
	run(1, "purpose", "put", "--tenant", "acme", "--purpose", "aid", "--model", "missing")
	run(0, "purpose", "put", "--tenant", "acme", "--purpose", "aid", "--model", "meta/llama3:8b", "--max-output-tokens", "500")
	if out := run(0, "purpose", "list", "--tenant", "acme"); !strings.Contains(out, "aid") || !strings.Contains(out, "500") {
		t.Fatalf("purpose list: %s", out)
	}
	run(1, "model", "delete", "--tenant", "acme", "--name", "meta/llama3:8b")
	run(1, "provider", "delete", "--tenant", "acme", "--provider", "local")

	if out := run(0, "settings", "show", "--tenant", "acme"); !strings.Contains(out, `"requests_per_minute": 0`) {
		t.Fatalf("default settings: %s", out)
	}
	run(0, "settings", "set", "--tenant", "acme", "--requests-per-minute", "30", "--id-country", "ng", "--id-country", "gb")
	out := run(0, "settings", "set", "--tenant", "acme", "--tokens-per-day", "50000")
	if !strings.Contains(out, `"requests_per_minute": 30`) || !strings.Contains(out, `"tokens_per_day": 50000`) ||
		!strings.Contains(out, `"NG"`) {
		t.Fatalf("settings keep what is not given: %s", out)
	}
	run(1, "settings", "set", "--tenant", "acme", "--requests-per-minute=-1")
	if out := run(0, "settings", "set", "--tenant", "acme", "--no-id-countries"); !strings.Contains(out, `"id_countries": []`) {
		t.Fatalf("no countries: %s", out)
	}

	run(0, "purpose", "delete", "--tenant", "acme", "--purpose", "aid")
	run(0, "model", "delete", "--tenant", "acme", "--name", "meta/llama3:8b")
	run(0, "provider", "delete", "--tenant", "acme", "--provider", "local")
	if out := run(0, "provider", "list", "--tenant", "acme"); strings.Count(out, "\n") != 1 {
		t.Fatalf("after delete: %s", out)
	}
	run(1, "provider", "list", "--tenant", "nope")
}
