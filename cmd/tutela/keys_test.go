package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"tutela"
	"tutela/audit"
	"tutela/clocktest"
	"tutela/files"
	"tutela/vault"
)

// runSub runs a subcommand (keys, jobs, …) in-process.
func runSub(t *testing.T, environ []string, cmd interface{ Run(*env) error }) (string, string, error) {
	t.Helper()
	return runSubAt(t, environ, nil, cmd)
}

// runSubAt is runSub with the vault reading clock (nil: the system clock), so a test moves time
// past vault.cache_ttl between a rotation and its rewrap or retire instead of sleeping.
func runSubAt(t *testing.T, environ []string, clock tutela.Clock, cmd interface{ Run(*env) error }) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cmd.Run(&env{ctx: context.Background(), environ: environ, stdout: &out, stderr: &errb, clock: clock})
	return out.String(), errb.String(), err
}

// settleRotation moves clock past the default vault.cache_ttl (5m) plus the margin: every node
// has reloaded a rotation made before, so rewrap and retire may run.
func settleRotation(clock *clocktest.Clock) { clock.Add(5*time.Minute + vault.RotationSettleMargin) }

func TestKeysCommands_RotateRewrapRetireNeverPrintMaterial(t *testing.T) {
	environ := baseEnv(t)
	clock := clocktest.New(time.Now().UTC())
	var logs strings.Builder
	step := func(cmd interface{ Run(*env) error }) string {
		t.Helper()
		out, errs, err := runSubAt(t, environ, clock.Now, cmd)
		logs.WriteString(out + errs)
		if err != nil {
			t.Fatalf("%T: %v\n%s%s", cmd, err, out, errs)
		}
		return out
	}
	step(keysRotateCmd{Purpose: vault.PurposeSigningKeys})
	step(keysRotateCmd{})
	settleRotation(clock)
	if out := step(keysRewrapCmd{Batch: 2}); !strings.Contains(out, "signing_keys: done") {
		t.Fatalf("rewrap output %q", out)
	}
	step(keysRetireCmd{Purpose: vault.PurposeSigningKeys})
	out := step(keysListCmd{JSON: true})
	var view struct {
		KEKURI  string          `json:"kek_uri"`
		Keysets []vault.KeyView `json:"keysets"`
	}
	if err := json.Unmarshal([]byte(out), &view); err != nil || view.KEKURI != "local:" || len(view.Keysets) != 1 ||
		len(view.Keysets[0].Keys) != 1 {
		t.Fatalf("list: %+v, %v\n%s", view, err, out)
	}
	step(keysListCmd{})

	// Grep everything printed for the wrapped keyset and the master key, in every encoding.
	dataDir := strings.TrimPrefix(environ[0], "TUTELA_DATA_DIR=")
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "tutela.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var wrapped []byte
	if err := db.QueryRow(`SELECT wrapped FROM keysets`).Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	master, _, err := vault.LoadOrCreateMasterKey(filepath.Join(dataDir, vault.MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	text := logs.String()
	for _, secret := range [][]byte{wrapped[:24], master.Bytes()} {
		for _, enc := range []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)[:20],
			base64.RawURLEncoding.EncodeToString(secret)[:20]} {
			if strings.Contains(text, enc) {
				t.Fatalf("key material in command output:\n%s", text)
			}
		}
	}
	if strings.Contains(strings.ToLower(text), "wrapped") {
		t.Fatalf("output mentions wrapped keysets:\n%s", text)
	}
}

func TestKeysCommands_WrongKEKClearErrorNothingWritten(t *testing.T) {
	environ := baseEnv(t)
	if _, _, err := runSub(t, environ, keysRotateCmd{Purpose: vault.PurposeTOTP}); err != nil {
		t.Fatal(err)
	}
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	wrong := append(append([]string{}, environ...), "TUTELA_MASTER_KEY="+other)
	_, _, err := runSub(t, wrong, keysRotateCmd{Purpose: vault.PurposeTOTP})
	if err == nil || !strings.Contains(err.Error(), "key-encryption key cannot unwrap") || strings.Contains(err.Error(), other) {
		t.Fatalf("wrong KEK: %v", err)
	}
	out, _, err := runSub(t, environ, keysListCmd{JSON: true})
	if err != nil || strings.Count(out, `"id"`) != 2 {
		t.Fatalf("after refused run the keyset changed: %v\n%s", err, out)
	}
}

