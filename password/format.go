package password

import (
	"crypto/pbkdf2"
	"crypto/sha1" // #nosec G505 -- only to verify imported Django PBKDF2-SHA1 hashes, which are then rehashed with argon2id
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Errors for stored hashes Verify cannot use. They mean the stored data is corrupt or from a
// system we do not support, never that the password was wrong, and they never include the
// hash or the password.
var (
	ErrMalformedHash   = errors.New("password: malformed hash")
	ErrUnsupportedHash = errors.New("password: unsupported hash algorithm")
)

// Upper bounds for imported legacy hashes, so a corrupt or hostile stored hash cannot make one
// verification run for minutes.
const (
	maxBcryptCost       = 16      // 2^16 rounds, several seconds; common deployments use 10–12
	maxPBKDF2Iterations = 5000000 // Django 5.2 uses 1,000,000
	maxDjangoSaltLen    = 1024
	bcryptMaxPassword   = 72 // bytes bcrypt reads; the rest of a longer password is ignored
)

type algorithm int

const (
	algArgon2id algorithm = iota + 1
	algArgon2i
	algBcrypt
	algPBKDF2SHA256
	algPBKDF2SHA1
)

// parsedHash is a stored hash taken apart and checked, ready to compare.
type parsedHash struct {
	alg algorithm
	// imported is true for formats Hash never produces, whose passwords were not normalised.
	imported bool
	// peppered argon2id hashes were computed over Pepper(pepperID, password), not the password.
	peppered bool
	pepperID uint32

	memory, time uint32 // argon2
	threads      uint8  // argon2
	iterations   int    // pbkdf2
	salt, key    []byte // argon2, pbkdf2
	bcrypt       []byte // the whole bcrypt string, which x/crypto/bcrypt parses itself
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupportedHash, fmt.Sprintf(format, args...))
}

// parseHash recognises a stored hash by its prefix and validates every field. It is strict:
// anything it accepts has one canonical form, so tampering with any field is either rejected
// here or changes the derived key.
func parseHash(encoded string) (*parsedHash, error) {
	switch {
	case strings.HasPrefix(encoded, "$argon2"):
		return parsePHCArgon2(encoded, false)
	case strings.HasPrefix(encoded, "argon2$argon2"):
		// Django's Argon2PasswordHasher stores "argon2" + the PHC string.
		return parsePHCArgon2(encoded[len("argon2"):], true)
	case strings.HasPrefix(encoded, "$2"):
		return parseBcrypt(encoded)
	case strings.HasPrefix(encoded, "pbkdf2_"):
		return parseDjangoPBKDF2(encoded)
	case encoded == "":
		return nil, malformed("empty hash")
	default:
		return nil, unsupported("unrecognised hash format")
	}
}

