package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"tutela/vault"
)

// keysRun runs a keys subcommand in-process (the lead wires `Keys keysCmd` into cli).
func keysRun(t *testing.T, environ []string, cmd interface{ Run(*env) error }) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cmd.Run(&env{ctx: context.Background(), environ: environ, stdout: &out, stderr: &errb})
	return out.String(), errb.String(), err
}

func TestKeysCommands_RotateRewrapRetireNeverPrintMaterial(t *testing.T) {
	environ := baseEnv(t)
	var logs strings.Builder
	step := func(cmd interface{ Run(*env) error }) string {
		t.Helper()
		out, errs, err := keysRun(t, environ, cmd)
		logs.WriteString(out + errs)
		if err != nil {
			t.Fatalf("%T: %v\n%s%s", cmd, err, out, errs)
		}
		return out
	}
	step(keysRotateCmd{Purpose: vault.PurposeSigningKeys})
	step(keysRotateCmd{})
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
	if _, _, err := keysRun(t, environ, keysRotateCmd{Purpose: vault.PurposeTOTP}); err != nil {
		t.Fatal(err)
	}
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	wrong := append(append([]string{}, environ...), "TUTELA_MASTER_KEY="+other)
	_, _, err := keysRun(t, wrong, keysRotateCmd{Purpose: vault.PurposeTOTP})
	if err == nil || !strings.Contains(err.Error(), "key-encryption key cannot unwrap") || strings.Contains(err.Error(), other) {
		t.Fatalf("wrong KEK: %v", err)
	}
	out, _, err := keysRun(t, environ, keysListCmd{JSON: true})
	if err != nil || strings.Count(out, `"id"`) != 2 {
		t.Fatalf("after refused run the keyset changed: %v\n%s", err, out)
	}
}

func TestKeysCommands_CloudKMSNotBuiltIn(t *testing.T) {
	environ := append(baseEnv(t), "TUTELA_VAULT_KEK_URI=gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k")
	_, _, err := keysRun(t, environ, keysListCmd{})
	if err == nil || !strings.Contains(err.Error(), "not built into this binary") {
		t.Fatalf("err = %v", err)
	}
}

func TestVaultSettings_RotateEvery(t *testing.T) {
	t.Parallel()
	s, err := vaultSettingsFrom([]string{"TUTELA_VAULT_ROTATE_EVERY=2160h"})
	if err != nil || s.RotateEvery.Hours() != 2160 {
		t.Fatalf("%v %v", s.RotateEvery, err)
	}
	for _, bad := range []string{"soon", "-1h", "30s"} {
		if _, err := vaultSettingsFrom([]string{"TUTELA_VAULT_ROTATE_EVERY=" + bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
