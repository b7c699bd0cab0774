package redact

import (
	"bytes"
	"strings"
	"testing"

	"tutela/privacy"
)

// TestScratch_ForgetsTheText: a scratch about to go back to the pool holds none of the text it
// worked on, in its buffers or in the strings it kept (the e-mail a detector found shares the
// normalized text).
func TestScratch_ForgetsTheText(t *testing.T) {
	r := New([]Subject{{ID: "s", Fields: []Field{{Name: "full_name", Type: privacy.FieldName, Value: "Ada Lovelace"}}}}, Options{})
	text := "Ada Lovelace wrote to zebra.quokka@example.org about 079 123 45 67."
	sc := new(scratch)
	sc.vb = sc.v.fill(text, true, sc.vb)
	ms := r.matchSubjects(&sc.v, nil, sc)
	dets := r.scan(sc.v.text, &sc.det)
	if len(ms) == 0 || len(dets) == 0 {
		t.Fatalf("nothing found: %v %v", ms, dets)
	}
	sc.forget()
	for _, b := range [][]byte{sc.vb[:cap(sc.vb)], sc.cb[:cap(sc.cb)]} {
		if bytes.Contains(b, []byte("lovelace")) || bytes.Contains(b, []byte("zebra")) {
			t.Errorf("a buffer still holds the text: %q", b)
		}
	}
	if sc.v.text != "" || sc.c.text != nil || sc.gaps.n != "" {
		t.Errorf("the views still hold the text: %q %q %q", sc.v.text, sc.c.text, sc.gaps.n)
	}
	for _, f := range sc.det.out[:cap(sc.det.out)] {
		if strings.Contains(f.key, "zebra") {
			t.Errorf("a detection still holds the text: %q", f.key)
		}
	}
}
