package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateSigner_CreatesOnceWithMode0600(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), KeyFile)
	s1, vkey1, err := LoadOrCreateSigner(path, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, err %v; want 0600", fi.Mode().Perm(), err)
	}
	s2, vkey2, err := LoadOrCreateSigner(path, testOrigin)
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
	if _, _, err := LoadOrCreateSigner(path, testOrigin); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateSigner(path, testOrigin); !errors.Is(err, ErrKeyFilePermissions) {
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
		_, _, err := LoadOrCreateSigner(write(strings.ReplaceAll(name, " ", "_"), content), testOrigin)
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
	if _, _, err := LoadOrCreateSigner(write("other", skeyO+"\n"+vkeyO+"\n"), testOrigin); err == nil {
		t.Error("key for another origin accepted")
	}
}
