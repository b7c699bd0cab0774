package audit

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxSignedCheckpointSize bounds a signed checkpoint accepted from storage, a file or a bundle.
// A real one is a few hundred bytes; the bound keeps hostile input from costing more than that.
const MaxSignedCheckpointSize = 16 << 10

// timeExtension prefixes the optional extension line carrying the checkpoint time. C2SP
// tlog-checkpoint allows opaque extension lines after the three mandatory ones (and notes they
// are not auditable by monitors): the time is informative only and no check depends on it.
const timeExtension = "time: "

// Errors from ParseCheckpoint and OpenCheckpoint. They never include key material.
var (
	ErrMalformedCheckpoint = errors.New("audit: malformed checkpoint")
	ErrBadSignature        = errors.New("audit: checkpoint is not signed by the log key")
	ErrWrongOrigin         = errors.New("audit: checkpoint is for another log")
	ErrInvalidKey          = errors.New("audit: malformed note key")
)

// Checkpoint is a signed tree head: the log Origin (its identity, e.g. "tutela.example/audit")
// committed to the tree of Size records with root hash Root. Time is when it was signed,
// informative, kept to the second.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	Time   time.Time
}

// Body returns the note text of c in the C2SP tlog-checkpoint format: origin, decimal size and
// base64 root, one per line, then "time: <RFC 3339 UTC>" when Time is set.
func (c Checkpoint) Body() []byte {
	b := make([]byte, 0, len(c.Origin)+100)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Root[:])
	b = append(b, '\n')
	if !c.Time.IsZero() {
		b = append(b, timeExtension...)
		b = c.Time.UTC().AppendFormat(b, time.RFC3339)
		b = append(b, '\n')
	}
	return b
}

func (c Checkpoint) validate() error {
	if !validOrigin(c.Origin) {
		return fmt.Errorf("%w: origin must be non-empty printable text without spaces or '+'", ErrMalformedCheckpoint)
	}
	if c.Size < 0 {
		return fmt.Errorf("%w: negative tree size", ErrMalformedCheckpoint)
	}
	if !c.Time.IsZero() && (c.Time.UTC().Year() < 1 || c.Time.UTC().Year() > 9999) {
		return fmt.Errorf("%w: time out of range", ErrMalformedCheckpoint)
	}
	return nil
}

// validOrigin follows the C2SP recommendation (a schema-less URL with neither spaces nor '+'),
// which is also the note key-name rule, so the origin can name the signing key.
func validOrigin(s string) bool {
	if s == "" || !utf8.ValidString(s) || strings.Contains(s, "+") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == 0x85 || r == 0xa0 || r == 0x1680 ||
			(r >= 0x2000 && r <= 0x200a) || r == 0x2028 || r == 0x2029 || r == 0x202f ||
			r == 0x205f || r == 0x3000 {
			return false
		}
	}
	return true
}

// ParseCheckpoint parses a checkpoint note body (not the signed note: see OpenCheckpoint). It is
// strict about the three mandatory lines — canonical decimal size without leading zeros, padded
// standard base64 of exactly 32 bytes — so one tree head has one spelling. Unknown extension
// lines are ignored, as C2SP requires; a malformed time line is an error.
func ParseCheckpoint(body []byte) (Checkpoint, error) {
	var c Checkpoint
	if len(body) > MaxSignedCheckpointSize {
		return c, fmt.Errorf("%w: too large", ErrMalformedCheckpoint)
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return c, fmt.Errorf("%w: must end with a newline", ErrMalformedCheckpoint)
	}
	lines := strings.Split(string(body[:len(body)-1]), "\n")
	if len(lines) < 3 {
		return c, fmt.Errorf("%w: fewer than three lines", ErrMalformedCheckpoint)
	}
	c.Origin = lines[0]
	if !validOrigin(c.Origin) {
		return Checkpoint{}, fmt.Errorf("%w: bad origin line", ErrMalformedCheckpoint)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: bad tree size line", ErrMalformedCheckpoint)
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: bad root hash line", ErrMalformedCheckpoint)
	}
	copy(c.Root[:], root)
	for _, ext := range lines[3:] {
		if ext == "" {
			return Checkpoint{}, fmt.Errorf("%w: empty extension line", ErrMalformedCheckpoint)
		}
		v, ok := strings.CutPrefix(ext, timeExtension)
		if !ok {
			continue
		}
		if !c.Time.IsZero() {
			return Checkpoint{}, fmt.Errorf("%w: two time lines", ErrMalformedCheckpoint)
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil || t.Location() != time.UTC || t.Format(time.RFC3339) != v || t.IsZero() {
			return Checkpoint{}, fmt.Errorf("%w: bad time line", ErrMalformedCheckpoint)
		}
		c.Time = t
	}
	return c, nil
}

// GenerateKey returns a new Ed25519 note key pair named name (use the log origin, as C2SP
// recommends). skey is the private signer key ("PRIVATE+KEY+name+hash+data"): keep it secret,
// write it 0600. vkey is the public verifier key ("name+hash+data") to give to auditors.
func GenerateKey(name string) (skey, vkey string, err error) {
	if !validOrigin(name) {
		return "", "", fmt.Errorf("%w: key name must be non-empty without spaces or '+'", ErrInvalidKey)
	}
	return note.GenerateKey(rand.Reader, name)
}

// Signer signs checkpoints with the log's private key. It prints and logs as "[redacted]" under
// every fmt verb and slog, so neither it nor anything holding it can leak the key.
type Signer struct {
	s note.Signer
}

// NewSigner parses a private note key as made by GenerateKey. The error never repeats the key.
func NewSigner(skey string) (*Signer, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		// note's errors do not contain the key, but say nothing about it at all to be sure.
		return nil, ErrInvalidKey
	}
	return &Signer{s: s}, nil
}

// Name returns the key name.
func (s Signer) Name() string {
	if s.s == nil {
		return ""
	}
	return s.s.Name()
}

// Sign returns c as a signed note: the checkpoint body, a blank line and one signature line.
func (s Signer) Sign(c Checkpoint) ([]byte, error) {
	if s.s == nil {
		return nil, ErrInvalidKey
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: string(c.Body())}, s.s)
	if err != nil {
		return nil, fmt.Errorf("audit: signing checkpoint: %w", err)
	}
	return msg, nil
}

func (Signer) String() string             { return Redacted }
func (Signer) GoString() string           { return Redacted }
func (Signer) LogValue() slog.Value       { return slog.StringValue(Redacted) }
func (Signer) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// OpenCheckpoint verifies a signed checkpoint note with the verifier key vkey and checks that it
// is for the log named origin. A checkpoint that verifies under another key, or is for another
// log signed by the same key, is rejected: the caller learns only checkpoints this log's key
// committed to for this log. Errors wrap ErrInvalidKey, ErrMalformedCheckpoint, ErrBadSignature
// or ErrWrongOrigin.
func OpenCheckpoint(signed []byte, vkey, origin string) (Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Checkpoint{}, ErrInvalidKey
	}
	if len(signed) > MaxSignedCheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: too large", ErrMalformedCheckpoint)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("%w: no signature by key %s", ErrBadSignature, v.Name())
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("%w: signature by key %s does not verify", ErrBadSignature, v.Name())
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("%w: origin %q, want %q", ErrWrongOrigin, c.Origin, origin)
	}
	return c, nil
}
