package tutela

import (
	"crypto/subtle"
	"log/slog"
)

// Secret holds sensitive bytes (a password, a token, a key). It prints and logs as
// "[redacted]" so it cannot leak through fmt or slog by accident, and it has no == that would
// compare in variable time: use Equal.
type Secret struct{ b []byte }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{b: []byte(s)} }

// NewSecretBytes wraps b (not copied).
func NewSecretBytes(b []byte) Secret { return Secret{b: b} }

// Reveal returns the secret's text. Call it only where the value is used.
func (s Secret) Reveal() string { return string(s.b) }

// Bytes returns the secret's bytes. Call it only where the value is used.
func (s Secret) Bytes() []byte { return s.b }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Equal compares in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }
