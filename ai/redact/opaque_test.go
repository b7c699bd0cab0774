package redact

import (
	"strings"
	"testing"

	"tutela/privacy"
)

// An opaque field gets one placeholder per distinct written form, each holding what the caller
// wrote: restoring gives back each form exactly, and nothing carries the stored value.
func TestRedact_OpaqueFieldForms(t *testing.T) {
	t.Parallel()
	r := New([]Subject{{ID: "s", Fields: []Field{
		{Name: "national_id", Type: privacy.FieldNationalID, Value: "AB-947 381", Opaque: true},
		{Name: "full_name", Type: privacy.FieldName, Value: "Layla Mansour"},
	}}}, Options{})
	out := r.Redact("ids ab947381, AB 947 381 and ab947381 for Layla; LAYLA MANSOUR")
	want := "ids [S1_NATIONAL_ID], [S1_NATIONAL_ID_2] and [S1_NATIONAL_ID] for [S1_FULL_NAME]; [S1_FULL_NAME]"
	if out != want {
		t.Fatalf("got  %q\nwant %q", out, want)
	}
	if got := r.Redact("again AB 947 381"); got != "again [S1_NATIONAL_ID_2]" {
		t.Errorf("second string: %q", got)
	}
	for _, p := range r.Placeholders() {
		if strings.Contains(p.Value, "AB-947") {
			t.Errorf("%s carries the stored value", p.Token)
		}
		if p.Field == "national_id" && (p.Value != p.Written || p.Subject != 0) {
			t.Errorf("%+v", p)
		}
		if p.Field == "full_name" && p.Value != "Layla Mansour" {
			t.Errorf("non-opaque field: %+v", p)
		}
	}
	x := r.Restorer(allowAll)
	if got := x.Restore("[S1_NATIONAL_ID] / [S1_NATIONAL_ID_2] / [S1_NATIONAL_ID_3] / [S1_FULL_NAME]"); got != "ab947381 / AB 947 381 / [S1_NATIONAL_ID_3] / Layla Mansour" {
		t.Errorf("restored %q", got)
	}
	if tok := r.Token(0, "national_id"); tok != "[S1_NATIONAL_ID]" {
		t.Errorf("Token = %q", tok)
	}
}

// An opaque field that matched nothing hands out nothing: its placeholder has no value.
func TestRedact_OpaqueUnusedHasNoValue(t *testing.T) {
	t.Parallel()
	r := New([]Subject{{ID: "s", Fields: []Field{{Name: "pin", Type: privacy.FieldNumber, Value: "99812", Opaque: true}}}}, Options{})
	if got := r.Restorer(allowAll).Restore("[S1_PIN]"); got != "[S1_PIN]" {
		t.Errorf("restored %q", got)
	}
	for _, p := range r.phs {
		if p.Value != "" {
			t.Errorf("%s holds %q", p.Token, p.Value)
		}
	}
}

// A form's number never makes a token another field has: "x_2" is a field here, so the second
// form of x is numbered past it, and each token restores its own value.
func TestRedact_OpaqueFormTokensDoNotCollide(t *testing.T) {
	t.Parallel()
	r := New([]Subject{{ID: "s", Fields: []Field{
		{Name: "x", Type: privacy.FieldNationalID, Value: "QZ-1234", Opaque: true},
		{Name: "x_2", Type: privacy.FieldNationalID, Value: "WK-5678"},
		{Name: "x_3", Type: privacy.FieldNationalID, Value: "WK-9999"},
	}}}, Options{})
	out := r.Redact("qz1234 QZ 1234 qz-1234 WK5678 wk9999")
	want := "[S1_X] [S1_X_4] [S1_X_5] [S1_X_2] [S1_X_3]"
	if out != want {
		t.Fatalf("got  %q\nwant %q", out, want)
	}
	seen := map[string]bool{}
	for _, p := range r.phs {
		if seen[p.Token] {
			t.Errorf("token %s handed out twice", p.Token)
		}
		seen[p.Token] = true
	}
	if got := r.Restorer(allowAll).Restore(want); got != "qz1234 QZ 1234 qz-1234 WK-5678 WK-9999" {
		t.Errorf("restored %q", got)
	}
}
