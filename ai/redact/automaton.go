package redact

// automaton finds every occurrence of a set of byte strings in one pass over a text
// (Aho–Corasick, 1975): the time is linear in the text plus the occurrences, whatever the
// strings. Trying each value at each word start instead costs the value's length at every start
// where it could begin, which a value of repeated letters against a text of repeated letters
// turns into minutes of CPU (a denial of service by whoever may write a subject's field).
type automaton struct {
	root [256]int32 // the root's transitions; 0 is the root itself
	kid  []edge     // per node: its first child (to 0 when none): most nodes have one
	more [][]edge   // per node: its other children (nil for most)
	fail []int32    // per node: the longest proper suffix of its string that is a node
	dict []int32    // per node: the nearest node along fail links with outputs, or -1
	out  [][]int32  // per node: the indexes of the strings that end there (one string, repeated or not)
}

// maxPrealloc bounds the nodes newAutomaton allocates before it knows how many there are.
const maxPrealloc = 4096

type edge struct {
	c  byte
	to int32
}

func (a *automaton) child(n int32, c byte) int32 {
	if n == 0 {
		return a.root[c]
	}
	if e := a.kid[n]; e.c == c && e.to > 0 {
		return e.to
	}
	for _, e := range a.more[n] {
		if e.c == c {
			return e.to
		}
	}
	return -1
}

// children calls f with each child of node n.
func (a *automaton) children(n int32, f func(edge)) {
	if n == 0 {
		for c, t := range a.root {
			if t > 0 {
				f(edge{byte(c), t})
			}
		}
		return
	}
	if a.kid[n].to > 0 {
		f(a.kid[n])
	}
	for _, e := range a.more[n] {
		f(e)
	}
}

// newAutomaton builds the automaton of pats. A string given more than once is one output, so
// the same form in many fields costs one report per occurrence, not one per field.
func newAutomaton(pats []string) *automaton {
	// At most one node per byte of the strings, plus the root: sized once, not grown, for the
	// usual few short values. Long values that share their prefixes (a hostile field of
	// repeated letters) make far fewer nodes than bytes: past maxPrealloc the slices grow.
	nodes := 1
	for _, p := range pats {
		nodes += len(p)
	}
	nodes = min(nodes, maxPrealloc)
	a := &automaton{kid: make([]edge, 1, nodes), more: make([][]edge, 1, nodes), fail: make([]int32, 1, nodes),
		dict: make([]int32, 1, nodes), out: make([][]int32, 1, nodes)}
	a.dict[0] = -1
	for k, p := range pats {
		n := int32(0)
		for i := 0; i < len(p); i++ {
			t := a.child(n, p[i])
			if t <= 0 {
				t = int32(len(a.kid))
				a.kid = append(a.kid, edge{})
				a.more = append(a.more, nil)
				a.fail = append(a.fail, 0)
				a.dict = append(a.dict, -1)
				a.out = append(a.out, nil)
				switch {
				case n == 0:
					a.root[p[i]] = t
				case a.kid[n].to == 0:
					a.kid[n] = edge{p[i], t}
				default:
					a.more[n] = append(a.more[n], edge{p[i], t})
				}
			}
			n = t
		}
		a.out[n] = append(a.out[n], int32(k))
	}
	// Breadth first, so a node's fail link is set before its children's.
	queue := make([]int32, 0, len(a.kid))
	a.children(0, func(e edge) { queue = append(queue, e.to) })
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		a.children(u, func(e edge) {
			f := a.fail[u]
			for f != 0 && a.child(f, e.c) < 0 {
				f = a.fail[f]
			}
			if t := a.child(f, e.c); t > 0 && t != e.to {
				a.fail[e.to] = t
			}
			g := a.fail[e.to]
			if len(a.out[g]) > 0 {
				a.dict[e.to] = g
			} else {
				a.dict[e.to] = a.dict[g]
			}
			queue = append(queue, e.to)
		})
	}
	return a
}

// scan calls f with the end offset of every occurrence in text and the indexes of the strings
// (all equal) that occur there.
func (a *automaton) scan(text string, f func(end int, ks []int32)) { scanText(a, text, f) }

// scanText is scan for a string or a byte slice (the compact view, which is never copied into a
// string).
func scanText[T string | []byte](a *automaton, text T, f func(end int, ks []int32)) {
	n := int32(0)
	for i := 0; i < len(text); i++ {
		c := text[i]
		for {
			if t := a.child(n, c); t > 0 {
				n = t
				break
			}
			if n == 0 {
				break
			}
			n = a.fail[n]
		}
		if n == 0 {
			continue
		}
		o := n
		if len(a.out[o]) == 0 {
			o = a.dict[o]
		}
		for ; o > 0; o = a.dict[o] {
			f(i+1, a.out[o])
		}
	}
}
