package redact

import (
	"encoding/json"
	"strings"
	"testing"

	"tutela/privacy"
)

// JSON text (a tool result from Python's json.dumps) writes non-ASCII characters and sometimes
// "@" as \u escapes: the value must match through them and be replaced over the escapes, so the
// JSON stays valid and the value does not reach the provider.
func TestRedact_JSONEscapes(t *testing.T) {
	r := New([]Subject{{ID: "s", Fields: []Field{
		{Name: "full_name", Type: privacy.FieldName, Value: "ليلى منصور"},
		{Name: "email", Type: privacy.FieldEmail, Value: "x.y@example.org"},
		{Name: "nick", Type: privacy.FieldText, Value: "Grinning 😀 Fox"},
		{Name: "site", Type: privacy.FieldText, Value: "http://home.example/ada"},
	}}}, Options{})
	in := `{"name": "\u0644\u064a\u0644\u0649 \u0645\u0646\u0635\u0648\u0631", "email": "x.y\u0040example.org",` +
		` "nick": "grinning \uD83D\uDE00 fox", "site": "http:\/\/home.example\/ada"}`
	out := r.Redact(in)
	want := `{"name": "[S1_FULL_NAME]", "email": "[S1_EMAIL]", "nick": "[S1_NICK]", "site": "[S1_SITE]"}`
	if out != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("redacted JSON is invalid: %v", err)
	}
	// The written form is the escaped text, as the caller sent it.
	if p := r.Placeholders()[1]; p.Written != `x.y\u0040example.org` {
		t.Errorf("Written = %q", p.Written)
	}
}

// A detector sees the decoded characters too, and the match covers the escapes.
func TestRedact_JSONEscapedDetection(t *testing.T) {
	r := New(nil, Options{})
	out := r.Redact(`{"to": "dr.smith\u0040clinic.example.org"}`)
	if out != `{"to": "[EMAIL_1]"}` {
		t.Errorf("got %s", out)
	}
}

// Invalid escapes stay as written and do not break the view: a lone surrogate, too few hex
// digits, an escaped backslash before "u0040" (a literal backslash and "u0040" in JSON).
func TestNormalize_InvalidEscapesStay(t *testing.T) {
	for in, want := range map[string]string{
		`a\uD83Db`:      `a\ud83db`,
		`a\uDE00\uD83D`: `a\ude00\ud83d`,
		`\u004`:         `\u004`,
		`\u00zz`:        `\u00zz`,
		`x\\u0040y`:     `x\\u0040y`,
		`\uD83D\u0041`:  `\ud83da`,
		`\u0041\/`:      `a/`,
	} {
		v := normalize(in)
		if v.text != want {
			t.Errorf("normalize(%q) = %q, want %q", in, v.text, want)
		}
		if len(v.start) != len(v.text) || len(v.end) != len(v.text) {
			t.Errorf("%q: offsets do not cover the view", in)
		}
	}
	// A value hidden after an escaped backslash is not decoded: \\u0040 is not "@".
	r := New([]Subject{{ID: "s", Fields: []Field{{Name: "email", Type: privacy.FieldEmail, Value: "a@b.example"}}}}, Options{})
	if out := r.Redact(`a\\u0040b.example`); strings.Contains(out, "[S1_") {
		t.Errorf("decoded an escaped backslash: %s", out)
	}
}
