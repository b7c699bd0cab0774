// Package vault holds Tutela's keys. For now: the local master key file, the development-grade
// key-encryption key kept in the data directory. Production deployments should keep the master
// key in a KMS or HSM (see README, "Keys").
package vault

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"tutela"
)

// MasterKeySize is the master key length: 256 bits, for AES-256.
const MasterKeySize = 32

// MasterKeyFile is the key file's name inside the data directory.
const MasterKeyFile = "master.key"

// ErrKeyFilePermissions means the key file can be read by group or others.
var ErrKeyFilePermissions = errors.New("master key file is readable by group or others")

// LoadOrCreateMasterKey reads the master key file at path, creating it with a fresh random key
// (mode 0600, written atomically) when it does not exist. It refuses a file whose mode lets
// group or others read or write it, and a file that does not hold exactly one 256-bit key.
func LoadOrCreateMasterKey(path string) (key tutela.Secret, created bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		raw := make([]byte, MasterKeySize)
		if _, err := rand.Read(raw); err != nil {
			return tutela.Secret{}, false, fmt.Errorf("generate master key: %w", err)
		}
		text := base64.StdEncoding.EncodeToString(raw) + "\n"
		if err := WriteFileAtomic(path, []byte(text), 0o600); err != nil {
			return tutela.Secret{}, false, fmt.Errorf("write master key: %w", err)
		}
		return tutela.NewSecretBytes(raw), true, nil
	case err != nil:
		return tutela.Secret{}, false, fmt.Errorf("master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return tutela.Secret{}, false, fmt.Errorf("master key file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return tutela.Secret{}, false, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s",
			ErrKeyFilePermissions, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's configured master-key file
	if err != nil {
		return tutela.Secret{}, false, fmt.Errorf("read master key: %w", err)
	}
	k, err := ParseMasterKey(string(b))
	if err != nil {
		return tutela.Secret{}, false, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, false, nil
}

// ParseMasterKey decodes a base64 master key (as in the key file or TUTELA_MASTER_KEY). The
// error never contains the input.
func ParseMasterKey(text string) (tutela.Secret, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(raw) != MasterKeySize {
		return tutela.Secret{}, fmt.Errorf("master key must be %d bytes, base64-encoded", MasterKeySize)
	}
	return tutela.NewSecretBytes(raw), nil
}

// WriteFileAtomic writes data to path so that a crash leaves either the old file or the new
// one, never a torn one: write a temporary file in the same directory with the final mode,
// fsync it, rename it over path, then fsync the directory.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir) // #nosec G304 -- the directory of the operator's configured master-key file
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadFileLimited reads the file at path, refusing one longer than limit bytes (a file that
// should be small, e.g. a signed checkpoint, that something replaced with a huge one).
func ReadFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- callers name files in directories of their own configuration
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}