func TestKeysCommands_KEKSettingsFromConfig(t *testing.T) {
	dir := t.TempDir()
	yaml := filepath.Join(dir, "tutela.yaml")
	if err := os.WriteFile(yaml, []byte("vault:\n  kek_uri: \"pkcs11:token=t;object=k\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{"TUTELA_DATA_DIR=" + filepath.Join(dir, "data")}
	code, _, stderr := runCmd(t, environ, "--config", yaml, "keys", "list")
	if code == 0 || !strings.Contains(stderr, "vault.pkcs11_module") || !strings.Contains(stderr, "TUTELA_HSM_PIN") {
		t.Fatalf("pkcs11 KEK without module and PIN: exit %d\n%s", code, stderr)
	}
	// The environment overrides the file; a bad URI is reported before anything opens.
	code, _, stderr = runCmd(t, append(environ, "TUTELA_VAULT_KEK_URI=gcp-kms://projects/p"), "--config", yaml, "keys", "list")
	if code == 0 || !strings.Contains(stderr, "vault.kek_uri: gcp-kms URI must be") {
		t.Fatalf("bad KEK URI: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("a refused configuration created the data directory")
	}
}

// The audit signing key is sealed under the "audit_key" keyset in a file, not a table: rewrap
// must re-encrypt the file too, and retire must refuse until it has, or the next start could not
// open the key.
func TestKeysCommands_AuditKeyFileRewrappedBeforeRetire(t *testing.T) {
	environ := baseEnv(t)
	dataDir := strings.TrimPrefix(environ[0], "TUTELA_DATA_DIR=")
	loadSigner := func() string {
		t.Helper()
		m, v, err := openKeys(&env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		sealer, err := vault.NewVaultSealer(v, "", vault.PurposeAuditKey, tutela.Secret{})
		if err != nil {
			t.Fatal(err)
		}
		_, vkey, err := audit.LoadOrCreateSigner(filepath.Join(dataDir, audit.KeyFile), AuditOrigin, sealer)
		if err != nil {
			t.Fatalf("audit key: %v", err)
		}
		return vkey
	}
	vkey := loadSigner()
	before, _ := os.ReadFile(filepath.Join(dataDir, audit.KeyFile))

	clock := clocktest.New(time.Now().UTC())
	if _, _, err := runSubAt(t, environ, clock.Now, keysRotateCmd{Purpose: vault.PurposeAuditKey}); err != nil {
		t.Fatal(err)
	}
	settleRotation(clock)
	_, _, err := runSubAt(t, environ, clock.Now, keysRetireCmd{Purpose: vault.PurposeAuditKey})
	if err == nil || !strings.Contains(err.Error(), "audit.key still holds 1 ciphertext") {
		t.Fatalf("retire before rewrap: %v", err)
	}
	out, _, err := runSubAt(t, environ, clock.Now, keysRewrapCmd{})
	if err != nil || !strings.Contains(out, "audit.key: done, 1 rows checked, 1 re-encrypted") {
		t.Fatalf("rewrap: %v\n%s", err, out)
	}
	after, _ := os.ReadFile(filepath.Join(dataDir, audit.KeyFile))
	if bytes.Equal(before, after) {
		t.Fatal("rewrap left the audit key file unchanged")
	}
	if fi, _ := os.Stat(filepath.Join(dataDir, audit.KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit key file mode %04o", fi.Mode().Perm())
	}
	if _, _, err := runSubAt(t, environ, clock.Now, keysRetireCmd{Purpose: vault.PurposeAuditKey}); err != nil {
		t.Fatal(err)
	}
	if got := loadSigner(); got != vkey {
		t.Fatal("the audit key changed: it must be the same key, re-encrypted")
	}

	// A purpose no source covers cannot be retired: nothing could prove it safe.
	if _, _, err := runSub(t, environ, keysRotateCmd{Purpose: vault.PurposeLookup}); err != nil {
		t.Fatal(err)
	}
	_, _, err = runSub(t, environ, keysRetireCmd{Purpose: vault.PurposeLookup})
	if err == nil || !strings.Contains(err.Error(), "no rewrap source covers") {
		t.Fatalf("retire of an uncovered purpose: %v", err)
	}
}

// Retiring the file_links key after a rotation revokes every download link it signed: link
// tokens are never stored, so there is nothing to rewrap and retire must not refuse.
func TestKeysCommands_RetiringFileLinksKeyRevokesItsLinks(t *testing.T) {
	environ := baseEnv(t)
	clock := clocktest.New(time.Now().UTC())
	sign := func() string {
		t.Helper()
		m, v, err := openKeys(&env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: io.Discard, clock: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		tok, err := files.LinkSigner{Vault: v}.Sign(context.Background(), &files.Link{ID: tutela.NewID(), ExpiresAt: clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	verify := func(tok string) error {
		t.Helper()
		m, v, err := openKeys(&env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: io.Discard, clock: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		_, err = files.LinkSigner{Vault: v}.Verify(context.Background(), tok, clock.Now())
		return err
	}
	old := sign()
	if _, _, err := runSubAt(t, environ, clock.Now, keysRotateCmd{Purpose: vault.PurposeFileLinks}); err != nil {
		t.Fatal(err)
	}
	fresh := sign()
	if err := verify(old); err != nil {
		t.Fatalf("old link before retirement: %v", err)
	}
	settleRotation(clock)
	if _, _, err := runSubAt(t, environ, clock.Now, keysRetireCmd{Purpose: vault.PurposeFileLinks}); err != nil {
		t.Fatalf("retire file_links: %v", err)
	}
	if err := verify(old); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("old link after retirement: %v", err)
	}
	if err := verify(fresh); err != nil {
		t.Fatalf("new link after retirement: %v", err)
	}
}
