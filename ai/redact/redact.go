package redact

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"tutela/privacy"
)

// Field is one stored value of a named subject.
type Field struct {
	Name  string            // schema field name, "full_name"
	Type  privacy.FieldType // how the value is matched in text
	Value string            // the stored value, as the vault holds it
	// Opaque: the caller may not read this field. Each distinct text they wrote that matched
	// it then gets its own placeholder, whose Value is that text, so that restoring gives back
	// exactly what they wrote, and neither the answer nor the placeholders show the stored
	// value or that two of their spellings are the same value.
	Opaque bool
}

// Subject is a data subject the caller named, with the values the gateway holds for them.
type Subject struct {
	ID     string
	Fields []Field
}

// Options chooses the detectors that depend on the tenant's region.
type Options struct {
	// Countries: ISO 3166-1 alpha-2 codes (upper case) whose national-ID formats are detected,
	// besides the universal detectors (e-mail, phone, IBAN, payment card). Unknown codes are
	// ignored: the gateway validates the tenant's list.
	Countries []string
}

// Placeholder is what stands in a redacted text for one value.
type Placeholder struct {
	Token   string // "[S1_FULL_NAME]", or "[EMAIL_1]", "[PHONE_2]", "[IBAN_1]", "[CARD_1]", "[ID_1]"
	Subject int    // 0-based index of the subject, -1 for a detection
	Field   string // the field name, or the detector kind: "email", "phone", "iban", "card", "national_id"
	Value   string // subject: the stored value; detection: the text exactly as the caller wrote it
	// Written is the text the first replacement took out, exactly as written ("" until used).
	Written string
	Uses    int // replacements made
}

// Detector kinds, as in Placeholder.Field and Flag.Kind.
const (
	KindEmail      = "email"
	KindPhone      = "phone"
	KindIBAN       = "iban"
	KindCard       = "card"
	KindNationalID = "national_id"
)

var kindPrefix = map[string]string{KindEmail: "EMAIL", KindPhone: "PHONE", KindIBAN: "IBAN", KindCard: "CARD", KindNationalID: "ID"}

// Redactor redacts the strings of one request and restores the answer. It keeps the
// placeholders it handed out, so one value gets one placeholder across all the request's strings.
// A Redactor is not safe for concurrent use.
type Redactor struct {
	phs       []Placeholder
	used      []int          // indexes into phs in first-use order
	byToken   map[string]int // token → index into phs
	detected  map[string]int // kind + "\x00" + canonical value → index into phs
	perKind   map[string]int // detections numbered so far, per kind
	compacts  []needle       // matched in the letters-and-digits view
	compactAC *automaton     // finds the compacts (nil when none)
	plains    []needle       // matched in the normalized text (e-mail, number)
	plainAC   *automaton     // finds the plains (nil when none)
	dates     []dateNeedle
	countries map[string]bool
	forms     map[int]map[string]int // an opaque field's first placeholder → written form → placeholder
	seen      map[formKey]bool       // the forms added so far, while New runs
}

// scratch holds the working memory of one Redact call: the views, tables and match lists, a few
// int32 per byte of the text. Redact takes one from scratchPool and gives it back, so the
// strings of a request, and the requests of a gateway, reuse the same arrays instead of each
// allocating (and the collector freeing) their own. Nothing in it outlives the call.
type scratch struct {
	v      view
	vb     []byte // the normalized text's bytes
	c      compact
	cb     []byte // the compact text's bytes
	start  []bool // per compact offset: a form may start there
	gaps   gapCounts
	next   []int   // per form: the offset its next match may start at
	ms     []match // the candidates
	choose chooseScratch
	det    detScratch
}

