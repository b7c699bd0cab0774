package redact

import (
	"strings"
	"unicode/utf8"
)

// Flag is an identifier found in the model's raw output: what the model invented, since the
// values it was given reached it as placeholders.
type Flag struct {
	Kind string `json:"kind"` // as Placeholder.Field: "email", "phone", "iban", "card", "national_id"
	Text string `json:"text"` // as written
}

// Flags returns the identifiers in the model's raw output (before restoration; placeholders are
// not identifiers), in text order.
func (r *Redactor) Flags(raw string) []Flag {
	v := normalize(raw)
	var out []Flag
	for _, d := range r.scan(v.text, &detScratch{}) {
		a, b := v.span(d.a, d.b)
		out = append(out, Flag{Kind: d.kind, Text: raw[a:b]})
	}
	return out
}

// found is one detection in the normalized text.
type found struct {
	a, b      int
	kind, key string
}

// token is a run of letters and digits in the normalized text.
type token struct{ a, b int }

// detScratch is the working memory of scan, kept by a Redactor from one text to the next.
type detScratch struct {
	out         []found
	run         []token
	chars, digs []int
}

// scan runs the detectors over the normalized text n. The result is in ds, valid until the next
// call with it.
func (r *Redactor) scan(n string, ds *detScratch) []found {
	out := ds.out[:0]
	emails := scanEmails(n)
	out = append(out, emails...)
	next := 0 // emails before it end before the current token
	inEmail := func(i int) bool {
		for next < len(emails) && emails[next].b <= i {
			next++
		}
		return next < len(emails) && emails[next].a <= i
	}
	// Tokens, grouped into runs joined by at most two separator characters.
	run := ds.run[:0]
	flush := func() {
		if len(run) > 0 {
			out = r.scanRun(n, run, out, ds)
			run = run[:0]
		}
	}
	for i := 0; i < len(n); {
		if c := n[i]; c < utf8.RuneSelf && !asciiAlnum[c] {
			i++
			continue
		}
		c, size := utf8.DecodeRuneInString(n[i:])
		if !isAlnum(c) {
			i += size
			continue
		}
		j := i + size
		for j < len(n) {
			if c := n[j]; c < utf8.RuneSelf {
				if !asciiAlnum[c] {
					break
				}
				j++
				continue
			}
			c, size := utf8.DecodeRuneInString(n[j:])
			if !isAlnum(c) {
				break
			}
			j += size
		}
		if inEmail(i) {
			flush()
			i = j
			continue
		}
		if len(run) > 0 {
			prev := run[len(run)-1]
			if gap := n[prev.b:i]; len(gap) > 2 || !isSep(gap[0]) || len(gap) == 2 && !isSep(gap[1]) {
				flush()
			}
		}
		run = append(run, token{i, j})
		i = j
	}
	flush()
	ds.out, ds.run = out, run
	return out
}

// scanEmails finds e-mail addresses: a local part of letters, digits and ._%+-, "@", and a
// domain of labels with a final label of two letters or more.
func scanEmails(n string) []found {
	var out []found
	for off := 0; ; {
		k := strings.IndexByte(n[off:], '@')
		if k < 0 {
			return out
		}
		at := off + k
		off = at + 1
		a := at
		for a > 0 {
			c, size := utf8.DecodeLastRuneInString(n[:a])
			if !isAlnum(c) && strings.IndexByte("._%+-", byte(c)) < 0 || c >= utf8.RuneSelf && !isAlnum(c) {
				break
			}
			a -= size
		}
		for a < at && n[a] == '.' {
			a++
		}
		b := at + 1
		for b < len(n) {
			c, size := utf8.DecodeRuneInString(n[b:])
			if !isAlnum(c) && c != '.' && c != '-' {
				break
			}
			b += size
		}
		for b > at+1 && (n[b-1] == '.' || n[b-1] == '-') {
			b--
		}
		dom := n[at+1 : b]
		dot := strings.LastIndexByte(dom, '.')
		if a == at || dot <= 0 || len(dom)-dot-1 < 2 || strings.Contains(dom, "..") {
			continue
		}
		tld := dom[dot+1:]
		letters := true
		for _, c := range tld {
			if !isAlnum(c) || c <= '9' && c >= '0' {
				letters = false
			}
		}
		if !letters {
			continue
		}
		out = append(out, found{a: a, b: b, kind: KindEmail, key: n[a:b]})
		off = b
	}
}

// maxRunTokens bounds a candidate: the longest form written in groups (an IBAN of 34 characters
// in groups of four) has nine.
const maxRunTokens = 9