// parsePHCArgon2 parses $argon2{id,i,d}$v=19$m=M,t=T,p=P$salt$hash
// (https://github.com/P-H-C/phc-string-format/blob/master/phc-sf-spec.md), and Tutela's peppered
// argon2id, $argon2id$v=19$m=M,t=T,p=P,pepper=K$salt$hash, where K is the decimal ID of the pepper
// key the password went through first (Hasher.Hash). "pepper" is our own parameter name, not
// Argon2's secret input ("keyid" in the PHC spec): no other tool can verify these hashes, and one
// that ignored the parameter would compute over the wrong input and fail closed.
func parsePHCArgon2(s string, django bool) (*parsedHash, error) {
	f := strings.Split(s, "$")
	if len(f) < 2 || f[0] != "" {
		return nil, malformed("argon2: bad layout")
	}
	ph := &parsedHash{imported: django}
	switch f[1] {
	case "argon2id":
		ph.alg = algArgon2id
	case "argon2i":
		ph.alg = algArgon2i
		ph.imported = true
	case "argon2d":
		return nil, unsupported("argon2d (golang.org/x/crypto/argon2 implements only argon2i and argon2id)")
	default:
		return nil, unsupported("unrecognised argon2 variant")
	}
	if len(f) != 6 {
		if len(f) == 5 && strings.HasPrefix(f[2], "m=") {
			// The reference implementation omits v= for version 0x10.
			return nil, unsupported("argon2 version 16 (only version 19 is implemented)")
		}
		return nil, malformed("argon2: want 5 fields")
	}
	switch f[2] {
	case "v=19":
	case "v=16":
		return nil, unsupported("argon2 version 16 (only version 19 is implemented)")
	default:
		return nil, malformed("argon2: bad version field")
	}

	params := strings.Split(f[3], ",")
	if len(params) == 4 {
		// Only Hash writes a pepper, and only on argon2id in PHC form.
		id, ok := decimalField(params[3], "pepper=", math.MaxUint32)
		if !ok || django || ph.alg != algArgon2id {
			return nil, malformed("argon2: bad pepper parameter")
		}
		ph.peppered, ph.pepperID = true, uint32(id) // #nosec G115 -- decimalField bounded it by math.MaxUint32
		params = params[:3]
	}
	if len(params) != 3 {
		return nil, malformed("argon2: want parameters m, t and p")
	}
	m, ok1 := decimalField(params[0], "m=", maxMemoryKiB)
	t, ok2 := decimalField(params[1], "t=", maxTime)
	p, ok3 := decimalField(params[2], "p=", 255)
	if !ok1 || !ok2 || !ok3 {
		return nil, malformed("argon2: bad or out-of-range parameters")
	}
	if t < 1 || p < 1 || m < 8*p {
		return nil, malformed("argon2: parameters below minimum")
	}
	ph.memory, ph.time, ph.threads = uint32(m), uint32(t), uint8(p) // #nosec G115 -- decimalField bounded m, t and p by maxMemoryKiB, maxTime and 255

	var err error
	if ph.salt, err = decodeBase64(b64, f[4]); err != nil {
		return nil, malformed("argon2: salt is not base64")
	}
	if len(ph.salt) < minSaltLen || len(ph.salt) > maxSaltLen {
		return nil, malformed("argon2: salt length out of range")
	}
	if ph.key, err = decodeBase64(b64, f[5]); err != nil {
		return nil, malformed("argon2: hash is not base64")
	}
	if len(ph.key) < minKeyLen || len(ph.key) > maxKeyLen {
		return nil, malformed("argon2: hash length out of range")
	}
	return ph, nil
}

// decodeBase64 decodes s, rejecting the CR and LF that encoding/base64 otherwise skips, so
// that an accepted field has exactly one spelling.
func decodeBase64(enc *base64.Encoding, s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	return enc.DecodeString(s)
}

// decimalField parses "name=N" where N is a canonical decimal (no sign, no leading zeros, as the
// PHC format requires) no greater than limit.
func decimalField(s, name string, limit uint64) (uint64, bool) {
	v, ok := strings.CutPrefix(s, name)
	if !ok {
		return 0, false
	}
	return canonicalDecimal(v, limit)
}

func canonicalDecimal(s string, limit uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > limit {
		return 0, false
	}
	return n, true
}

// bcryptAlphabet is bcrypt's own base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// parseBcrypt checks the modular crypt layout $2b$CC$<22 salt><31 hash> before handing the
// string to x/crypto/bcrypt, which is lenient about separators. $2a$, $2b$ and $2y$ differ only
// in bugs of other implementations that x/crypto/bcrypt does not share; $2x$ (crypt_blowfish's
// buggy mode) is not supported.
func parseBcrypt(s string) (*parsedHash, error) {
	if strings.HasPrefix(s, "$2x$") {
		return nil, unsupported("bcrypt $2x$")
	}
	if len(s) != 60 {
		return nil, malformed("bcrypt: want 60 characters")
	}
	switch s[:4] {
	case "$2a$", "$2b$", "$2y$":
	default:
		return nil, unsupported("unrecognised bcrypt variant")
	}
	if s[6] != '$' || s[4] < '0' || s[4] > '9' || s[5] < '0' || s[5] > '9' {
		return nil, malformed("bcrypt: bad cost")
	}
	cost := int(s[4]-'0')*10 + int(s[5]-'0')
	if cost < bcrypt.MinCost || cost > maxBcryptCost {
		return nil, malformed("bcrypt: cost out of range")
	}
	for i := 7; i < len(s); i++ {
		if strings.IndexByte(bcryptAlphabet, s[i]) < 0 {
			return nil, malformed("bcrypt: bad salt or hash character")
		}
	}
	return &parsedHash{alg: algBcrypt, imported: true, bcrypt: []byte(s)}, nil
}

