package redact

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// date is a calendar date.
type date struct{ y, m, d int }

// dateNeedle is a subject's date of birth to find in any of its written forms.
type dateNeedle struct {
	date date
	ph   int
}

// parseISODate reads a stored YYYY-MM-DD value.
func parseISODate(s string) (date, bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return date{}, false
	}
	y, ok1 := atoi(s[:4])
	m, ok2 := atoi(s[5:7])
	d, ok3 := atoi(s[8:])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > 31 {
		return date{}, false
	}
	return date{y, m, d}, true
}

func atoi(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// monthName is a month's name (or abbreviation) in normalized form.
type monthName struct {
	name  string
	month int
}

// monthNames: English, French, Spanish and Arabic (Egyptian-Gulf and Levantine series), longest
// first so "september" wins over "sep".
var monthNames = func() []monthName {
	lists := []string{
		"january february march april may june july august september october november december",
		"jan feb mar apr may jun jul aug sep oct nov dec",
		"janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre",
		"janv fevr mars avr mai juin juil aout sept oct nov dec",
		"enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
		"ene feb mar abr may jun jul ago setiembre oct nov dic",
		"يناير فبراير مارس أبريل مايو يونيو يوليو أغسطس سبتمبر أكتوبر نوفمبر ديسمبر",
		"كانون_الثاني شباط آذار نيسان أيار حزيران تموز آب أيلول تشرين_الأول تشرين_الثاني كانون_الأول",
		"جانفي فيفري مارس أفريل ماي جوان جويلية أوت سبتمبر أكتوبر نوفمبر ديسمبر",
		"- - - إبريل - يونيه يوليه اغسطس - - - -",
	}
	var out []monthName
	for _, l := range lists {
		for i, n := range strings.Fields(l) {
			if n != "-" {
				out = append(out, monthName{normString(strings.ReplaceAll(n, "_", " ")), i + 1})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b monthName) int { return len(b.name) - len(a.name) })
	return out
}()

// monthsByByte lists the month names by their first byte, so a word is compared only with the
// names it could be.
var monthsByByte = func() (t [256][]monthName) {
	for _, m := range monthNames {
		t[m.name[0]] = append(t[m.name[0]], m)
	}
	return t
}()

// monthAt returns the month named at n[i:] and where the name ends.
func monthAt(n string, i int) (int, int) {
	if i >= len(n) {
		return 0, i
	}
	for _, m := range monthsByByte[n[i]] {
		// Every name has two bytes or more: the second rules out most names before comparing.
		if i+1 < len(n) && n[i+1] == m.name[1] && strings.HasPrefix(n[i:], m.name) {
			j := i + len(m.name)
			if j < len(n) {
				if c, _ := utf8.DecodeRuneInString(n[j:]); isAlnum(c) {
					continue
				}
			}
			return m.month, j
		}
	}
	return 0, i
}

// numberAt reads up to max digits at n[i:] that are a whole number.
func numberAt(n string, i, max int) (int, int, int) {
	j := i
	for j < len(n) && j-i <= max && n[j] >= '0' && n[j] <= '9' {
		j++
	}
	if j == i || j-i > max {
		return 0, 0, i
	}
	v, _ := atoi(n[i:j])
	return v, j - i, j
}

func skip(n string, i int, s string) int {
	if strings.HasPrefix(n[i:], s) {
		return i + len(s)
	}
	return i
}

// skipWord skips any of the given words followed by a space ("de " in "15 de marzo de 1990").
func skipAny(n string, i int, words ...string) int {
	for _, w := range words {
		if strings.HasPrefix(n[i:], w) {
			return i + len(w)
		}
	}
	return i
}

// matchDates finds written dates (numeric with / . - in day-month-year, month-day-year or
// year-month-day order, 2- or 4-digit years, with or without leading zeros; and day-month-year
// or month-day-year with a month name) that are one of the subjects' dates.
func (r *Redactor) matchDates(v *view, ms []match) []match {
	n := v.text
	for i := 0; i < len(n); {
		// Only at the start of a word or number, and only at a digit or a month's first byte.
		if c := n[i]; !isDigit(c) && monthsByByte[c] == nil || i > 0 && alnumBefore(n, i) {
			i++
			// The rest of the rune, and of an ASCII word: no date starts inside a word.
			for i < len(n) && (!utf8.RuneStart(n[i]) || asciiAlnumByte(n[i]) && asciiAlnumByte(n[i-1])) {
				i++
			}
			continue
		}
		var cands [2]date
		k, end := 0, i
		if c := n[i]; c >= '0' && c <= '9' {
			a, al, j := numberAt(n, i, 4)
			if d, ok := compactDate(n, i); ok {
				cands[0], k, end = d, 1, i+8
			} else if al > 0 && j < len(n) && strings.IndexByte("/.-", n[j]) >= 0 && j+1 < len(n) && isDigit(n[j+1]) {
				sep := n[j]
				b, _, j2 := numberAt(n, j+1, 2)
				if j2 > j+1 && j2 < len(n) && n[j2] == sep {
					c3, cl, j3 := numberAt(n, j2+1, 4)
					switch {
					case cl == 0:
					case al == 4 && cl <= 2:
						cands[0], k, end = date{a, b, c3}, 1, j3
					case al <= 2 && (cl == 2 || cl == 4):
						cands[0], cands[1], k, end = date{c3, b, a}, date{c3, a, b}, 2, j3
					}
				}
			} else if al > 0 && al <= 2 {
				j = skipAny(n, j, "st", "nd", "rd", "th", "er")
				// "02-Apr-1990", "2/apr/90": the same separator on both sides of the month.
				var sep byte
				if j < len(n) && strings.IndexByte("/.-", n[j]) >= 0 {
					sep = n[j]
					j++
				} else {
					j = skip(n, j, " ")
					j = skipAny(n, j, "de ", "of ") // "15 de marzo", "the 2nd of April"
				}
				if m, j2 := monthAt(n, j); m > 0 {
					if sep != 0 {
						if j2 >= len(n) || n[j2] != sep {
							j2 = -1
						} else {
							j2++
						}
					} else {
						j2 = skip(n, j2, ".")
						j2 = skip(n, j2, ",")
						j2 = skip(n, j2, " ")
						j2 = skipAny(n, j2, "de ")
					}
					if j2 >= 0 {
						if y, yl, j3 := numberAt(n, j2, 4); yl == 2 || yl == 4 {
							cands[0], k, end = date{y, m, a}, 1, j3
						}
					}
				}
			}
		} else if m, j := monthAt(n, i); m > 0 {
			j = skip(n, j, ".")
			j = skip(n, j, " ")
			if d, dl, j2 := numberAt(n, j, 2); dl > 0 {
				j2 = skipAny(n, j2, "st", "nd", "rd", "th")
				j2 = skip(n, j2, ",")
				j2 = skip(n, j2, " ")
				if y, yl, j3 := numberAt(n, j2, 4); yl == 2 || yl == 4 {
					cands[0], k, end = date{y, m, d}, 1, j3
				}
			}
		}
		if k > 0 && (end == len(n) || !isAlnumByte(n, end)) {
			if ph := r.dateNeedle(cands[:k]); ph >= 0 {
				a, b := v.span(i, end)
				ms = append(ms, match{a: int32(a), b: int32(b), ph: int32(ph), subject: true})
				i = end
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(n[i:])
		i += size
	}
	return ms
}

// compactDate reads the yyyymmdd written as one whole number at n[i:] ("19900402"), not eight
// digits of a longer number or of a decimal.
func compactDate(n string, i int) (date, bool) {
	if i+8 > len(n) || i+8 < len(n) && isDigit(n[i+8]) || !numberBoundsOK(n, i, i+8) {
		return date{}, false
	}
	y, ok1 := atoi(n[i : i+4])
	m, ok2 := atoi(n[i+4 : i+6])
	d, ok3 := atoi(n[i+6 : i+8])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > 31 {
		return date{}, false
	}
	return date{y, m, d}, true
}

// asciiAlnumByte reports an ASCII letter or digit.
func asciiAlnumByte(c byte) bool { return c < utf8.RuneSelf && asciiAlnum[c] }

// alnumBefore is isAlnumByteBefore with the ASCII case first: matchDates asks it for most
// letters of a text.
func alnumBefore(n string, i int) bool {
	if c := n[i-1]; c < utf8.RuneSelf {
		return asciiAlnum[c]
	}
	return isAlnumByteBefore(n, i)
}

func isAlnumByte(n string, i int) bool {
	c, _ := utf8.DecodeRuneInString(n[i:])
	return isAlnum(c)
}

// dateNeedle returns the placeholder of the subject date one of the candidates is, or -1. A
// two-digit year matches the same year of any century.
func (r *Redactor) dateNeedle(cands []date) int {
	for _, c := range cands {
		for _, d := range r.dates {
			y := d.date.y
			if c.y < 100 {
				y %= 100
			}
			if c.y == y && c.m == d.date.m && c.d == d.date.d {
				return d.ph
			}
		}
	}
	return -1
}
