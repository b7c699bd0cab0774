package privacy

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"regexp"
	"unicode/utf8"

	"tutela"
	"tutela/vault"
)

// TokenKind says how a token relates to its value.
type TokenKind string

// Token kinds.
const (
	// Deterministic: the same value of the same field in the same tenant always gets the same
	// token, so tokenized data can still be joined and deduplicated. Another field or tenant
	// gets an unrelated token.
	Deterministic TokenKind = "deterministic"
	// Random: a fresh token every time, so two tokens of one value cannot be linked.
	Random TokenKind = "random"
	// FormatPreserving: deterministic, and shaped like the value (digits stay digits, letters
	// letters of the same case, other characters and the length unchanged) for systems
	// downstream that check the shape.
	FormatPreserving TokenKind = "format_preserving"
)

// Valid reports whether k is a known kind.
func (k TokenKind) Valid() bool { return k == Deterministic || k == Random || k == FormatPreserving }

// Limits of one tokenization.
const (
	// MaxTokenValue is the largest value tokenized, in bytes: field values, not documents.
	MaxTokenValue = 1024
	// MinFormatPreserving is the fewest letters and digits a format-preserving value must have.
	// Its tokens live in the value's own shape, 10^n for n digits: a 4-digit PIN has 10,000
	// tokens, which the values of one field soon exhaust (each value needs its own), and a
	// collision retry loop that cannot terminate. Guessing a token reveals nothing without the
	// vault, but a space that small is no pseudonym; use a deterministic token instead.
	MinFormatPreserving = 6
	// maxAttempts bounds the search for a free format-preserving token (another value holds the
	// candidate) or a random one (practically never needed).
	maxAttempts = 64
	// tokenBytes is the entropy of deterministic and random tokens: 160 bits, so two values
	// never share a token in practice.
	tokenBytes = 20
)

// TokenPrefix starts every deterministic and random token, so a token is never mistaken for a
// value (format-preserving tokens, by design, have the value's shape instead).
const TokenPrefix = "tok_"

// ErrNoTokenKeys means the tenant's tokens or personal_data keyset does not exist yet: call
// Tokenizer.Prepare outside the store's transaction, then tokenize again. Keysets are created
// in their own transaction, which SQLite's single writer cannot start inside another.
var ErrNoTokenKeys = errors.New("privacy: the tenant's token keys do not exist yet")

