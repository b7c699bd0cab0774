package config

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad: the YAML file and the TUTELA_* environment are operator input that a typo or a bad
// template can mangle. Load and Validate never panic; Load is deterministic (the same input
// gives the same configuration); and a secret's value never appears in what Load or Validate
// report, whatever else is wrong (secrets never reach logs or errors).
func FuzzLoad(f *testing.F) {
	f.Add("http:\n  addr: \":8080\"\nlog:\n  level: info\n", "TUTELA_LOG_LEVEL=debug", []byte("secret-1"))
	f.Add("auth:\n  hash:\n    memory_kib: 19456\n    time: 2\n    threads: 1\n", "TUTELA_HTTP_ADDR=:9090\nTUTELA_BOGUS=1", []byte{0, 1, 2, 3})
	f.Add("http:\n  bogus: 1\nlog:\n  level: loud\n", "", []byte("xxxxxxxx"))
	f.Add("{", "TUTELA_AUTH_HASH_TIME=ten", []byte("abcd"))
	f.Add("files:\n  s3:\n    secret_access_key: inline\n", "TUTELA_DATABASE_DSN=postgres://u:p@h/db", []byte("0123456789"))
	f.Fuzz(func(t *testing.T, yaml, env string, secret []byte) {
		if len(secret) < 4 || len(yaml) > 64<<10 || len(env) > 64<<10 {
			t.Skip()
		}
		// A value that cannot occur in any message by chance.
		value := "zq" + hex.EncodeToString(secret)
		environ := []string{"TUTELA_FILES_S3_SECRET_ACCESS_KEY=" + value}
		for _, kv := range strings.Split(env, "\n") {
			// *_FILE variables name files to read; a fuzzed one could name a FIFO and block.
			if !strings.Contains(kv, "_FILE=") && !strings.Contains(kv, value) {
				environ = append(environ, kv)
			}
		}
		if strings.Contains(yaml, value) {
			t.Skip()
		}
		path := filepath.Join(t.TempDir(), "tutela.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, environ)
		if err != nil {
			if strings.Contains(err.Error(), value) {
				t.Fatalf("Load's error shows the secret: %v", err)
			}
			return
		}
		again, err := Load(path, environ)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("Load is not deterministic: %v", err)
		}
		if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), value) {
			t.Fatalf("Validate's error shows the secret: %v", err)
		}
	})
}