// New prepares a Redactor for the named subjects, numbered S1, S2, … in order. Empty values are
// skipped; a field name repeated within a subject shares the first one's placeholder.
func New(subjects []Subject, opt Options) *Redactor {
	r := &Redactor{byToken: map[string]int{}, detected: map[string]int{}, perKind: map[string]int{}, countries: map[string]bool{}, forms: map[int]map[string]int{}, seen: map[formKey]bool{}}
	for _, c := range opt.Countries {
		r.countries[c] = true
	}
	for si, s := range subjects {
		for _, f := range s.Fields {
			if strings.TrimSpace(f.Value) == "" {
				continue
			}
			tok := "[S" + strconv.Itoa(si+1) + "_" + tokenName(f.Name) + "]"
			ph, ok := r.byToken[tok]
			if !ok {
				ph = len(r.phs)
				p := Placeholder{Token: tok, Subject: si, Field: f.Name, Value: f.Value}
				if f.Opaque {
					// The stored value is never handed out: the first written form
					// becomes the Value.
					p.Value = ""
					r.forms[ph] = map[string]int{}
				}
				r.phs = append(r.phs, p)
				r.byToken[tok] = ph
			}
			r.addField(ph, f)
		}
	}
	r.seen = nil
	if len(r.compacts) > 0 {
		pats := make([]string, len(r.compacts))
		for i, nd := range r.compacts {
			pats[i] = nd.s
		}
		r.compactAC = newAutomaton(pats)
	}
	if len(r.plains) > 0 {
		pats := make([]string, len(r.plains))
		for i, nd := range r.plains {
			pats[i] = nd.s
		}
		r.plainAC = newAutomaton(pats)
	}
	return r
}

// tokenName is a field name as it appears in a token: upper case, anything but a letter or digit
// as "_" (schema field names are already lowercase letters, digits and _).
func tokenName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Token returns the placeholder of a subject's field ("" when the subject has no such field or
// its value is empty), for text the gateway writes itself.
func (r *Redactor) Token(subject int, field string) string {
	for _, p := range r.phs {
		if p.Subject == subject && p.Field == field && p.Subject >= 0 {
			return p.Token
		}
	}
	return ""
}

// Placeholders returns the placeholders actually used, in first-use order.
func (r *Redactor) Placeholders() []Placeholder {
	out := make([]Placeholder, len(r.used))
	for i, p := range r.used {
		out[i] = r.phs[p]
	}
	return out
}

// match is one candidate replacement: the original byte range [a, b) and what replaces it.
type match struct {
	a, b    int32
	ph      int32 // placeholder index; -1 for a detection, numbered when chosen
	det     int32 // a detection's index in the request's detections
	subject bool
}

// Redact returns text with every value of the named subjects, and every detected identifier,
// replaced by its placeholder. The same value always gets the same placeholder for the life of
// the Redactor. Where candidates overlap the longest wins, and at equal length a subject's value
// wins over a detection. Text that already looks like a placeholder is left as it is (and, having
// replaced nothing, is not restored: a Restorer resolves only used placeholders).
func (r *Redactor) Redact(text string) string {
	if text == "" {
		return text
	}
	sc := scratchPool.Get().(*scratch)
	if len(text) <= maxPooled {
		defer sc.release()
	}
	v := &sc.v
	sc.vb = v.fill(text, true, sc.vb)
	ms := r.matchSubjects(v, sc.ms[:0], sc)
	dets := r.scan(v.text, &sc.det)
	for i, d := range dets {
		a, b := v.span(d.a, d.b)
		ms = append(ms, match{a: int32(a), b: int32(b), ph: -1, det: int32(i)})
	}
	sc.ms = ms
	if len(ms) == 0 {
		return text
	}
	ms = choose(ms, len(text), &sc.choose)
	// The placeholders first, in text order (detections and written forms are numbered as
	// they come), so the result's length is known and it is built in one allocation.
	size := len(text)
	for i := range ms {
		m := &ms[i]
		if m.ph < 0 {
			d := dets[m.det]
			m.ph = int32(r.detection(d.kind, d.key, text[m.a:m.b]))
		} else if forms := r.forms[int(m.ph)]; forms != nil {
			m.ph = int32(r.form(int(m.ph), forms, text[m.a:m.b]))
		}
		size += len(r.phs[m.ph].Token) - int(m.b-m.a)
	}
	var b strings.Builder
	b.Grow(size)
	last := int32(0)
	for _, m := range ms {
		ph := int(m.ph)
		p := &r.phs[ph]
		if p.Uses == 0 {
			r.used = append(r.used, ph)
			p.Written = text[m.a:m.b]
		}
		p.Uses++
		b.WriteString(text[last:m.a])
		b.WriteString(p.Token)
		last = m.b
	}
	b.WriteString(text[last:])
	return b.String()
}

