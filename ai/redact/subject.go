package redact

import (
	"strings"
	"unicode/utf8"

	"tutela/privacy"
)

// needle is one form of a subject's value to look for.
type needle struct {
	s     string
	ph    int
	gap   func(rune) bool // the non-word characters allowed between the value's parts
	bound func(rune) bool // a neighbour that means the match is inside a longer word or number
	plus  bool            // an international phone number: take a "+" just before it along
	num   bool            // a number: a decimal mark followed by a digit also joins
}

func nameGap(r rune) bool  { return r == ' ' || r == '-' || r == '\'' || r == '’' || r == '.' }
func phoneGap(r rune) bool { return strings.ContainsRune(" .-()/", r) }
func idGap(r rune) bool    { return strings.ContainsRune(" .-/", r) }
func anyGap(rune) bool     { return true }

// wordBound: a letter or digit next to the match, unless it is in a script written without
// spaces.
func wordBound(r rune) bool { return isAlnum(r) && !unspaced(r) }

// alnumBound: any letter or digit next to the match.
func alnumBound(r rune) bool { return isAlnum(r) }

// addField registers the forms of one field's value (the matching rules in the package doc).
func (r *Redactor) addField(ph int, f Field) {
	add := func(s string, gap, bound func(rune) bool, plus bool) {
		if s != "" {
			r.compacts = append(r.compacts, needle{s: s, ph: ph, gap: gap, bound: bound, plus: plus})
		}
	}
	n := normString(strings.TrimSpace(f.Value))
	switch f.Type {
	case privacy.FieldName:
		add(compactString(n), nameGap, wordBound, false)
		for _, part := range strings.FieldsFunc(n, func(c rune) bool { return !isAlnum(c) }) {
			if utf8.RuneCountInString(part) >= 2 {
				add(part, nameGap, wordBound, false)
			}
			// A Chinese or Japanese name is written without spaces; its given name (after a
			// one-character family name) is how the person is often called.
			if rs := []rune(part); len(rs) >= 3 && unspaced(rs[0]) {
				add(string(rs[1:]), nameGap, wordBound, false)
			}
		}
	case privacy.FieldPhone:
		for _, form := range phoneForms(f.Value) {
			add(form.digits, phoneGap, alnumBound, form.plus)
		}
	case privacy.FieldEmail:
		r.plains = append(r.plains, needle{s: n, ph: ph, bound: emailBound})
	case privacy.FieldNationalID:
		if c := compactString(n); len(c) >= 4 {
			add(c, idGap, alnumBound, false)
		}
	case privacy.FieldDate:
		if d, ok := parseISODate(strings.TrimSpace(f.Value)); ok {
			r.dates = append(r.dates, dateNeedle{date: d, ph: ph})
		}
	case privacy.FieldAddress:
		add(compactString(n), anyGap, wordBound, false)
		parts := strings.FieldsFunc(strings.TrimSpace(f.Value), func(c rune) bool { return c == ',' || c == '\n' || c == '\r' })
		for i, p := range parts {
			if i == len(parts)-1 && i > 0 {
				break // the region: what the Region generalizer releases
			}
			if c := compactString(normString(p)); utf8.RuneCountInString(c) >= 4 {
				add(c, anyGap, wordBound, false)
			}
		}
	case privacy.FieldText:
		if utf8.RuneCountInString(strings.TrimSpace(f.Value)) >= 8 {
			add(compactString(n), anyGap, wordBound, false)
		}
	case privacy.FieldNumber:
		digits := 0
		for _, c := range n {
			if '0' <= c && c <= '9' {
				digits++
			}
		}
		if digits >= 4 {
			r.plains = append(r.plains, needle{s: n, ph: ph, bound: digitBound, num: true})
			if strings.HasPrefix(n, "-") {
				r.plains = append(r.plains, needle{s: n[1:], ph: ph, bound: digitBound, num: true})
			}
		}
	}
}

type phoneForm struct {
	digits string
	plus   bool
}