// ErrTokenSpace means no free format-preserving token was found for a value: the field's
// token space is (nearly) used up.
var ErrTokenSpace = tutela.Errorf(tutela.ECONFLICT, "no free format-preserving token for this value; use a deterministic token")

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// fieldPattern is the shape of a tokenized field's name: a schema field name, or
// "resource.field".
var fieldPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}(\.[a-z][a-z0-9_]{0,62})?$`)

// ValidTokenField reports whether name may name a tokenized field.
func ValidTokenField(name string) bool { return fieldPattern.MatchString(name) }

// CheckTokenValue refuses a value that cannot be tokenized as kind, with a client-safe error
// that never repeats the value.
func CheckTokenValue(kind TokenKind, value string) error {
	switch {
	case value == "":
		return tutela.FieldErrorf("values", "a value is empty")
	case len(value) > MaxTokenValue:
		return tutela.FieldErrorf("values", "a value is longer than %d bytes", MaxTokenValue)
	case !utf8.ValidString(value) || !tutela.ValidText(value):
		return tutela.FieldErrorf("values", "a value is not UTF-8 text without control characters")
	}
	if kind != FormatPreserving {
		return nil
	}
	n := 0
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c >= 0x80 {
			// A non-ASCII letter kept as is would leak; mapped to ASCII it would change the shape.
			return tutela.FieldErrorf("values", "format-preserving tokens take ASCII values only")
		}
		if isDigit(c) || isLower(c) || isUpper(c) {
			n++
		}
	}
	if n < MinFormatPreserving {
		return tutela.FieldErrorf("values", "format-preserving tokens need at least %d letters or digits: a smaller token space runs out; use a deterministic token", MinFormatPreserving)
	}
	return nil
}

// Tokenizer derives tokens with the tenant's tokens PRF keyset (HMAC-SHA256) and seals
// tenant-held values with its personal_data keyset. It holds no state; the token vault (store)
// keeps token → value.
type Tokenizer struct{ Vault *vault.Vault }

// Prepare creates the tenant's tokens and personal_data keysets if missing. It writes in its own
// transaction: call it outside the store's.
func (tk Tokenizer) Prepare(ctx context.Context, tenantID string) error {
	if _, err := tk.Vault.PRFPrimaryKey(ctx, tenantID, vault.PurposeTokens); err != nil {
		return err
	}
	// The vault creates an AEAD keyset on first encryption; there is no other way to ask for
	// one, and this ciphertext is discarded.
	_, err := tk.Vault.Encrypt(ctx, tenantID, vault.PurposePersonalData, nil, vault.AAD("token_values", "prepare", tenantID))
	return err
}

// prfInput binds a PRF input to its use, kind and field: a digest is never a token, and one
// field's tokens are unrelated to another's.
func prfInput(use string, kind TokenKind, field string, attempt uint32, value string) []byte {
	b := vault.LengthPrefixed("tutela/token/v1", use, string(kind), field)
	b = binary.BigEndian.AppendUint32(b, attempt)
	return append(b, value...)
}

// Digests are value's lookup digests for a deterministic or format-preserving token under every
// enabled tokens key, primary first: the token vault finds a value's existing token with them,
// including one made before a key rotation. A tenant without the keyset is ErrNoTokenKeys.
func (tk Tokenizer) Digests(ctx context.Context, tenantID string, kind TokenKind, field, value string) ([]Digest, error) {
	ids, err := tk.Vault.PRFKeyIDs(ctx, tenantID, vault.PurposeTokens)
	if errors.Is(err, vault.ErrNoKeyset) {
		return nil, ErrNoTokenKeys
	}
	if err != nil {
		return nil, err
	}
	in := prfInput("digest", kind, field, 0, value)
	out := make([]Digest, 0, len(ids))
	for _, id := range ids {
		sum, err := tk.Vault.PRF(ctx, tenantID, vault.PurposeTokens, id, in, digestLen)
		if err != nil {
			return nil, err
		}
		out = append(out, Digest{KeyID: id, Sum: sum})
	}
	return out, nil
}

// DigestUnder is value's lookup digest under tokens key keyID: what `keys rewrap` stores when
// it moves a token's digest to a new primary key. The token itself never changes.
func (tk Tokenizer) DigestUnder(ctx context.Context, tenantID string, keyID uint32, kind TokenKind, field, value string) ([]byte, error) {
	return tk.Vault.PRF(ctx, tenantID, vault.PurposeTokens, keyID, prfInput("digest", kind, field, 0, value), digestLen)
}

// Candidate is the attempt-th candidate token of value under tokens key keyID: attempt 0 is
// the token unless another value already holds it (possible for format-preserving tokens, whose
// space is the value's shape), in which case the vault tries the next.
func (tk Tokenizer) Candidate(ctx context.Context, tenantID string, kind TokenKind, field, value string, keyID uint32, attempt int) (string, error) {
	switch kind {
	case Deterministic:
		sum, err := tk.Vault.PRF(ctx, tenantID, vault.PurposeTokens, keyID, prfInput("token", kind, field, uint32(attempt), value), tokenBytes) // #nosec G115 -- attempt is a small retry counter (bounded by the caller)
		if err != nil {
			return "", err
		}
		return TokenPrefix + tokenEncoding.EncodeToString(sum), nil
	case FormatPreserving:
		return tk.formatPreserving(ctx, tenantID, field, value, keyID, attempt)
	}
	return "", tutela.FieldErrorf("kind", "kind must be deterministic, random or format_preserving")
}

// RandomToken is a fresh random token (160 bits from crypto/rand).
func RandomToken() string {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		panic("privacy: random source failed: " + err.Error())
	}
	return TokenPrefix + tokenEncoding.EncodeToString(b)
}

// MaxAttempts is how many candidates the vault tries before giving up (ErrTokenSpace).
func MaxAttempts() int { return maxAttempts }

// SealTenantValue encrypts a tenant-held value (no person) for token tokenID under the tenant's
// personal_data keyset, bound to the token: a ciphertext moved to another token does not open.
func (tk Tokenizer) SealTenantValue(ctx context.Context, tenantID, tokenID, value string) ([]byte, error) {
	return tk.Vault.Encrypt(ctx, tenantID, vault.PurposePersonalData, []byte(value), vault.AAD("token_values", "ciphertext", tokenID))
}

// OpenTenantValue decrypts what SealTenantValue made.
func (tk Tokenizer) OpenTenantValue(ctx context.Context, tenantID, tokenID string, ct []byte) (string, error) {
	pt, err := tk.Vault.Decrypt(ctx, tenantID, vault.PurposePersonalData, ct, vault.AAD("token_values", "ciphertext", tokenID))
	return string(pt), err
}

// PersonValueField is the field a person-held token value is sealed as (PersonKey.Seal): bound
// to the token, so the ciphertext opens for no other token or field of that person.
func PersonValueField(tokenID string) string { return "token_values/" + tokenID }