// scanRun tries the digit and ID detectors on the runs of tokens joined by separators. A
// candidate starts at the run's start or after a space, and ends at its end or before a space,
// so "a456-426614174000" (part of a UUID) or "gpt-4o-2024-08-06" yield nothing; the longest
// valid candidate from each start wins.
func (r *Redactor) scanRun(n string, run []token, out []found, ds *detScratch) []found {
	// Letters and digits, and digits, before each token: every identifier has 8–34 characters
	// of which at least 6 are digits, which rules out most candidates without building them.
	if len(run) == 1 && (run[0].b-run[0].a < 8 || !hasDigit(n[run[0].a:run[0].b])) {
		return out // a lone word
	}
	ds.chars, ds.digs = reuse(ds.chars, len(run)+1), reuse(ds.digs, len(run)+1)
	chars, digs := ds.chars, ds.digs
	for k, t := range run {
		d := 0
		for p := t.a; p < t.b; p++ {
			if isDigit(n[p]) {
				d++
			}
		}
		chars[k+1], digs[k+1] = chars[k]+t.b-t.a, digs[k]+d
	}
	inIBAN := false // in the groups of four after an IBAN's first group
	for i := 0; i < len(run); i++ {
		if i > 0 {
			gap := n[run[i-1].b:run[i].a]
			if t := n[run[i-1].a:run[i-1].b]; ibanHead(t) {
				inIBAN = true
			} else if inIBAN && len(t) > 4 {
				inIBAN = false
			}
			inIBAN = inIBAN && gap == " " && run[i].b-run[i].a <= 4
			if !hasSpace(gap) || inIBAN {
				continue // inside a word, or inside an IBAN that did not check out
			}
		}
		// Every identifier begins with a digit group, or with one or two letters followed by
		// one (NIE "X-1234567-L", NINO "AB 12 34 56 C"); most words of a sentence stop here.
		if t := n[run[i].a:run[i].b]; !hasDigit(t) && (len(t) > 2 || i+1 == len(run) || !hasDigit(n[run[i+1].a:run[i+1].b])) {
			continue
		}
		for j := min(len(run)-1, i+maxRunTokens-1); j >= i; j-- {
			if j < len(run)-1 && !hasSpace(n[run[j].b:run[j+1].a]) {
				continue
			}
			// ... and ends with a digit group, a check letter or an IBAN's last group.
			if t := n[run[j].a:run[j].b]; !hasDigit(t) && len(t) > 4 {
				continue
			}
			c, d := chars[j+1]-chars[i], digs[j+1]-digs[i]
			if c < 8 || c > 34 || d < 6 {
				continue
			}
			// Letters: an IBAN, NINO, codice fiscale or NIE starts with one; a DNI or NIR has
			// one at most.
			if c-d > 1 && isDigit(n[run[i].a]) {
				continue
			}
			if f, ok := r.classify(n, run[i:j+1]); ok {
				out = append(out, f)
				i = j
				break
			}
		}
	}
	return out
}

// isSep reports the characters that join the groups of a number or ID: " .-()/".
func isSep(c byte) bool {
	return c == ' ' || c == '.' || c == '-' || c == '(' || c == ')' || c == '/'
}

// hasSpace reports a space in a gap between tokens (one or two bytes: a loop beats
// strings.Contains's setup).
func hasSpace(gap string) bool {
	for i := 0; i < len(gap); i++ {
		if gap[i] == ' ' {
			return true
		}
	}
	return false
}

func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			return true
		}
	}
	return false
}

// ibanHead reports an IBAN's first group: country letters and check digits.
func ibanHead(t string) bool {
	return len(t) == 4 && isLower(t[0]) && isLower(t[1]) && isDigit(t[2]) && isDigit(t[3])
}

