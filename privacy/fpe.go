package privacy

import (
	"context"
	"strconv"

	"tutela/vault"
)

// Format-preserving tokens. Each letter or digit of the value is replaced by one drawn from the
// PRF's output (tokens keyset, bound to field and attempt), with rejection sampling so every
// digit and letter is equally likely; everything else (+, -, spaces, @, .) stays, and so does
// the length. This is not format-preserving encryption (FF1/FF3-1): the token is not
// decryptable, the token vault maps it back, so a collision with another value's token is
// possible and resolved by trying the next attempt. Tutela implements no cipher of its own.
//
// Two candidates are never used: the value itself, and for card-like values (13 or more
// digits and nothing else but separators) one that passes the Luhn check, so a token is never
// mistaken for, or accepted as, a real card number. Systems downstream that check Luhn will
// refuse such tokens; that is the point.

// cardLikeDigits is the shortest payment card number (ISO/IEC 7812 allows 8, issued cards
// have 13 to 19).
const cardLikeDigits = 13

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// formatPreserving is the attempt-th acceptable shaped candidate of value.
func (tk Tokenizer) formatPreserving(ctx context.Context, tenantID, field, value string, keyID uint32, attempt int) (string, error) {
	cardLike := isCardLike(value)
	seen := 0
	for j := 0; j < 16*maxAttempts; j++ {
		cand, err := tk.shape(ctx, tenantID, field, value, keyID, j)
		if err != nil {
			return "", err
		}
		if cand == value || (cardLike && luhnValid(cand)) {
			continue
		}
		if seen == attempt {
			return cand, nil
		}
		seen++
	}
	return "", ErrTokenSpace
}

// shape draws one candidate: derivation j of value's shape.
func (tk Tokenizer) shape(ctx context.Context, tenantID, field, value string, keyID uint32, j int) (string, error) {
	var stream []byte
	block := 0
	next := func() (byte, error) {
		if len(stream) == 0 {
			b, err := tk.Vault.PRF(ctx, tenantID, vault.PurposeTokens, keyID,
				prfInput("shape/"+strconv.Itoa(block), FormatPreserving, field, uint32(j), value), digestLen) // #nosec G115 -- j is a small derivation counter (bounded by the caller's attempts)
			if err != nil {
				return 0, err
			}
			stream, block = b, block+1
		}
		b := stream[0]
		stream = stream[1:]
		return b, nil
	}
	// draw returns a uniform index below n: bytes at or above the largest multiple of n are
	// rejected, so no digit or letter is likelier than another.
	draw := func(n int) (byte, error) {
		limit := 256 - 256%n
		for {
			b, err := next()
			if err != nil {
				return 0, err
			}
			if int(b) < limit {
				return byte(int(b) % n), nil // #nosec G115 -- a value modulo n <= 256 of a byte fits a byte
			}
		}
	}
	out := []byte(value)
	for i := 0; i < len(out); i++ {
		var base byte
		var n int
		switch c := out[i]; {
		case isDigit(c):
			base, n = '0', 10
		case isLower(c):
			base, n = 'a', 26
		case isUpper(c):
			base, n = 'A', 26
		default:
			continue
		}
		d, err := draw(n)
		if err != nil {
			return "", err
		}
		out[i] = base + d
	}
	return string(out), nil
}

// isCardLike reports whether value has at least cardLikeDigits digits and no letters.
func isCardLike(value string) bool {
	digits := 0
	for i := 0; i < len(value); i++ {
		switch c := value[i]; {
		case isDigit(c):
			digits++
		case isLower(c) || isUpper(c):
			return false
		}
	}
	return digits >= cardLikeDigits
}

// luhnValid reports whether the digits of s pass the Luhn (mod 10) check of ISO/IEC 7812-1.
func luhnValid(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