// scratchPool keeps the scratch of finished Redact calls. A text past maxPooled bytes leaves
// its scratch to the collector, so one huge string does not keep its arrays alive in the pool.
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

const maxPooled = 256 << 10

// release returns sc to the pool, forgetting its text first.
func (sc *scratch) release() {
	sc.forget()
	scratchPool.Put(sc)
}

// forget drops the text sc worked on (its normalized bytes, and every string that holds or
// shares them), so a pooled scratch keeps no caller's words in memory.
func (sc *scratch) forget() {
	clear(sc.vb[:cap(sc.vb)])
	clear(sc.cb[:cap(sc.cb)])
	sc.v.text, sc.c.text, sc.gaps.n = "", nil, ""
	clear(sc.det.out[:cap(sc.det.out)]) // the e-mail keys share the normalized text
}

// detection returns the placeholder of a detected identifier, numbering it on first sight.
func (r *Redactor) detection(kind, key, written string) int {
	k := kind + "\x00" + key
	if ph, ok := r.detected[k]; ok {
		return ph
	}
	r.perKind[kind]++
	ph := len(r.phs)
	tok := "[" + kindPrefix[kind] + "_" + strconv.Itoa(r.perKind[kind]) + "]"
	r.phs = append(r.phs, Placeholder{Token: tok, Subject: -1, Field: kind, Value: written})
	r.detected[k] = ph
	r.byToken[tok] = ph
	return ph
}

// form returns the placeholder of one written form of an opaque field: the field's own
// placeholder for the first form, then "[S1_NATIONAL_ID_2]", "[S1_NATIONAL_ID_3]", … for the
// next ones. A number whose token another field of the subject already has ("national_id_2") is
// passed over, so a token always names one placeholder: every field's token exists from New on,
// before any form is numbered.
func (r *Redactor) form(base int, forms map[string]int, written string) int {
	if ph, ok := forms[written]; ok {
		return ph
	}
	if len(forms) == 0 {
		r.phs[base].Value = written
		forms[written] = base
		return base
	}
	b := r.phs[base]
	stem := strings.TrimSuffix(b.Token, "]") + "_"
	tok := ""
	for n := len(forms) + 1; ; n++ {
		tok = stem + strconv.Itoa(n) + "]"
		if _, taken := r.byToken[tok]; !taken {
			break
		}
	}
	ph := len(r.phs)
	r.phs = append(r.phs, Placeholder{Token: tok, Subject: b.Subject, Field: b.Field, Value: written})
	r.byToken[tok] = ph
	forms[written] = ph
	return ph
}

