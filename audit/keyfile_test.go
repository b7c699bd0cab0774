package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"tutela"
	"tutela/vault"
)

func TestLoadOrCreateSigner_CreatesOnceWithMode0600(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), KeyFile)
	s1, vkey1, err := LoadOrCreateSigner(path, testOrigin, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, err %v; want 0600", fi.Mode().Perm(), err)
	}
	s2, vkey2, err := LoadOrCreateSigner(path, testOrigin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vkey1 != vkey2 || strings.HasPrefix(vkey1, "PRIVATE") {
		t.Fatalf("reload gave another or a private key: %q vs %q", vkey1, vkey2)
	}
	signed, err := s2.Sign(Checkpoint{Origin: testOrigin, Size: 1, Root: EmptyTreeHash})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(signed, vkey1, testOrigin); err != nil {
		t.Fatalf("checkpoint of reloaded signer does not verify under the first vkey: %v", err)
	}
	if s := fmt.Sprint(s1); s != Redacted {
		t.Fatalf("signer prints as %q", s)
	}
}

func TestLoadOrCreateSigner_RefusesGroupOrOtherAccess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), KeyFile)
	if _, _, err := LoadOrCreateSigner(path, testOrigin, nil); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateSigner(path, testOrigin, nil); !errors.Is(err, ErrKeyFilePermissions) {
			t.Errorf("mode %04o: err = %v, want ErrKeyFilePermissions", mode, err)
		}
	}
}

func TestLoadOrCreateSigner_RejectsMismatchedOrForeignKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	skeyA, _, _ := newTestKeys(t)
	_, vkeyB, _ := newTestKeys(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		"mismatched vkey": skeyA + "\n" + vkeyB + "\n",
		"one line":        skeyA + "\n",
		"garbage":         "PRIVATE+KEY+x+y+z\nnot-a-key\n",
	}
	for name, content := range cases {
		_, _, err := LoadOrCreateSigner(write(strings.ReplaceAll(name, " ", "_"), content), testOrigin, nil)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), skeyA) || strings.Contains(err.Error(), "PRIVATE+KEY") {
			t.Errorf("%s: error leaks the key: %v", name, err)
		}
	}
	// A valid key pair for another origin is refused too.
	skeyO, vkeyO, err := GenerateKey("other.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateSigner(write("other", skeyO+"\n"+vkeyO+"\n"), testOrigin, nil); err == nil {
		t.Error("key for another origin accepted")
	}
}

func TestLoadOrCreateSigner_SealedByVault(t *testing.T) {
	t.Parallel()
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{3}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), KeyFile)
	// A plaintext key from before the vault is sealed in place on first use.
	_, vkey0, err := LoadOrCreateSigner(path, testOrigin, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := os.ReadFile(path)
	skey := strings.Fields(string(plain))[0]
	s1, vkey1, err := LoadOrCreateSigner(path, testOrigin, sealer)
	if err != nil || vkey1 != vkey0 {
		t.Fatalf("seal in place: %v", err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), skey) || !strings.HasPrefix(string(b), sealedPrefix) {
		t.Fatalf("private key still in the clear: %q", b)
	}
	// Sealed: loads with the sealer, refuses without it or with another key.
	s2, _, err := LoadOrCreateSigner(path, testOrigin, sealer)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := s2.Sign(Checkpoint{Origin: testOrigin, Root: EmptyTreeHash})
	if _, err := OpenCheckpoint(msg, vkey0, testOrigin); err != nil || s1 == nil {
		t.Fatalf("unsealed key does not sign for the same verifier: %v", err)
	}
	if _, _, err := LoadOrCreateSigner(path, testOrigin, nil); err == nil {
		t.Fatal("sealed key loaded without the vault")
	}
	other, _ := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{4}, 32)))
	if _, _, err := LoadOrCreateSigner(path, testOrigin, other); err == nil {
		t.Fatal("sealed key opened with another key-encryption key")
	}
	if v, err := ReadVerifierKey(path, testOrigin); err != nil || v != vkey0 {
		t.Fatalf("verifier key: %q %v", v, err)
	}
}
