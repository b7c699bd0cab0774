// Package blob keeps files' bytes outside the database: encrypted with a per-file data key
// (crypt.go, Tink's streaming AEAD) and stored under their content address, the hex SHA-256 of
// the stored (encrypted) bytes, in a directory (Local) or an S3-compatible bucket (S3).
//
// The name proves what was stored: every read hashes what it returns and fails at the end when
// the bytes do not match their name, so a blob altered at rest is an error, not a quiet
// substitution. Keys are validated before they touch a path or an object name, so a key can
// never point outside the store.
package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
)

// ErrNotFound is returned by Open for a blob the store does not hold.
var ErrNotFound = errors.New("blob: not found")

// ErrCorrupt is returned by a blob's reader at its end when the bytes read do not hash to the
// blob's name: the stored bytes were altered or damaged.
var ErrCorrupt = errors.New("blob: content does not match its address")

// ErrInvalidKey is returned for a key that is not a content address (ValidKey).
var ErrInvalidKey = errors.New("blob: invalid key")

// errFinished is returned by a Writer used after Commit or Abort.
var errFinished = errors.New("blob: writer already committed or aborted")

// Store holds blobs by content address.
type Store interface {
	// Create starts a blob. The caller writes the (already encrypted) bytes, then Commit or Abort.
	Create(ctx context.Context) (Writer, error)
	// Open streams a blob. The reader hashes what it returns and fails at EOF (ErrCorrupt) when
	// the content does not match its name; a missing blob is ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes a blob; a missing one is not an error (idempotent).
	Delete(ctx context.Context, key string) error
	// Objects lists every object the store holds, committed blobs and unfinished temporaries
	// alike (tests check that nothing of a refused upload remains).
	Objects(ctx context.Context) ([]string, error)
	// Check reports whether the store is usable (readiness).
	Check(ctx context.Context) error
}

// Writer receives a blob's bytes.
type Writer interface {
	io.Writer
	// Commit makes the blob durable under its content address (hex SHA-256 of all bytes
	// written) and returns it. Committing bytes that already exist under that name is fine.
	Commit(ctx context.Context) (key string, size int64, err error)
	// Abort removes whatever was written; idempotent; after Commit it does nothing.
	Abort() error
}

// ValidKey reports whether key is a content address: exactly 64 lower-case hex characters.
// Anything else ("../x", upper case, a prefix) is refused before it reaches a path or an object
// name, so a key cannot traverse out of the store or alias another blob.
func ValidKey(key string) bool {
	if len(key) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// randomName returns 128 random bits in hex, for temporaries: unguessable and never reused, so
// two uploads cannot collide and one cannot be made to write into another's temporary.
func randomName() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// verifyingReader hashes what it passes on and, at the source's EOF, compares the digest with
// the expected key. A mismatch is ErrCorrupt, and stays so: a caller that reads again after an
// error must not see a clean EOF.
type verifyingReader struct {
	r   io.Reader
	c   io.Closer
	h   hash.Hash
	key string
	err error
}

func newVerifyingReader(rc io.ReadCloser, key string) *verifyingReader {
	return &verifyingReader{r: rc, c: rc, h: sha256.New(), key: key}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	switch {
	case err == io.EOF:
		if hex.EncodeToString(v.h.Sum(nil)) != v.key {
			v.err = ErrCorrupt
			return n, v.err
		}
		v.err = io.EOF
	case err != nil:
		v.err = err
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.c.Close() }
