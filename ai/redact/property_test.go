package redact

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"tutela/privacy"
)

// segment is one piece of a generated text: filler, or a value written in some format that must
// come back as want after Redact and Restore.
type segment struct {
	text  string
	value bool
	want  string
}

var (
	givenNames = []string{"José", "Zoë", "François", "Ångström", "Łukasz", "Øyvind", "محمد", "فاطمة", "أحمد",
		"عبد الله", "محمد\u200cرضا", "علی\u200cاکبر", "Ольга", "Дмитрий", "Renée", "Ãnh", "Nguyễn", "Søren", "İbrahim"}
	familyNames = []string{"Müller", "Lovelace", "Durand", "Pérez", "الأحمد", "الخطيب", "حسینی", "رضایی",
		"Петрова", "Иванов", "García", "Ó Súilleabháin", "Çelik", "Łęcka", "Nørgaard"}
	chineseNames = []string{"王小明", "李华", "张伟", "欧阳娜娜", "陈静怡"}
	fillers      = []string{"The patient", "was seen on Tuesday", "and reported", "a mild cough", "see notes",
		"follow up", "in two weeks", "Please summarize", "for the committee", "without changes", "quickly",
		"المريض", "راجع العيادة", "بیمار", "مراجعه کرد", "пациент", "пришёл", "病人", "复诊"}
	phoneCountries = []struct{ cc, nsn string }{
		{"41", "79#######"}, {"44", "20########"}, {"962", "79#######"}, {"33", "6########"},
		{"1", "212555####"}, {"49", "1512#######"}, {"98", "912#######"},
	}
	enMonths = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
	frMonths = []string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}
	esMonths = []string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"}
	arMonths = []string{"يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو", "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر"}
)

func digits(rng *rand.Rand, pattern string) string {
	b := []byte(pattern)
	for i, c := range b {
		if c == '#' {
			b[i] = byte('0' + rng.IntN(10))
		}
	}
	return string(b)
}

// toArabicIndic writes ASCII digits as Arabic-Indic ones.
func toArabicIndic(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return 0x0660 + r - '0'
		}
		return r
	}, s)
}

