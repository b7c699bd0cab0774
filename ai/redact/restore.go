package redact

import "strings"

// Restorer puts back, in the model's answer, the values the caller may see. It is not safe for
// concurrent use (its Streams share its record of what was restored).
type Restorer struct {
	r        *Redactor
	allow    []bool   // per placeholder index
	vals     []string // what each allowed placeholder becomes
	maxTok   int
	restored []int // placeholder indexes replaced at least once, in first-restored order
	seen     []bool
}

// Restorer returns a Restorer for the caller: allow reports whether they may see ph.Value. Only a
// placeholder that replaced something in this request before now (Uses > 0) is restored: one
// the caller typed literally, or the model invented, or one first used after this call, stays
// exactly as the model wrote it, as does one not allowed. allow is asked once per used
// placeholder, now.
func (r *Redactor) Restorer(allow func(Placeholder) bool) *Restorer {
	return r.RestorerFunc(func(p Placeholder) (string, bool) { return p.Value, allow != nil && allow(p) })
}

// RestorerFunc is Restorer with the replacement chosen per placeholder: value returns what
// the placeholder becomes, or false to leave it as written. The gateway gives a field the
// caller may not read back as the caller wrote it (Placeholder.Written), so the answer does not
// show which of their words matched a value they may not see.
func (r *Redactor) RestorerFunc(value func(Placeholder) (string, bool)) *Restorer {
	x := &Restorer{r: r, allow: make([]bool, len(r.phs)), vals: make([]string, len(r.phs)), seen: make([]bool, len(r.phs))}
	for i, p := range r.phs {
		if p.Uses == 0 {
			// Resolving a token that replaced nothing would answer "what is S1's national
			// ID?" for a caller who typed "[S1_NATIONAL_ID]", and it restores nothing the
			// model was given.
			continue
		}
		x.vals[i], x.allow[i] = value(p)
		x.maxTok = max(x.maxTok, len(p.Token))
	}
	return x
}

// Restored returns the placeholders this Restorer replaced at least once, across Restore,
// RestoreEscaped and all its Streams, in first-restored order: what the answer gave back, for
// the audit record.
func (x *Restorer) Restored() []Placeholder {
	out := make([]Placeholder, len(x.restored))
	for i, ph := range x.restored {
		out[i] = x.r.phs[ph]
	}
	return out
}

// Restore returns text with each placeholder the caller may see replaced by its value.
func (x *Restorer) Restore(text string) string { return x.RestoreEscaped(text, nil) }

// RestoreEscaped is Restore with escape (may be nil) applied to each value before it is
// inserted: JSON string escaping for tool-call arguments, which are JSON text.
func (x *Restorer) RestoreEscaped(text string, escape func(string) string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(text); {
		k := strings.IndexByte(text[i:], '[')
		if k < 0 {
			break
		}
		i += k
		end := tokenEnd(text, i)
		if end < 0 {
			i++
			continue
		}
		ph, ok := x.r.byToken[text[i:end]]
		if !ok || ph >= len(x.allow) || !x.allow[ph] {
			i = end
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(text))
		}
		if !x.seen[ph] {
			x.seen[ph] = true
			x.restored = append(x.restored, ph)
		}
		v := x.vals[ph]
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(text[last:i])
		b.WriteString(v)
		i, last = end, end
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// tokenEnd returns the end of the placeholder-shaped text "[A-Z0-9_]+]" at text[i] ("[" there),
// or -1.
func tokenEnd(text string, i int) int {
	j := i + 1
	for j < len(text) && tokenByte(text[j]) {
		j++
	}
	if j == i+1 || j >= len(text) || text[j] != ']' {
		return -1
	}
	return j + 1
}

func tokenByte(c byte) bool { return 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' }

// Stream restores one output stream (a choice's content, one tool call's arguments) chunk by
// chunk.
type Stream struct {
	x      *Restorer
	escape func(string) string
	held   string
}

// Stream starts restoring one output stream. escape (may be nil) transforms each restored value
// before insertion, as in RestoreEscaped.
func (x *Restorer) Stream(escape func(string) string) *Stream {
	return &Stream{x: x, escape: escape}
}

// Write returns what can be emitted now, holding back only a tail that could still become a
// placeholder ("[S1_FU" until the rest arrives). The concatenation of every Write and the Flush
// equals RestoreEscaped of the whole stream.
func (s *Stream) Write(chunk string) string {
	text := s.held + chunk
	cut := len(text)
	if i := strings.LastIndexByte(text, '['); i >= 0 && len(text)-i <= s.x.maxTok {
		j := i + 1
		for j < len(text) && tokenByte(text[j]) {
			j++
		}
		if j == len(text) { // "[" and token characters up to the end: it may yet close
			cut = i
		}
	}
	s.held = text[cut:]
	return s.x.RestoreEscaped(text[:cut], s.escape)
}

// Flush returns the rest at the end of the stream.
func (s *Stream) Flush() string {
	out := s.x.RestoreEscaped(s.held, s.escape)
	s.held = ""
	return out
}
