package tutela

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on an e-mail address, RFC 5321 §4.5.3.1: a local part of 64 octets, and a path of
// 256 octets including the angle brackets, so 254 for the address itself.
const (
	MaxEmailLocalBytes = 64
	MaxEmailBytes      = 254
)

// ValidEmail reports whether s is an address Tutela stores for a user and sends mail to: an
// ASCII dot-atom local part (RFC 5322 §3.2.3), "@", and a DNS host name (RFC 5321 §4.1.2:
// letters, digits and inner hyphens, labels of at most 63 characters), with no surrounding
// space or display name. It is the one rule for both the user store and the mail package, so
// no account can hold an address the mailer would refuse.
//
// It refuses on purpose what RFC 5322 allows but a person's address does not need: quoted local
// parts (`"a b"@host`, which net/mail returns unquoted and could add parameters to an SMTP
// command), address literals (`x@[127.0.0.1]`, mail aimed at an internal host) and non-ASCII
// (RFC 6531) addresses, where a Cyrillic "а" or a zero-width space makes a look-alike of an
// existing account that NFKC normalisation and case folding do not catch.
func ValidEmail(s string) bool {
	if len(s) > MaxEmailBytes {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || len(local) > MaxEmailLocalBytes || !dotAtom(local) {
		return false
	}
	return validHostname(domain)
}

// dotAtom reports whether s is non-empty runs of RFC 5322 atext separated by single dots.
func dotAtom(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if !isAtext(part[i]) {
				return false
			}
		}
	}
	return true
}

// isAtext is RFC 5322 §3.2.3 atext.
func isAtext(c byte) bool {
	return isLetDig(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func isLetDig(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// validHostname reports whether s is a DNS host name: labels of 1-63 letters, digits and
// hyphens that neither start nor end with a hyphen (RFC 1123 §2.1). The last label must not be
// all digits (RFC 3696 §2), so a dotted IPv4 address is not taken for a domain.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	last := ""
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !isLetDig(label[i]) && label[i] != '-' {
				return false
			}
		}
		last = label
	}
	return strings.Trim(last, "0123456789") != ""
}

// ValidText reports whether s may be stored in a free-text name field (a display name, tenant
// or role name): valid UTF-8 with no control characters (Unicode Cc), format characters (Cf)
// or line and paragraph separators (Zl, Zp). Letters, marks, digits, spaces and punctuation of
// every script are allowed, so names in Arabic, Cyrillic or CJK, with accents, are kept.
//
// The threats: NUL truncates strings in C libraries and PostgreSQL refuses it in text; CR, LF
// and the separators forge lines in logs, audit exports and e-mail; ESC starts ANSI sequences
// in an operator's terminal; bidi overrides and isolates (U+202E, CVE-2021-42574 "Trojan
// Source") reorder what an administrator reads, and zero-width characters make two names that
// look identical compare different.
//
// One exception: the zero-width non-joiner and joiner (U+200C, U+200D) between two letters (or
// marks) of a script that needs them to spell a name (Persian, Kurdish, Urdu in Arabic script;
// the Indic scripts); between Latin, Cyrillic or other letters they are refused.
func ValidText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	rs := []rune(s)
	for i, r := range rs {
		if (r == '\u200c' || r == '\u200d') && i > 0 && i < len(rs)-1 && joining(rs[i-1]) && joining(rs[i+1]) {
			continue
		}
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return false
		}
	}
	return true
}

// joiningScripts are the scripts whose spelling uses the zero-width (non-)joiner.
var joiningScripts = []*unicode.RangeTable{unicode.Arabic, unicode.Syriac, unicode.Thaana, unicode.Nko,
	unicode.Devanagari, unicode.Bengali, unicode.Gurmukhi, unicode.Gujarati, unicode.Oriya, unicode.Tamil,
	unicode.Telugu, unicode.Kannada, unicode.Malayalam, unicode.Sinhala, unicode.Myanmar, unicode.Khmer}

// joining reports whether r is a letter or mark of a script that uses the joiners.
func joining(r rune) bool {
	return (unicode.IsLetter(r) || unicode.IsMark(r)) && unicode.In(r, joiningScripts...)
}

// ValidFreeText reports whether s may be stored in a free-text field that may span lines (a
// description, a comment): valid UTF-8 without NUL, which PostgreSQL refuses in text.
func ValidFreeText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// InvalidText is the error for a name field that fails ValidText.
func InvalidText(field string) error {
	return FieldErrorf(field, "%s must be UTF-8 text without control or formatting characters (line breaks, NUL, zero-width or bidi controls)", field)
}

// HTTPSURLProblem says what keeps s from being a URL Tutela stores and later compares or calls
// exactly as written (a partner's redirect URL, a webhook endpoint), or "" when nothing does:
// absolute https with a host; no user information (a password would sit in the store and every
// listing); no fragment; no "." or ".." path segment (a browser removes them before sending, so
// the URL opened would not be the one allow-listed); a lower-case host; and the one form net/url
// writes it back in, so no percent-encoding or case trick makes two spellings of one URL, or
// one spelling of two. Whether the host is a public address is decided when connecting.
func HTTPSURLProblem(s string, maxLen int) string {
	if s == "" || len(s) > maxLen || !utf8.ValidString(s) {
		return fmt.Sprintf("must be 1 to %d bytes", maxLen)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "https":
		return "must use https"
	case u.User != nil:
		return "must not carry user information"
	case u.Host == "" || u.Hostname() == "":
		return "must name a host"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not have a fragment"
	case u.Opaque != "":
		return "must be hierarchical"
	case hasDotSegment(u.EscapedPath()):
		return "must not have . or .. path segments"
	case strings.ToLower(u.Host) != u.Host:
		return "must have a lower-case host"
	case u.String() != s:
		return "is not in canonical form (" + u.String() + ")"
	}
	return ""
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		switch strings.ToLower(seg) {
		case ".", "..", "%2e", "%2e%2e", ".%2e", "%2e.":
			return true
		}
	}
	return false
}

// ValidJustification reports whether s is a written justification of at most max characters:
// not blank, and free text (ValidFreeText). The one rule for why an approval, share, referral or
// merge is asked for; each domain sets its own max.
func ValidJustification(s string, max int) bool {
	return strings.TrimSpace(s) != "" && utf8.RuneCountInString(s) <= max && ValidFreeText(s)
}