func group(s string, n int, sep string) string {
	var parts []string
	for len(s) > n {
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return strings.Join(append(parts, s), sep)
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// genSubject builds a subject with distinct names (taken from the pools) and its values'
// written forms. Values differ between subjects (a value two subjects share restores to the
// first one's), and extra holds Arabic forms with a particle joined to the name.
func genSubject(rng *rand.Rand, i int, given, family string) (Subject, map[string][]string, []segment) {
	var extra []segment
	forms := map[string][]string{}
	var fields []Field
	add := func(name string, t privacy.FieldType, v string, fs ...string) {
		fields = append(fields, Field{Name: name, Type: t, Value: v})
		forms[name] = fs
	}
	// Name.
	if given == "" {
		add("full_name", privacy.FieldName, family, family)
	} else {
		full := given + " " + family
		nfs := []string{full, strings.ToUpper(full), given, family, normString(full)}
		if strings.Contains(given, "\u200c") {
			nfs = append(nfs, strings.ReplaceAll(given, "\u200c", ""), strings.ReplaceAll(given, "\u200c", " "))
		}
		if strings.ContainsAny(given, "محمد") {
			nfs = append(nfs, strings.ReplaceAll(given, "م", "مُ"))
		}
		add("full_name", privacy.FieldName, full, nfs...)
		if r := []rune(given)[0]; r >= 0x0600 && r <= 0x06FF { // "and", "for" joined to the name
			extra = append(extra, segment{text: "و" + given, value: true, want: "و" + full},
				segment{text: "لل" + strings.TrimPrefix(normString(family), "ال"), value: true, want: "لل" + full})
		}
	}
	// Phone.
	pc := pick(rng, phoneCountries)
	nsn := digits(rng, pc.nsn)
	add("phone", privacy.FieldPhone, "+"+pc.cc+" "+group(nsn, 3, " "),
		"+"+pc.cc+nsn, "+"+pc.cc+" "+group(nsn, 2, " "), "00"+pc.cc+" "+nsn, "0"+group(nsn, 3, "-"),
		"(0"+nsn[:2]+") "+group(nsn[2:], 3, "."), group(nsn, 3, "/"), toArabicIndic("0"+nsn), "+"+pc.cc+" ("+nsn[:3]+") "+nsn[3:])
	// E-mail.
	local := fmt.Sprintf("%s.%d", []string{"ada", "renee", "m.k", "x_y"}[i%4], rng.IntN(1000))
	email := local + "@" + pick(rng, []string{"example.com", "mail.example.org", "uni.edu.jo"})
	add("email", privacy.FieldEmail, email, email, strings.ToUpper(email))
	// National ID.
	id := fmt.Sprintf("%c%c%s", 'A'+rng.IntN(26), 'A'+rng.IntN(26), digits(rng, "######"))
	add("national_id", privacy.FieldNationalID, id[:2]+"-"+id[2:5]+" "+id[5:],
		id, strings.ToLower(id), id[:2]+" "+id[2:5]+"-"+id[5:], id[:4]+"."+id[4:])
	// Date of birth.
	y, m, d := 1940+rng.IntN(70), 1+rng.IntN(12), 1+rng.IntN(28)
	add("dob", privacy.FieldDate, fmt.Sprintf("%04d-%02d-%02d", y, m, d),
		fmt.Sprintf("%04d-%02d-%02d", y, m, d), fmt.Sprintf("%02d/%02d/%04d", d, m, y), fmt.Sprintf("%d.%d.%d", d, m, y),
		fmt.Sprintf("%d/%d/%02d", m, d, y%100), fmt.Sprintf("%d %s %d", d, enMonths[m-1], y),
		fmt.Sprintf("%s %d, %d", enMonths[m-1], d, y), fmt.Sprintf("%d %s %d", d, frMonths[m-1], y),
		fmt.Sprintf("%d de %s de %d", d, esMonths[m-1], y), fmt.Sprintf("%d %s %d", d, arMonths[m-1], y),
		toArabicIndic(fmt.Sprintf("%d %s %d", d, arMonths[m-1], y)), toArabicIndic(fmt.Sprintf("%02d/%02d/%04d", d, m, y)))
	// Address (the street and its number distinct per subject).
	street := fmt.Sprintf("%d %s", 1+3*rng.IntN(70)+i, []string{"Rue de Rivoli", "شارع الجامعة", "Tverskaya ulitsa"}[i])
	city := fmt.Sprintf("%s %s", digits(rng, "#####"), pick(rng, []string{"Paris", "London", "عمّان", "Moskva"}))
	region := pick(rng, []string{"France", "Jordan"})
	add("address", privacy.FieldAddress, street+", "+city+", "+region,
		street, strings.ReplaceAll(street, " ", "  "), city, strings.ToUpper(street+", "+city+", "+region))
	return Subject{ID: fmt.Sprint(i), Fields: fields}, forms, extra
}

// genUnnamed returns identifiers of people not named, each as written.
func genUnnamed(rng *rand.Rand) []string {
	// A card with a valid Luhn digit.
	card := digits(rng, "4###############")
	for c := '0'; c <= '9'; c++ {
		if luhn(card[:15] + string(c)) {
			card = card[:15] + string(c)
			break
		}
	}
	// An IBAN with valid check digits.
	bban := digits(rng, "##################")
	for k := 2; k < 99; k++ {
		if s := fmt.Sprintf("de%02d%s", k, bban); validIBAN(s) {
			bban = fmt.Sprintf("DE%02d%s", k, bban)
			break
		}
	}
	return []string{
		fmt.Sprintf("someone.%d@corp.example.net", rng.IntN(1000)),
		"+44 " + digits(rng, "20 #### ####"), "0" + digits(rng, "7## ### ## ##"), "0033 " + digits(rng, "6 ## ## ## ##"),
		group(card, 4, " "), group(bban, 4, " "),
	}
}

// leaked reports whether the normalized form of v appears in out as a whole word.
func leaked(out, v string) bool {
	n, nv := normString(out), normString(v)
	for off := 0; ; {
		i := strings.Index(n[off:], nv)
		if i < 0 {
			return false
		}
		i += off
		off = i + 1
		if boundsOK(n, i, i+len(nv), alnumBound) {
			return true
		}
	}
}

func TestProperty_NoValueSurvivesAndRestoreGivesStoredValues(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(16, 2026))
	for iter := range 300 {
		nsub := 1 + rng.IntN(3)
		gs, fs := rng.Perm(len(givenNames)), rng.Perm(len(familyNames))
		cs := rng.Perm(len(chineseNames))
		var subjects []Subject
		var segs []segment
		for i := range nsub {
			given, family := givenNames[gs[i]], familyNames[fs[i]]
			if i == 2 {
				given, family = "", chineseNames[cs[0]]
			}
			s, forms, extra := genSubject(rng, i, given, family)
			subjects = append(subjects, s)
			segs = append(segs, extra...)
			for _, f := range s.Fields {
				for _, form := range forms[f.Name] {
					segs = append(segs, segment{text: form, value: true, want: f.Value})
				}
			}
		}
		for _, u := range genUnnamed(rng) {
			segs = append(segs, segment{text: u, value: true, want: u})
		}
		rng.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
		var in, want strings.Builder
		for _, s := range segs {
			f := pick(rng, fillers) + pick(rng, []string{" ", ": ", ", ", " (", "\n", " — "})
			in.WriteString(f)
			want.WriteString(f)
			in.WriteString(s.text)
			want.WriteString(s.want)
			end := pick(rng, []string{". ", " ", "; ", ")\n", ", "})
			in.WriteString(end)
			want.WriteString(end)
		}
		r := New(subjects, Options{Countries: []string{"FR", "JO"}})
		out := r.Redact(in.String())
		for _, s := range segs {
			if leaked(out, s.text) {
				t.Fatalf("iteration %d: %q survived in\n%s\n(input\n%s)", iter, s.text, out, in.String())
			}
		}
		if got := r.Restorer(allowAll).Restore(out); got != want.String() {
			w := want.String()
			i := 0
			for i < len(got) && i < len(w) && got[i] == w[i] {
				i++
			}
			a, g, e := max(0, i-80), min(len(got), i+80), min(len(w), i+80)
			t.Fatalf("iteration %d: restored ...%s...\nwant ...%s...", iter, got[a:g], w[a:e])
		}
	}
}