// choose keeps non-overlapping matches, longest first and subjects before detections at equal
// length (then the first, then the lowest placeholder), and returns them in text order, in cs's
// memory: valid until the next call with it.
func choose(ms []match, n int, cs *chooseScratch) []match {
	if n >= 1<<keyBits || len(ms) >= 1<<idxBits {
		return chooseSlow(ms, n, cs)
	}
	// The sorts are on packed keys (position or length, then the candidate's index), which
	// sort without a comparison function.
	keys := cs.keys[:0]
	for i, m := range ms {
		keys = append(keys, uint64(m.a)<<(keyBits+idxBits)|uint64(m.b)<<idxBits|uint64(i))
	}
	slices.Sort(keys)
	// Most texts have no overlapping candidates: in text order each ends before the next
	// starts, and they are all kept.
	disjoint := true
	for i := 1; i < len(keys) && disjoint; i++ {
		disjoint = ms[keys[i]&idxMask].a >= ms[keys[i-1]&idxMask].b
	}
	out := cs.out[:0]
	if disjoint {
		for _, k := range keys {
			out = append(out, ms[k&idxMask])
		}
		cs.keys, cs.out = keys, out
		return out
	}
	const maxLen = 1<<keyBits - 1
	keys = keys[:0]
	for i, m := range ms {
		k := uint64(maxLen-(m.b-m.a))<<(keyBits+1+idxBits) | uint64(m.a)<<idxBits | uint64(i)
		if !m.subject {
			k |= 1 << (keyBits + idxBits)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	taken := cs.fenwick(n)
	chosen := cs.chosen[:0]
	for g := 0; g < len(keys); {
		// The candidates of one group (same span, same kind) differ only in placeholder: the
		// lowest is the one taken, and the others overlap it.
		best := keys[g] & idxMask
		e := g + 1
		for ; e < len(keys) && keys[e]>>idxBits == keys[g]>>idxBits; e++ {
			if x, y := ms[keys[e]&idxMask], ms[best]; x.ph < y.ph || x.ph == y.ph && x.det < y.det {
				best = keys[e] & idxMask
			}
		}
		g = e
		if m := ms[best]; taken.add(m.a, m.b) {
			chosen = append(chosen, uint64(m.a)<<idxBits|best)
		}
	}
	slices.Sort(chosen)
	for _, k := range chosen {
		out = append(out, ms[k&idxMask])
	}
	cs.keys, cs.chosen, cs.out = keys, chosen, out
	return out
}

// The packed keys of choose: offsets and lengths in keyBits, candidate indexes in idxBits.
const (
	keyBits = 20
	idxBits = 64 - 2*keyBits - 1
	idxMask = 1<<idxBits - 1
)

// chooseScratch is choose's memory, kept from one call to the next.
type chooseScratch struct {
	keys, chosen []uint64
	out          []match
	taken        []int32
}

// fenwick returns cs's tables of chosen matches, cleared for a text of n bytes.
func (cs *chooseScratch) fenwick(n int) fenwick {
	cs.taken = reuse(cs.taken, 2*(n+2))
	return fenwick{starts: cs.taken[:n+2], ends: cs.taken[n+2:]}
}

// fenwick counts the chosen matches' starts and ends (two Fenwick trees). The chosen matches
// never overlap, so those meeting [a, b) are the ones starting before b less the ones ending
// at or before a: whether a candidate overlaps a chosen match, and choosing it, cost log n
// whatever the lengths, and many long overlapping candidates stay linearithmic.
type fenwick struct{ starts, ends []int32 }

// below returns the number of points of t before offset i.
func below(t []int32, i int32) (s int32) {
	for ; i > 0; i -= i & -i {
		s += t[i]
	}
	return s
}

func mark(t []int32, i int32) {
	for i++; i < int32(len(t)); i += i & -i {
		t[i]++
	}
}

// add chooses [a, b), unless it meets a chosen match: it reports whether it did.
func (t fenwick) add(a, b int32) bool {
	if below(t.starts, b)-below(t.ends, a+1) > 0 {
		return false
	}
	mark(t.starts, a)
	mark(t.ends, b)
	return true
}

// cmpMatch is the order matches are chosen in: longest first, a subject's value before a
// detection, then by position and placeholder. It is total, so an unstable sort gives the same
// result every time.
func cmpMatch(x, y match) int {
	if d := (y.b - y.a) - (x.b - x.a); d != 0 {
		return int(d)
	}
	if x.subject != y.subject {
		if x.subject {
			return -1
		}
		return 1
	}
	if x.a != y.a {
		return int(x.a - y.a)
	}
	if x.ph != y.ph {
		return int(x.ph - y.ph)
	}
	return int(x.det - y.det)
}

// chooseSlow is choose for texts or candidate lists too long for its packed keys.
func chooseSlow(ms []match, n int, cs *chooseScratch) []match {
	slices.SortFunc(ms, cmpMatch)
	taken := cs.fenwick(n)
	out := ms[:0] // writes never pass the reads
	for _, m := range ms {
		if taken.add(m.a, m.b) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(x, y match) int { return int(x.a - y.a) })
	return out
}
