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
	for _, d := range r.scan(v.text) {
		a, b := v.span(d.a, d.b)
		out = append(out, Flag{Kind: d.kind, Text: raw[a:b]})
	}
	return out
}

// detect appends the identifiers of people not named.
func (r *Redactor) detect(v *view, ms []match) []match {
	for _, d := range r.scan(v.text) {
		a, b := v.span(d.a, d.b)
		ms = append(ms, match{a: a, b: b, ph: -1, kind: d.kind, key: d.key})
	}
	return ms
}

// found is one detection in the normalized text.
type found struct {
	a, b      int
	kind, key string
}

// token is a run of letters and digits in the normalized text.
type token struct{ a, b int }

// scan runs the detectors over the normalized text n.
func (r *Redactor) scan(n string) []found {
	var out []found
	emails := scanEmails(n)
	out = append(out, emails...)
	inEmail := func(i int) bool {
		for _, e := range emails {
			if e.a <= i && i < e.b {
				return true
			}
		}
		return false
	}
	// Tokens, grouped into runs joined by at most two separator characters.
	var run []token
	flush := func() {
		if len(run) > 0 {
			out = r.scanRun(n, run, out)
			run = run[:0]
		}
	}
	for i := 0; i < len(n); {
		c, size := utf8.DecodeRuneInString(n[i:])
		if !isAlnum(c) {
			i += size
			continue
		}
		j := i + size
		for j < len(n) {
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
			gap := n[prev.b:i]
			if len(gap) > 2 || strings.Trim(gap, " .-()/") != "" {
				flush()
			}
		}
		run = append(run, token{i, j})
		i = j
	}
	flush()
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
func (r *Redactor) scanRun(n string, run []token, out []found) []found {
	for i := 0; i < len(run); i++ {
		if i > 0 && !strings.Contains(n[run[i-1].b:run[i].a], " ") {
			continue
		}
		for j := min(len(run)-1, i+maxRunTokens-1); j >= i; j-- {
			if j < len(run)-1 && !strings.Contains(n[run[j].b:run[j+1].a], " ") {
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

// classify decides what the tokens toks (one candidate) are, if anything.
func (r *Redactor) classify(n string, toks []token) (found, bool) {
	a, b := toks[0].a, toks[len(toks)-1].b
	var seps []string
	var j strings.Builder
	for k, t := range toks {
		if k > 0 {
			seps = append(seps, n[toks[k-1].b:t.a])
		}
		j.WriteString(n[t.a:t.b])
	}
	s := j.String()
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return found{}, false
		}
	}
	// An identifier glued to a word by "_", or to a longer dotted or dashed string, is part of
	// something else (a file name, a version, a key).
	if a > 0 && (n[a-1] == '_' || (n[a-1] == '.' || n[a-1] == '-') && a > 1 && isAlnumByteBefore(n, a-1)) {
		return found{}, false
	}
	if b < len(n) && (n[b] == '_' || (n[b] == '.' || n[b] == '-') && b+1 < len(n) && isAlnumByte(n, b+1)) {
		return found{}, false
	}
	plus := a > 0 && n[a-1] == '+' && (a == 1 || !isAlnumByteBefore(n, a-1))
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
		if len(s) >= 13 && len(s) <= 19 && s[0] >= '2' && s[0] <= '6' && allIn(seps, " -") && sameSep(seps) && luhn(s) {
			return found{a: a, b: b, kind: KindCard, key: s}, true
		}
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
