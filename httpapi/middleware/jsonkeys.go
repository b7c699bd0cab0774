package middleware

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"tutela"
)

// maxJSONDepth bounds how deeply a request body may nest objects and arrays. No request needs
// more than a few levels; encoding/json's own limit is 10000.
const maxJSONDepth = 32

// checkKeys walks the JSON object in data once, before it is decoded into a value of type
// target, and refuses (ASVS 5.0 2.2.1):
//
//   - a duplicate key. encoding/json keeps the last value; a proxy, WAF or log pipeline may
//     keep the first, so two components would act on different requests.
//   - two keys equal ignoring case, and a key spelled in another letter case than the struct
//     field it fills. encoding/json matches field names case-insensitively, so
//     {"slug":"t7","SLUG":"t8"} sets slug to "t8" while anything reading "slug" sees "t7".
//   - nesting deeper than maxJSONDepth.
//
// Case is compared with Unicode simple folding, as encoding/json does ("ſlug" fills slug).
// Keys of maps and of free-form values (json.RawMessage, a type with its own UnmarshalJSON)
// have no field to match, so only the duplicate rules apply to them: a WebAuthn response keeps
// its camelCase keys. Malformed JSON is left to the decoder, which reports it with an offset.
// It returns the body object's keys (sorted), which the request's audit record lists.
func checkKeys(data []byte, target reflect.Type) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // no float parsing: only keys matter here
	w := keyWalker{fields: map[reflect.Type]map[string]reflect.Type{}}
	for {
		tok, err := dec.Token()
		if err != nil {
			return w.topKeys(), nil
		}
		var top *jsonFrame
		if n := len(w.stack); n > 0 {
			top = w.stack[n-1]
		}
		switch {
		case top != nil && top.object && top.wantKey:
			key, ok := tok.(string)
			if !ok { // '}'
				if w.pop() {
					return w.topKeys(), nil
				}
				continue
			}
			if err := w.key(top, key); err != nil {
				return nil, err
			}
			continue
		case tok == json.Delim(']'):
			if w.pop() {
				return w.topKeys(), nil
			}
			continue
		}

		// tok starts a value: of the top-level object, of top's current key, or of top's array.
		typ, path := target, ""
		if top != nil {
			typ, path = w.child(top)
		}
		d, ok := tok.(json.Delim)
		if !ok {
			if top == nil {
				return w.topKeys(), nil
			}
			continue
		}
		if len(w.stack) == maxJSONDepth {
			return nil, tutela.Errorf(tutela.EINVALID, "request body must not nest objects and arrays more than %d deep", maxJSONDepth)
		}
		w.stack = append(w.stack, &jsonFrame{object: d == '{', typ: decodeTarget(typ), path: path, wantKey: true})
	}
}

// jsonFrame is one open object or array.
type jsonFrame struct {
	object  bool
	typ     reflect.Type      // the Go type it decodes into; nil when free-form or unknown
	path    string            // dotted key path, like the field names decodeError reports
	seen    map[string]string // folded key → key as sent
	key     string            // the key whose value comes next
	wantKey bool
}

type keyWalker struct {
	stack  []*jsonFrame
	fields map[reflect.Type]map[string]reflect.Type // jsonFields, per struct type met
	top    []string                                 // the body object's keys, as sent
}

// topKeys returns the body object's keys, sorted: names only, for the audit record.
func (w *keyWalker) topKeys() []string {
	slices.Sort(w.top)
	return w.top
}

// pop closes the innermost container and reports whether that ended the body's object.
func (w *keyWalker) pop() bool {
	w.stack = w.stack[:len(w.stack)-1]
	return len(w.stack) == 0
}

func (w *keyWalker) key(f *jsonFrame, key string) error {
	path := joinPath(f.path, key)
	fold := foldKey(key)
	if prev, dup := f.seen[fold]; dup {
		if prev == key {
			return tutela.FieldErrorf(path, "duplicate key %q", key)
		}
		return tutela.FieldErrorf(path, "keys %q and %q differ only in letter case", prev, key)
	}
	if f.seen == nil {
		f.seen = map[string]string{}
	}
	f.seen[fold] = key
	f.key, f.wantKey = key, false
	if len(w.stack) == 1 {
		w.top = append(w.top, key)
	}
	if f.typ != nil && f.typ.Kind() == reflect.Struct {
		fields := w.structFields(f.typ)
		if _, ok := fields[key]; !ok {
			for name := range fields {
				if strings.EqualFold(name, key) {
					return tutela.FieldErrorf(path, "key %q must be spelled %q", key, name)
				}
			}
		}
	}
	return nil
}

// child returns the Go type and path of the next value inside f.
func (w *keyWalker) child(f *jsonFrame) (reflect.Type, string) {
	if !f.object {
		if f.typ != nil && (f.typ.Kind() == reflect.Slice || f.typ.Kind() == reflect.Array) {
			return f.typ.Elem(), f.path
		}
		return nil, f.path
	}
	f.wantKey = true
	path := joinPath(f.path, f.key)
	switch {
	case f.typ == nil:
		return nil, path
	case f.typ.Kind() == reflect.Struct:
		return w.structFields(f.typ)[f.key], path // nil for an unknown key, which Decode refuses
	case f.typ.Kind() == reflect.Map:
		return f.typ.Elem(), path
	}
	return nil, path
}

func (w *keyWalker) structFields(t reflect.Type) map[string]reflect.Type {
	fs, ok := w.fields[t]
	if !ok {
		fs = jsonFields(t)
		w.fields[t] = fs
	}
	return fs
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeTarget returns the type whose fields, elements or values a JSON container fills when
// decoded into t, or nil when t decodes itself (json.RawMessage, time.Time) or is an interface.
func decodeTarget(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array:
		return t
	}
	return nil
}

// jsonFields returns the JSON names of struct t's fields and their types, following
// encoding/json's rules closely enough for checkKeys: tag names, Go names for untagged
// fields, fields of untagged embedded structs promoted, the shallowest field winning.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	depth := map[string]int{}
	var named [][]int // index paths of tagged embedded structs, whose fields are not promoted
	for _, f := range reflect.VisibleFields(t) {
		if under(f.Index, named) {
			continue
		}
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				continue // its fields follow, promoted
			}
		}
		if !f.IsExported() || tag == "-" {
			if f.Anonymous {
				named = append(named, f.Index)
			}
			continue
		}
		if f.Anonymous {
			named = append(named, f.Index)
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		if d, ok := depth[name]; ok && d <= len(f.Index) {
			continue
		}
		out[name], depth[name] = f.Type, len(f.Index)
	}
	return out
}

// under reports whether index lies inside one of the fields at prefixes.
func under(index []int, prefixes [][]int) bool {
	for _, p := range prefixes {
		if len(index) > len(p) && slices.Equal(index[:len(p)], p) {
			return true
		}
	}
	return false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// foldKey maps every rune of s to the smallest rune of its Unicode simple-folding orbit, so
// foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b).
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}
