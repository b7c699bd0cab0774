package audit

import (
	"reflect"
	"testing"
)

func TestSanitizeDetails_RedactsCredentialsAtAnyDepth(t *testing.T) {
	t.Parallel()
	in := map[string]any{
		"user":          "0190-user",
		"Password":      "hunter2",
		"new_passwd":    "x",
		"client_secret": "s",
		"AccessToken":   "t",
		"Authorization": "Bearer abc",
		"Set-Cookie":    "sid=1",
		"x-api-key":     "k",
		"apiKey":        "k",
		"private_key":   map[string]any{"d": "..."},
		"otp":           "123456",
		"code_verifier": "v",
		"recovery_code": "r",
		"count":         3,
		"nested": map[string]any{
			"ok": "keep",
			"deeper": map[string]any{
				"refresh_token": "t",
				"list":          []any{map[string]any{"secret": "s", "name": "n"}, "plain", 1},
			},
		},
		"headers": map[string]string{"Cookie": "c", "Accept": "json"},
		"items":   []map[string]any{{"token": "t", "id": 1}},
		"tags":    []string{"a", "b"},
	}
	want := map[string]any{
		"user":          "0190-user",
		"Password":      Redacted,
		"new_passwd":    Redacted,
		"client_secret": Redacted,
		"AccessToken":   Redacted,
		"Authorization": Redacted,
		"Set-Cookie":    Redacted,
		"x-api-key":     Redacted,
		"apiKey":        Redacted,
		"private_key":   Redacted,
		"otp":           Redacted,
		"code_verifier": Redacted,
		"recovery_code": Redacted,
		"count":         3,
		"nested": map[string]any{
			"ok": "keep",
			"deeper": map[string]any{
				"refresh_token": Redacted,
				"list":          []any{map[string]any{"secret": Redacted, "name": "n"}, "plain", 1},
			},
		},
		"headers": map[string]string{"Cookie": Redacted, "Accept": "json"},
		"items":   []any{map[string]any{"token": Redacted, "id": 1}},
		"tags":    []string{"a", "b"},
	}
	got := SanitizeDetails(in)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
	// A copy: the input is untouched and the output shares no containers with it.
	if in["Password"] != "hunter2" || in["nested"].(map[string]any)["deeper"].(map[string]any)["refresh_token"] != "t" {
		t.Fatal("input modified")
	}
	got["tags"].([]string)[0] = "changed"
	got["nested"].(map[string]any)["ok"] = "changed"
	if in["tags"].([]string)[0] != "a" || in["nested"].(map[string]any)["ok"] != "keep" {
		t.Fatal("output aliases the input")
	}
	if SanitizeDetails(nil) != nil {
		t.Fatal("nil in, non-nil out")
	}
}

func TestSanitizeDetails_EndsSelfReference(t *testing.T) {
	t.Parallel()
	m := map[string]any{"a": 1}
	m["self"] = m
	out := SanitizeDetails(m) // must terminate
	depth := 0
	for cur := any(out); ; depth++ {
		mm, ok := cur.(map[string]any)
		if !ok {
			if cur != Redacted {
				t.Fatalf("deepest value = %v, want %q", cur, Redacted)
			}
			break
		}
		cur = mm["self"]
	}
	if depth > MaxDetailsDepth {
		t.Fatalf("depth %d beyond MaxDetailsDepth", depth)
	}
	e := fullEvent()
	e.Details = out
	if _, err := e.Canonical(); err != nil {
		t.Fatalf("sanitized self-reference does not encode: %v", err)
	}
}
