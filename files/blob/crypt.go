package blob

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"
)

// A file's bytes are encrypted with Tink's AES-GCM-HKDF streaming AEAD (the "AES256_GCM_HKDF_1MB"
// parameters): each file's data key is an HKDF-SHA256 input key, a fresh random salt per
// ciphertext derives a 256-bit AES-GCM key bound to the associated data, and the stream is cut
// into 1 MiB segments, each sealed with its index and a last-segment flag in the nonce. So a
// reader holds one segment at a time, and reordering, dropping, truncating or extending
// segments fails authentication.
const (
	// DEKSize is the size of a file's data key: 256 bits.
	DEKSize = 32

	segmentSize = 1 << 20
	hkdfHash    = "SHA256"
	// headerSize is Tink's ciphertext header: one length byte, the salt (key size), and the
	// 7-byte nonce prefix.
	headerSize = 1 + DEKSize + subtle.AESGCMHKDFNoncePrefixSizeInBytes
	tagSize    = subtle.AESGCMHKDFTagSizeInBytes
	// plainSegment is the plaintext carried by a full segment; the first carries headerSize
	// fewer bytes because the header shares it.
	plainSegment      = segmentSize - tagSize
	firstPlainSegment = plainSegment - headerSize
)

// ErrDecrypt is wrapped by every error a Decrypt reader returns for a ciphertext that does not
// authenticate: a wrong key or associated data, altered, reordered, truncated or extended
// bytes. The reader never returns short plaintext with a clean EOF instead.
var ErrDecrypt = errors.New("blob: cannot decrypt (wrong key, wrong context or tampered data)")

// errDEKSize is returned for a data key that is not DEKSize bytes.
var errDEKSize = fmt.Errorf("blob: a data key must be %d bytes", DEKSize)

// NewDEK returns a fresh random data key.
func NewDEK() ([]byte, error) {
	dek := make([]byte, DEKSize)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("blob: generating a data key: %w", err)
	}
	return dek, nil
}

func newAEAD(dek []byte) (*subtle.AESGCMHKDF, error) {
	if len(dek) != DEKSize {
		return nil, errDEKSize
	}
	// firstSegmentOffset 0: nothing precedes Tink's header in a blob.
	return subtle.NewAESGCMHKDF(dek, hkdfHash, DEKSize, segmentSize, 0)
}

// Encrypt returns a writer that encrypts into w under dek, bound to aad (the caller passes the
// tenant and file ID, so a blob cannot be passed off as another file's); Close writes the last
// segment (and does not close w). Memory is about two segments whatever the file's size.
// Without Close the ciphertext has no last segment and will not decrypt.
func Encrypt(w io.Writer, dek, aad []byte) (io.WriteCloser, error) {
	a, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	ew, err := a.NewEncryptingWriter(w, aad)
	if err != nil {
		return nil, fmt.Errorf("blob: starting encryption: %w", err)
	}
	return &encryptWriter{w: ew}, nil
}

// encryptWriter makes a failure sticky: after a short write to the destination, Tink's writer
// state no longer matches what was written, so nothing more may be written or closed as if the
// stream were whole.
type encryptWriter struct {
	w   io.WriteCloser
	err error
}

func (e *encryptWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = fmt.Errorf("blob: encrypting: %w", err)
		return n, e.err
	}
	return n, nil
}

func (e *encryptWriter) Close() error {
	if e.err != nil {
		return e.err
	}
	if err := e.w.Close(); err != nil {
		e.err = fmt.Errorf("blob: encrypting the last segment: %w", err)
		return e.err
	}
	return nil
}

// Decrypt returns the plaintext of r. Any tampering, truncation, wrong key or wrong aad is a read
// error (ErrDecrypt wrapped) — never silently short data. An error of r itself (ErrCorrupt from
// a blob reader, a network error) is returned wrapped as it is, not as ErrDecrypt. Nothing is
// read from r before the first Read.
func Decrypt(r io.Reader, dek, aad []byte) (io.Reader, error) {
	a, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	return &decryptReader{src: &sourceReader{r: r}, aead: a, aad: aad}, nil
}

type decryptReader struct {
	src  *sourceReader
	aead *subtle.AESGCMHKDF
	aad  []byte
	r    io.Reader // Tink's reader, from the first Read on
	// err is sticky: Tink's reader marks the stream finished before it authenticates the last
	// segment, so a second Read after a failed last segment would report a clean EOF.
	err error
}

func (d *decryptReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.r == nil {
		r, err := d.aead.NewDecryptingReader(d.src, d.aad)
		if err != nil {
			d.err = d.fail(err)
			return 0, d.err
		}
		d.r = r
	}
	n, err := d.r.Read(p)
	switch {
	case err == io.EOF:
		d.err = io.EOF
	case err != nil:
		d.err = d.fail(err)
		return n, d.err
	}
	return n, err
}

// fail tells the source's own failure apart from a ciphertext that does not authenticate (a
// missing header included).
func (d *decryptReader) fail(err error) error {
	if d.src.err != nil {
		return fmt.Errorf("blob: reading ciphertext: %w", d.src.err)
	}
	return fmt.Errorf("%w: %v", ErrDecrypt, err)
}

// sourceReader remembers the first error other than EOF of the reader under Tink's, which
// Tink's header parsing would otherwise flatten into text.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// Overhead returns how many bytes encryption adds to a plaintext of plaintextSize bytes: the
// header and one tag per segment. A negative size counts as empty.
func Overhead(plaintextSize int64) int64 {
	if plaintextSize < 0 {
		plaintextSize = 0
	}
	segments := int64(1)
	if plaintextSize > firstPlainSegment {
		// Tink writes a segment only when more plaintext follows, so a plaintext ending on a
		// segment boundary closes with that full segment, not with an empty one.
		segments += (plaintextSize - firstPlainSegment + plainSegment - 1) / plainSegment
	}
	return headerSize + segments*tagSize
}

// CiphertextSize returns the size of the ciphertext of a plaintext of plaintextSize bytes (for
// limits: a store that must hold a file of n bytes holds CiphertextSize(n)).
func CiphertextSize(plaintextSize int64) int64 {
	if plaintextSize < 0 {
		plaintextSize = 0
	}
	return plaintextSize + Overhead(plaintextSize)
}
