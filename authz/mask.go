package authz

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"unicode/utf8"
)

// Mask is how a field is shown to a principal.
type Mask string

// Masks.
const (
	MaskFull     Mask = "full"     // as stored
	MaskPartial  Mask = "partial"  // the last 4 characters (e-mail: first letter and domain)
	MaskHashed   Mask = "hashed"   // keyed, stable hash: equal values stay comparable
	MaskRedacted Mask = "redacted" // "[redacted]": the field exists but is not shown
	MaskHidden   Mask = "hidden"   // the field is removed
)

// Rank orders masks from the most revealing (full, 0) to the least (hidden, 4); -1 for an
// unknown mask.
func (m Mask) Rank() int {
	return slices.Index([]Mask{MaskFull, MaskPartial, MaskHashed, MaskRedacted, MaskHidden}, m)
}

// ViewWidened reports whether a role changed from (beforeClearance, beforeMasks) to
// (afterClearance, afterMasks) shows its holders any classified field more clearly: its
// effective mask (the clearance's default, then the role's overrides; none means full) becomes
// more revealing.
func ViewWidened(beforeClearance Classification, beforeMasks map[string]Mask, afterClearance Classification, afterMasks map[string]Mask) bool {
	before, after := MasksFor(beforeClearance, beforeMasks), MasksFor(afterClearance, afterMasks)
	rank := func(m map[string]Mask, f string) int {
		if v, ok := m[f]; ok {
			return v.Rank()
		}
		return MaskFull.Rank()
	}
	for f := range before {
		if rank(after, f) < rank(before, f) {
			return true
		}
	}
	return false
}

// Valid reports whether m is a known mask.
func (m Mask) Valid() bool {
	switch m {
	case MaskFull, MaskPartial, MaskHashed, MaskRedacted, MaskHidden:
		return true
	}
	return false
}

// Masker applies masks. It is the one function every API response with classified fields goes
// through (httpapi calls ApplyScoped on the JSON object before writing it).
type Masker struct {
	key []byte // HMAC key for MaskHashed, so hashes cannot be reversed by guessing
}

// NewMasker returns a masker whose hashed mask uses key (keep it secret and stable).
func NewMasker(key []byte) *Masker { return &Masker{key: append([]byte(nil), key...)} }

// ApplyScoped masks the fields of obj (a decoded JSON object of resource, in tenant tenantID)
// in place according to masks. The hashed mask is bound to the tenant and to resource.field:
// equal values stay comparable within one field of one tenant (the mask's purpose), but the
// same value masked in another tenant or another field gives an unrelated string, so masks
// cannot be joined across tenants to confirm that a guessed value is held.
func (m *Masker) ApplyScoped(obj map[string]any, masks map[string]Mask, tenantID, resource string) {
	for field, mask := range masks {
		v, ok := obj[field]
		if !ok {
			continue
		}
		switch mask {
		case MaskHidden:
			delete(obj, field)
		case MaskRedacted:
			obj[field] = "[redacted]"
		case MaskHashed:
			if s, ok := v.(string); ok {
				obj[field] = m.hash(tenantID, resource+"."+field, s)
			} else {
				obj[field] = "[redacted]"
			}
		case MaskPartial:
			if s, ok := v.(string); ok {
				obj[field] = partial(s)
			} else {
				obj[field] = "[redacted]"
			}
		case MaskFull:
		default:
			// Fail closed: an unknown mask hides the value.
			obj[field] = "[redacted]"
		}
	}
}

// hash is HMAC-SHA256 under the field-masking key over the length-prefixed (4-byte big-endian
// length, then the bytes) tenant ID, "resource.field" and value: no two different triples
// encode alike, whatever bytes they hold.
func (m *Masker) hash(tenantID, field, value string) string {
	h := hmac.New(sha256.New, m.key)
	for _, part := range []string{tenantID, field, value} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part))) // #nosec G115 -- a length prefix of a request field; bodies are capped far below 4 GiB
		h.Write(n[:])
		h.Write([]byte(part))
	}
	return "h:" + hex.EncodeToString(h.Sum(nil))[:32]
}

// partial keeps an e-mail's first character and domain, or any other value's last 4
// characters (none if the value is 4 characters or shorter).
func partial(s string) string {
	if local, domain, ok := strings.Cut(s, "@"); ok && local != "" {
		r, _ := utf8.DecodeRuneInString(local)
		return string(r) + "***@" + domain
	}
	n := utf8.RuneCountInString(s)
	if n <= 4 {
		return strings.Repeat("*", n)
	}
	runes := []rune(s)
	return strings.Repeat("*", n-4) + string(runes[n-4:])
}