// phoneForms lists the digit strings a stored phone number is written as: for an international
// number (+ or 00) the full number, with 00, with the national trunk 0, and the national
// significant number alone (when it has 6 digits or more); otherwise the digits as stored.
func phoneForms(v string) []phoneForm {
	v = strings.TrimSpace(v)
	var d []byte
	for _, c := range normString(v) {
		if '0' <= c && c <= '9' {
			d = append(d, byte(c))
		}
	}
	s := string(d)
	intl := strings.HasPrefix(v, "+")
	if !intl && strings.HasPrefix(s, "00") {
		intl, s = true, s[2:]
	}
	if len(s) < 4 {
		return nil
	}
	if !intl {
		return []phoneForm{{digits: s}}
	}
	nsn := s[len(callingCode(s)):]
	forms := []phoneForm{{digits: s, plus: true}, {digits: "00" + s}, {digits: "0" + nsn}}
	if len(nsn) >= 6 {
		forms = append(forms, phoneForm{digits: nsn})
	}
	return forms
}

// matchSubjects appends the occurrences of every subject value in the text.
func (r *Redactor) matchSubjects(v *view, ms []match) []match {
	if len(r.compacts) > 0 {
		c := compactOf(v.text)
		for _, nd := range r.compacts {
			for off := 0; ; {
				i := strings.Index(c.text[off:], nd.s)
				if i < 0 {
					break
				}
				i += off
				_, size := utf8.DecodeRuneInString(c.text[i:])
				off = i + size
				last := i + len(nd.s) - 1
				na, nb := int(c.pos[i]), int(c.pos[last])+1
				if !gapsOK(v.text[na:nb], nd.gap) || !boundsOK(v.text, na, nb, nd.bound) {
					continue
				}
				if nd.plus && na > 0 && v.text[na-1] == '+' {
					na--
				}
				a, b := v.span(na, nb)
				ms = append(ms, match{a: a, b: b, ph: nd.ph, subject: true})
			}
		}
	}
	for _, nd := range r.plains {
		for off := 0; ; {
			i := strings.Index(v.text[off:], nd.s)
			if i < 0 {
				break
			}
			i += off
			off = i + 1
			if !boundsOK(v.text, i, i+len(nd.s), nd.bound) || nd.num && !numberBoundsOK(v.text, i, i+len(nd.s)) {
				continue
			}
			a, b := v.span(i, i+len(nd.s))
			ms = append(ms, match{a: a, b: b, ph: nd.ph, subject: true})
		}
	}
	if len(r.dates) > 0 {
		ms = r.matchDates(v, ms)
	}
	return ms
}

// gapsOK reports whether every non-word character of s is one gap allows.
func gapsOK(s string, gap func(rune) bool) bool {
	for _, c := range s {
		if !isAlnum(c) && !gap(c) {
			return false
		}
	}
	return true
}

// boundsOK reports whether the runes on either side of n[a:b] leave it a whole word or number.
func boundsOK(n string, a, b int, bound func(rune) bool) bool {
	if a > 0 {
		if c, _ := utf8.DecodeLastRuneInString(n[:a]); bound(c) {
			return false
		}
	}
	if b < len(n) {
		if c, _ := utf8.DecodeRuneInString(n[b:]); bound(c) {
			return false
		}
	}
	return true
}

func emailChar(c rune) bool {
	return isAlnum(c) || strings.ContainsRune("._%+-@", c)
}

// emailBound: an address continues while an address character follows, except a sentence's
// final period.
func emailBound(c rune) bool { return emailChar(c) && c != '.' }

func digitBound(c rune) bool { return '0' <= c && c <= '9' }

// numberBoundsOK: n[a:b] is a whole number, not the integer or fraction part of a longer one
// ("12345" in "12345.67" or "1.12345") nor a negative number's digits ("-12345").
func numberBoundsOK(n string, a, b int) bool {
	if a >= 2 && (n[a-1] == '.' || n[a-1] == ',') && digitBound(rune(n[a-2])) {
		return false
	}
	if a >= 1 && n[a-1] == '-' && !strings.HasPrefix(n[a:b], "-") {
		return false
	}
	if b+1 < len(n) && (n[b] == '.' || n[b] == ',') && digitBound(rune(n[b+1])) {
		return false
	}
	return true
}
