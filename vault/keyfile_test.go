package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMasterKey_CreatedOnceWithMode0600(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), MasterKeyFile)
	k1, created, err := LoadOrCreateMasterKey(path)
	if err != nil || !created || len(k1.Bytes()) != MasterKeySize {
		t.Fatalf("create: created=%v len=%d err=%v", created, len(k1.Bytes()), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	k2, created, err := LoadOrCreateMasterKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: created=%v equal=%v err=%v", created, k1.Equal(k2), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestMasterKey_RefusesGroupOrOtherAccess(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o602} {
		path := filepath.Join(t.TempDir(), MasterKeyFile)
		if _, _, err := LoadOrCreateMasterKey(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateMasterKey(path)
		if !errors.Is(err, ErrKeyFilePermissions) {
			t.Errorf("mode %04o: err = %v, want ErrKeyFilePermissions", mode, err)
		}
	}
}

func TestMasterKey_RejectsMalformedWithoutEchoingIt(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"", "not base64!!", "c2hvcnQ=", strings.Repeat("QUFB", 20)} {
		path := filepath.Join(t.TempDir(), MasterKeyFile)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateMasterKey(path)
		if err == nil {
			t.Fatalf("content %q accepted", content)
		}
		if content != "" && strings.Contains(err.Error(), content) {
			t.Fatalf("error echoes the key material: %v", err)
		}
	}
}

func TestMasterKey_SecretNeverPrints(t *testing.T) {
	t.Parallel()
	k, _, err := LoadOrCreateMasterKey(filepath.Join(t.TempDir(), MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.WriteString(k.String())
	if buf.String() != "[redacted]" {
		t.Fatalf("secret printed as %q", buf.String())
	}
}

func TestWriteFileAtomic_ReplacesWholeFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteFileAtomic(path, []byte("first version, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "second" {
		t.Fatalf("content %q", b)
	}
}