// classify decides what the tokens toks (one candidate) are, if anything.
func (r *Redactor) classify(n string, toks []token) (found, bool) {
	a, b := toks[0].a, toks[len(toks)-1].b
	// An identifier glued to a word by "_", or to a longer dotted or dashed string, is part of
	// something else (a file name, a version, a key).
	if a > 0 && (n[a-1] == '_' || (n[a-1] == '.' || n[a-1] == '-') && a > 1 && isAlnumByteBefore(n, a-1)) {
		return found{}, false
	}
	if b < len(n) && (n[b] == '_' || (n[b] == '.' || n[b] == '-') && b+1 < len(n) && isAlnumByte(n, b+1)) {
		return found{}, false
	}
	plus := a > 0 && n[a-1] == '+' && (a == 1 || !isAlnumByteBefore(n, a-1))
	// Join on the stack (scanRun bounds a candidate to 34 characters and maxRunTokens tokens).
	var buf [34]byte
	var sepArr [maxRunTokens]string
	seps, k, digitsOnly := sepArr[:0], 0, true
	for i, t := range toks {
		if i > 0 {
			seps = append(seps, n[toks[i-1].b:t.a])
		}
		for p := t.a; p < t.b; p++ {
			c := n[p]
			if c >= utf8.RuneSelf || k == len(buf) {
				return found{}, false
			}
			digitsOnly = digitsOnly && isDigit(c)
			buf[k] = c
			k++
		}
	}
	// Digits only: a phone needs a + or a leading 0, a card 13–19 digits from 2 to 6, and an ID
	// a country and 9–15 digits; most runs of numbers in a text are none of these.
	if l := k; digitsOnly && !plus && buf[0] != '0' && !(buf[0] >= '2' && buf[0] <= '6' && l >= 13 && l <= 19) &&
		(len(r.countries) == 0 || l < 9 || l > 15 || len(toks) == 2) {
		return found{}, false
	}
	s := string(buf[:k])
	spaced := allIn(seps, " ")
	single := len(toks) == 1
	id := func() (found, bool) { return found{a: a, b: b, kind: KindNationalID, key: s}, true }

	if !plus {
		if (single || spaced && toks[0].b-toks[0].a == 4) && validIBAN(s) {
			return found{a: a, b: b, kind: KindIBAN, key: s}, true
		}
		if r.countries["GB"] && (single || spaced) && validNINO(s) {
			return id()
		}
		if r.countries["IT"] && single && validCodiceFiscale(s) {
			return id()
		}
		if r.countries["ES"] && (single || allIn(seps, " -")) && len(toks) <= 3 && validDNI(s) {
			return id()
		}
	}
	if !allDigits(s) {
		if r.countries["FR"] && (single || spaced) && validNIR(s) {
			return id()
		}
		return found{}, false
	}
	if !plus {
		if r.countries["US"] && len(toks) == 3 && (allIn(seps, "-") || spaced) && validSSN(n[toks[0].a:toks[0].b], n[toks[1].a:toks[1].b], n[toks[2].a:toks[2].b]) {
			return id()
		}
		if r.countries["FR"] && (single || spaced) && validNIR(s) {
			return id()
		}
		if r.countries["NL"] && single && validBSN(s) {
			return id()
		}
		if r.countries["TR"] && single && validTCKimlik(s) {
			return id()
		}
		if r.countries["DE"] && single && validSteuerID(s) {
			return id()
		}
		if r.countries["IN"] && (single || len(toks) == 3 && allIn(seps, " -") && toks[0].b-toks[0].a == 4) && validAadhaar(s) {
			return id()
		}
		if r.countries["JO"] && single && validJONationalNumber(s) {
			return id()
		}
	}
	if len(s) >= 13 && len(s) <= 19 && s[0] >= '2' && s[0] <= '6' && !plus && cardGroups(toks, seps) && luhn(s) {
		return found{a: a, b: b, kind: KindCard, key: s}, true
	}
	if dateLike(n, toks, seps) {
		return found{}, false
	}
	switch {
	case plus && len(s) >= 8 && len(s) <= 15 && s[0] != '0':
		return found{a: a - 1, b: b, kind: KindPhone, key: "+" + s}, true
	case !plus && strings.HasPrefix(s, "00") && len(s) >= 10 && len(s) <= 17 && s[2] != '0':
		return found{a: a, b: b, kind: KindPhone, key: "+" + s[2:]}, true
	case !plus && s[0] == '0' && len(s) >= 9 && len(s) <= 11 && s[1] != '0':
		// "0.12.345.6789" is a version, not a number written in dotted groups.
		if len(toks) >= 3 && allIn(seps, ".") && toks[0].b-toks[0].a == 1 {
			return found{}, false
		}
		return found{a: a, b: b, kind: KindPhone, key: s}, true
	}
	return found{}, false
}

// cardGroups: a card number is written compact, in groups of four (the last may be shorter), or
// 4-6-5 / 4-6-4 (American Express, Diners), with one kind of separator (space or "-").
func cardGroups(toks []token, seps []string) bool {
	if len(toks) == 1 {
		return true
	}
	if !allIn(seps, " -") || !sameSep(seps) {
		return false
	}
	l := func(k int) int { return toks[k].b - toks[k].a }
	if len(toks) == 3 && l(0) == 4 && l(1) == 6 && (l(2) == 5 || l(2) == 4) {
		return true
	}
	for k := range toks {
		if l(k) != 4 && (k < len(toks)-1 || l(k) > 4) {
			return false
		}
	}
	return true
}

func isAlnumByteBefore(n string, i int) bool {
	c, _ := utf8.DecodeLastRuneInString(n[:i])
	return isAlnum(c)
}

// allIn reports whether every separator is made of the given characters only.
func allIn(seps []string, chars string) bool {
	for _, s := range seps {
		if strings.Trim(s, chars) != "" {
			return false
		}
	}
	return true
}

func sameSep(seps []string) bool {
	for _, s := range seps {
		if len(s) != 1 || s != seps[0] {
			return false
		}
	}
	return true
}

// dateLike reports three tokens in a row written as a date (d/m/y, m/d/y or y-m-d with one
// separator of / . -): a run that holds a date is not a phone number.
func dateLike(n string, toks []token, seps []string) bool {
	for k := 0; k+2 < len(toks); k++ {
		if seps[k] != seps[k+1] || len(seps[k]) != 1 || strings.IndexByte("/.-", seps[k][0]) < 0 {
			continue
		}
		l0, l1, l2 := toks[k].b-toks[k].a, toks[k+1].b-toks[k+1].a, toks[k+2].b-toks[k+2].a
		if l0 <= 2 && l1 <= 2 && (l2 == 2 || l2 == 4) || l0 == 4 && l1 <= 2 && l2 <= 2 {
			return true
		}
	}
	return false
}
