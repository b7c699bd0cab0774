package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"tutela/vault"
)

// KeyFile is the signer key file's name inside the data directory.
const KeyFile = "audit.key"

// ErrKeyFilePermissions means the signer key file can be read or written by group or others.
var ErrKeyFilePermissions = errors.New("audit key file is accessible by group or others")

// LoadOrCreateSigner reads the log's note key pair from path, creating it (mode 0600, written
// atomically) with a fresh Ed25519 key named name when the file does not exist. The file holds
// two lines: the private signer key and the public verifier key. It refuses a file group or
// others can access, a key named other than name, and a verifier key that does not match the
// signer key (checked by signing and verifying a probe). vkey is public: give it to auditors.
// Errors never contain key material.
//
// With a sealer (the vault), the private key is stored sealed — the file's first line is
// "sealed:" and base64 — so the key is still held outside the database, yet a copy of the data
// directory alone does not yield it; a plaintext file is sealed in place on first use.
func LoadOrCreateSigner(path, name string, sealer vault.Sealer) (*Signer, string, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		skey, vkey, err := GenerateKey(name)
		if err != nil {
			return nil, "", err
		}
		if err := writeKeyFile(path, name, skey, vkey, sealer); err != nil {
			return nil, "", err
		}
		s, err := NewSigner(skey)
		return s, vkey, err
	case err != nil:
		return nil, "", fmt.Errorf("audit key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("audit key file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s",
			ErrKeyFilePermissions, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's configured key file path
	if err != nil {
		return nil, "", fmt.Errorf("read audit key: %w", err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 {
		return nil, "", fmt.Errorf("audit key file %s: %w: want a signer and a verifier key line", path, ErrInvalidKey)
	}
	skey, vkey := lines[0], lines[1]
	if sealed, ok := strings.CutPrefix(skey, sealedPrefix); ok {
		if sealer == nil {
			return nil, "", fmt.Errorf("audit key file %s is sealed by the vault: open it through the vault", path)
		}
		ct, err := base64.StdEncoding.DecodeString(sealed)
		if err != nil {
			return nil, "", fmt.Errorf("audit key file %s: %w", path, ErrInvalidKey)
		}
		pt, err := sealer.Open(ct, keyAAD(name))
		if err != nil {
			return nil, "", fmt.Errorf("audit key file %s cannot be unsealed by this database's audit_key keyset: the file "+
				"belongs to another deployment (or the keyset's key was retired); copy audit.key from a node of this "+
				"deployment, or restore the one backed up with this database", path)
		}
		skey = string(pt)
	} else if sealer != nil {
		// A plaintext key from before the vault: seal it now (same key, same log).
		if err := writeKeyFile(path, name, skey, vkey, sealer); err != nil {
			return nil, "", err
		}
	}
	s, err := NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("audit key file %s: %w", path, ErrInvalidKey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("audit key file %s: verifier key: %w", path, ErrInvalidKey)
	}
	if s.Name() != name || v.Name() != name {
		return nil, "", fmt.Errorf("audit key file %s: key is named %q, want %q", path, s.Name(), name)
	}
	probe := Checkpoint{Origin: name, Size: 0, Root: EmptyTreeHash}
	msg, err := s.Sign(probe)
	if err != nil {
		return nil, "", err
	}
	if _, err := OpenCheckpoint(msg, vkey, name); err != nil {
		return nil, "", fmt.Errorf("audit key file %s: verifier key does not match the signer key", path)
	}
	return s, vkey, nil
}

// sealedPrefix marks a signer key line sealed by the vault.
const sealedPrefix = "sealed:"

func keyAAD(name string) []byte { return []byte("audit_key:" + name) }

func writeKeyFile(path, name, skey, vkey string, sealer vault.Sealer) error {
	line := skey
	if sealer != nil {
		ct, err := sealer.Seal([]byte(skey), keyAAD(name))
		if err != nil {
			return fmt.Errorf("seal audit key: %w", err)
		}
		line = sealedPrefix + base64.StdEncoding.EncodeToString(ct)
	}
	if err := vault.WriteFileAtomic(path, []byte(line+"\n"+vkey+"\n"), 0o600); err != nil {
		return fmt.Errorf("write audit key: %w", err)
	}
	return nil
}

// ReadVerifierKey returns the public verifier key from the key file without touching the
// private key (verification needs nothing else).
func ReadVerifierKey(path, name string) (string, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's configured key file path
	if err != nil {
		return "", fmt.Errorf("audit key file: %w", err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 {
		return "", fmt.Errorf("audit key file %s: %w", path, ErrInvalidKey)
	}
	v, err := note.NewVerifier(lines[1])
	if err != nil || v.Name() != name {
		return "", fmt.Errorf("audit key file %s: verifier key: %w", path, ErrInvalidKey)
	}
	return lines[1], nil
}

// KeyFileSource lets `tutela keys rewrap` re-encrypt the sealed private key in the key file
// under the "audit_key" keyset's primary key, so the keyset's old keys can be retired. The file
// is one item; a plaintext (not yet sealed) file has none. Record, if set, is called after the
// file is rewritten (the caller writes the audit event). Every node holding a copy of the file
// needs the rewritten one before the old keys are retired.
type KeyFileSource struct {
	Path   string
	Origin string // the log's name, as given to LoadOrCreateSigner
	Record func(ctx context.Context) error
}

var _ vault.RewrapSource = KeyFileSource{}

func (KeyFileSource) Name() string { return KeyFile }

// Next returns the sealed private key as one item (ID "audit.key").
func (s KeyFileSource) Next(_ context.Context, after string, _ int) ([]vault.RewrapItem, error) {
	if after != "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("audit key file: %w", err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 {
		return nil, fmt.Errorf("audit key file %s: %w", s.Path, ErrInvalidKey)
	}
	sealed, ok := strings.CutPrefix(lines[0], sealedPrefix)
	if !ok {
		return nil, nil
	}
	ct, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, fmt.Errorf("audit key file %s: %w", s.Path, ErrInvalidKey)
	}
	return []vault.RewrapItem{{ID: KeyFile, Purpose: vault.PurposeAuditKey, AAD: keyAAD(s.Origin), Ciphertext: ct}}, nil
}

// Save rewrites the file with the new ciphertext, atomically, if it still holds the old one.
func (s KeyFileSource) Save(ctx context.Context, items []vault.RewrapItem) error {
	for _, it := range items {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			return fmt.Errorf("audit key file: %w", err)
		}
		lines := strings.Fields(string(b))
		if len(lines) != 2 || lines[0] != sealedPrefix+base64.StdEncoding.EncodeToString(it.Old) {
			continue // changed since it was read
		}
		line := sealedPrefix + base64.StdEncoding.EncodeToString(it.Ciphertext)
		if err := vault.WriteFileAtomic(s.Path, []byte(line+"\n"+lines[1]+"\n"), 0o600); err != nil {
			return fmt.Errorf("write audit key: %w", err)
		}
		if s.Record != nil {
			if err := s.Record(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}