// parseDjangoPBKDF2 parses Django's "pbkdf2_sha256$<iterations>$<salt>$<base64 hash>"; the salt
// is used as its UTF-8 bytes and the hash is padded standard base64.
func parseDjangoPBKDF2(s string) (*parsedHash, error) {
	f := strings.Split(s, "$")
	if len(f) != 4 {
		return nil, malformed("pbkdf2: want 4 fields")
	}
	ph := &parsedHash{imported: true}
	var size int
	switch f[0] {
	case "pbkdf2_sha256":
		ph.alg, size = algPBKDF2SHA256, sha256.Size
	case "pbkdf2_sha1":
		ph.alg, size = algPBKDF2SHA1, sha1.Size
	default:
		return nil, unsupported("unrecognised pbkdf2 variant")
	}
	iter, ok := canonicalDecimal(f[1], maxPBKDF2Iterations)
	if !ok || iter < 1 {
		return nil, malformed("pbkdf2: bad or out-of-range iteration count")
	}
	ph.iterations = int(iter) // #nosec G115 -- canonicalDecimal bounded it by maxPBKDF2Iterations
	if f[2] == "" || len(f[2]) > maxDjangoSaltLen {
		return nil, malformed("pbkdf2: bad salt")
	}
	ph.salt = []byte(f[2])
	key, err := decodeBase64(base64.StdEncoding.Strict(), f[3])
	if err != nil || len(key) != size {
		return nil, malformed("pbkdf2: bad hash")
	}
	ph.key = key
	return ph, nil
}

// matches derives the key for pw with ph's parameters and compares in constant time.
func (ph *parsedHash) matches(pw string) (bool, error) {
	switch ph.alg {
	case algArgon2id:
		got := argon2.IDKey([]byte(pw), ph.salt, ph.time, ph.memory, ph.threads, uint32(len(ph.key))) // #nosec G115 -- the key length is the decoded hash's, bounded by the parser
		return constantTimeEqual(got, ph.key), nil
	case algArgon2i:
		got := argon2.Key([]byte(pw), ph.salt, ph.time, ph.memory, ph.threads, uint32(len(ph.key))) // #nosec G115 -- the key length is the decoded hash's, bounded by the parser
		return constantTimeEqual(got, ph.key), nil
	case algBcrypt:
		// CompareHashAndPassword compares in constant time itself. bcrypt uses only the first
		// 72 bytes of a password, so any longer input whose first 72 bytes match would verify,
		// and sign-in would then store a hash of whatever was typed: a longer input is refused
		// (ASVS 6.2.8: the password is verified exactly as entered). The hash is still computed,
		// so the refusal takes as long as any wrong password and does not show which accounts
		// have an imported bcrypt hash.
		err := bcrypt.CompareHashAndPassword(ph.bcrypt, []byte(pw))
		switch {
		case err != nil && !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, malformed("bcrypt: %v", err)
		case err != nil || len(pw) > bcryptMaxPassword:
			return false, nil
		default:
			return true, nil
		}
	case algPBKDF2SHA256:
		return ph.pbkdf2(sha256.New, pw)
	case algPBKDF2SHA1:
		return ph.pbkdf2(sha1.New, pw)
	default:
		return false, unsupported("unknown algorithm")
	}
}

// PepperKeyID reports the pepper key a stored hash was made with; ok is false for a hash without
// pepper (imported or made before the pepper) and for anything that does not parse. `tutela keys
// retire` uses it to refuse destroying a key that stored hashes still need.
func PepperKeyID(encoded string) (id uint32, ok bool) {
	ph, err := parseHash(encoded)
	if err != nil || !ph.peppered {
		return 0, false
	}
	return ph.pepperID, true
}

// constantTimeEqual compares two derived keys without leaking, through timing, how long a
// prefix matched.
func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

func (ph *parsedHash) pbkdf2(h func() hash.Hash, pw string) (bool, error) {
	got, err := pbkdf2.Key(h, pw, ph.salt, ph.iterations, len(ph.key))
	if err != nil {
		return false, fmt.Errorf("password: pbkdf2: %w", err)
	}
	return constantTimeEqual(got, ph.key), nil
}
