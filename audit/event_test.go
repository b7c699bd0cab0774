package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
)

func fullEvent() Event {
	return Event{
		ID:         "0190f3a4-0000-7000-8000-000000000001",
		Time:       time.Date(2025, 3, 1, 12, 34, 56, 123456000, time.UTC),
		TenantID:   "tenant-1",
		ActorType:  ActorUser,
		ActorID:    "user-1",
		SourceIP:   "2001:db8::1",
		UserAgent:  "curl/8.5",
		Action:     "user.update",
		TargetType: "user",
		TargetID:   "user-2",
		Outcome:    OutcomeSuccess,
		RequestID:  "req-1",
		Reason:     "support ticket 42",
		Details:    map[string]any{"b": 1, "a": []any{"x", true, nil}, "c": map[string]any{"z": 1.5, "y": "é"}},
	}
}

func TestCanonical_Golden(t *testing.T) {
	t.Parallel()
	got, err := fullEvent().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"action":"user.update","actor_id":"user-1","actor_type":"user",` +
		`"details":{"a":["x",true,null],"b":1,"c":{"y":"é","z":1.5}},` +
		`"id":"0190f3a4-0000-7000-8000-000000000001","outcome":"success","reason":"support ticket 42",` +
		`"request_id":"req-1","source_ip":"2001:db8::1","target_id":"user-2","target_type":"user",` +
		`"tenant_id":"tenant-1","time":"2025-03-01T12:34:56.123456Z","user_agent":"curl/8.5","v":1}`
	if string(got) != want {
		t.Fatalf("Canonical =\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(got) {
		t.Fatal("canonical encoding is not valid JSON")
	}
}

func TestCanonical_TopLevelKeysSorted(t *testing.T) {
	t.Parallel()
	got, err := fullEvent().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	// Walk the top-level object: at depth 1, tokens alternate key and value, and a container
	// value returns to depth 1 when it closes.
	dec := json.NewDecoder(bytes.NewReader(got))
	var names []string
	depth, expectKey := 0, false
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth == 0 {
				expectKey = true
			}
			depth++
			continue
		case json.Delim('}'), json.Delim(']'):
			if depth--; depth == 1 {
				expectKey = true
			}
			continue
		}
		if depth != 1 {
			continue
		}
		if expectKey {
			names = append(names, tok.(string))
		}
		expectKey = !expectKey
	}
	if !slices.IsSorted(names) || len(names) != 15 {
		t.Fatalf("top-level keys not sorted or incomplete: %v", names)
	}
}

func TestCanonical_DeterministicAcrossMapOrder(t *testing.T) {
	t.Parallel()
	first, err := fullEvent().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		e := fullEvent()
		// Build Details afresh, in a different insertion order each time; Go also randomises
		// map iteration, so any order dependence shows up here.
		keys := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"}
		if i%2 == 1 {
			slices.Reverse(keys)
		}
		d := map[string]any{}
		for _, k := range keys {
			d[k] = map[string]any{"n": len(k), "s": k}
		}
		d["b"], d["a"], d["c"] = 1, []any{"x", true, nil}, map[string]any{"y": "é", "z": 1.5}
		e.Details = d
		got, err := e.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		e2 := fullEvent()
		e2.Details = d
		again, _ := e2.Canonical()
		if !bytes.Equal(got, again) {
			t.Fatal("same event, different bytes")
		}
		if i == 0 {
			first = got
		} else if !bytes.Equal(got, first) {
			t.Fatalf("encoding depends on map order:\n%s\n%s", got, first)
		}
	}
}

func TestCanonical_EveryFieldChangesTheBytes(t *testing.T) {
	t.Parallel()
	base, err := fullEvent().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		field string
		edit  func(*Event)
	}{
		{"ID", func(e *Event) { e.ID += "x" }},
		{"Time", func(e *Event) { e.Time = e.Time.Add(time.Microsecond) }},
		{"TenantID", func(e *Event) { e.TenantID = "" }},
		{"ActorType", func(e *Event) { e.ActorType = ActorServiceAccount }},
		{"ActorID", func(e *Event) { e.ActorID = "user-3" }},
		{"SourceIP", func(e *Event) { e.SourceIP = "2001:db8::2" }},
		{"UserAgent", func(e *Event) { e.UserAgent = "curl/8.6" }},
		{"Action", func(e *Event) { e.Action = "user.delete" }},
		{"TargetType", func(e *Event) { e.TargetType = "role" }},
		{"TargetID", func(e *Event) { e.TargetID = "user-3" }},
		{"Outcome", func(e *Event) { e.Outcome = OutcomeDenied }},
		{"RequestID", func(e *Event) { e.RequestID = "req-2" }},
		{"Reason", func(e *Event) { e.Reason = "" }},
		{"Details value", func(e *Event) { e.Details["b"] = 2 }},
		{"Details type", func(e *Event) { e.Details["b"] = "1" }},
		{"Details key", func(e *Event) { e.Details["d"] = nil }},
		{"Details nested", func(e *Event) { e.Details["c"].(map[string]any)["z"] = 1.25 }},
		{"Details slice order", func(e *Event) { e.Details["a"] = []any{true, "x", nil} }},
		{"Details removed", func(e *Event) { e.Details = nil }},
		// Moving text between fields must not collide: every member is delimited.
		{"shift between fields", func(e *Event) { e.TargetType, e.TargetID = "user-", "2" }},
	}
	seen := map[string]string{string(base): "base"}
	for _, tc := range tests {
		e := fullEvent()
		tc.edit(&e)
		got, err := e.Canonical()
		if err != nil {
			t.Fatalf("%s: %v", tc.field, err)
		}
		if prev, dup := seen[string(got)]; dup {
			t.Errorf("changing %s gives the same bytes as %s", tc.field, prev)
		}
		seen[string(got)] = tc.field
	}
}

func TestCanonical_NilAndEmptyDetailsAreTheSame(t *testing.T) {
	t.Parallel()
	a, b := fullEvent(), fullEvent()
	a.Details, b.Details = nil, map[string]any{}
	ca, _ := a.Canonical()
	cb, _ := b.Canonical()
	if !bytes.Equal(ca, cb) || !bytes.Contains(ca, []byte(`"details":{}`)) {
		t.Fatalf("nil vs empty details: %s / %s", ca, cb)
	}
}

// RFC 8785 §3.2.2.3 and Appendix B number serialisations (ECMAScript Number.toString).
func TestCanonical_NumbersFollowRFC8785(t *testing.T) {
	t.Parallel()
	pointOne := 0.1 // a variable, so 0.1+0.2 is computed in float64 and not as an exact constant
	tests := []struct {
		in   any
		want string
	}{
		{0.0, "0"},
		{math.Copysign(0, -1), "0"},
		{1.0, "1"},
		{-1.5, "-1.5"},
		{5e-324, "5e-324"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{9007199254740992.0, "9007199254740992"},
		{295147905179352830000.0, "295147905179352830000"},
		{1e21, "1e+21"},
		{1e20, "100000000000000000000"},
		{0.000001, "0.000001"},
		{0.0000001, "1e-7"},
		{333333333.3333333, "333333333.3333333"},
		{4.35, "4.35"},
		{pointOne + 0.2, "0.30000000000000004"},
		{float32(0.5), "0.5"},
		{42, "42"},
		{int64(-9007199254740992), "-9007199254740992"},
		{uint8(7), "7"},
		{json.Number("12"), "12"},
		{json.Number("1.50"), "1.5"},
		{json.Number("1E3"), "1000"},
		{json.Number("-0.0"), "0"},
	}
	for _, tc := range tests {
		got, err := appendValue(nil, tc.in, 1)
		if err != nil {
			t.Errorf("%v (%T): %v", tc.in, tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%v (%T) = %s, want %s", tc.in, tc.in, got, tc.want)
		}
	}
}

func TestCanonical_RejectsValuesWithoutOneSpelling(t *testing.T) {
	t.Parallel()
	deep := map[string]any{}
	cur := deep
	for range MaxDetailsDepth + 1 {
		next := map[string]any{}
		cur["x"] = next
		cur = next
	}
	self := map[string]any{}
	self["me"] = self
	bad := map[string]any{
		"NaN":               math.NaN(),
		"+Inf":              math.Inf(1),
		"-Inf":              math.Inf(-1),
		"int beyond 2^53":   int64(1<<53 + 1),
		"uint beyond 2^53":  uint64(1 << 60),
		"json.Number huge":  json.Number("12345678901234567890"),
		"json.Number bogus": json.Number("0x10"),
		"json.Number inf":   json.Number("1e999"),
		"struct":            struct{}{},
		"time.Time":         time.Now(),
		"invalid UTF-8":     "\xff",
		"too deep":          deep,
		"self-referencing":  self,
	}
	for name, v := range bad {
		e := fullEvent()
		e.Details = map[string]any{"v": v}
		if _, err := e.Canonical(); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: Canonical err = %v, want EINVALID", name, err)
		}
	}
	e := fullEvent()
	e.Details = map[string]any{"\xff": 1}
	if _, err := e.Canonical(); err == nil {
		t.Error("invalid UTF-8 key accepted")
	}
	e = fullEvent()
	e.Details = map[string]any{"big": strings.Repeat("x", MaxCanonicalSize)}
	if _, err := e.Canonical(); err == nil {
		t.Error("oversized event accepted")
	}
}

// RFC 8785 §3.2.3: keys sort by UTF-16 code units, which puts U+1F600 (a surrogate pair) before
// U+FB33 although its UTF-8 bytes sort after.
func TestCanonical_KeysSortByUTF16(t *testing.T) {
	t.Parallel()
	m := map[string]any{"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001F600": 5, "\u0080": 6, "\u00f6": 7}
	got, err := appendValue(nil, m, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"\\r\":2,\"1\":4,\"\u0080\":6,\"\u00f6\":7,\"\u20ac\":1,\"\U0001F600\":5,\"\ufb33\":3}"
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestCanonical_StringEscaping(t *testing.T) {
	t.Parallel()
	in := "q\"b\\s/\b\f\n\r\t\x00\x1f\x7f<>&\u2028é😀"
	got := appendString(nil, in)
	want := `"q\"b\\s/\b\f\n\r\t\u0000\u001f` + "\x7f<>&\u2028é😀" + `"`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil || back != in {
		t.Fatalf("does not round-trip: %q, %v", back, err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(*Event)
		field string // "" = valid
	}{
		{"valid", func(*Event) {}, ""},
		{"platform event", func(e *Event) { e.TenantID = "" }, ""},
		{"anonymous without id", func(e *Event) { e.ActorType, e.ActorID = ActorAnonymous, "" }, ""},
		{"system", func(e *Event) { e.ActorType, e.ActorID = ActorSystem, "scheduler" }, ""},
		{"no id", func(e *Event) { e.ID = "" }, "id"},
		{"no time", func(e *Event) { e.Time = time.Time{} }, "time"},
		{"local time", func(e *Event) { e.Time = e.Time.In(time.FixedZone("CET", 3600)) }, "time"},
		{"nanoseconds", func(e *Event) { e.Time = e.Time.Add(1) }, "time"},
		{"year 10000", func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "time"},
		{"no action", func(e *Event) { e.Action = "" }, "action"},
		{"no outcome", func(e *Event) { e.Outcome = "" }, "outcome"},
		{"unknown outcome", func(e *Event) { e.Outcome = "ok" }, "outcome"},
		{"no actor type", func(e *Event) { e.ActorType = "" }, "actor_type"},
		{"unknown actor type", func(e *Event) { e.ActorType = "admin" }, "actor_type"},
		{"user without id", func(e *Event) { e.ActorID = "" }, "actor_id"},
		{"e-mail as actor id", func(e *Event) { e.ActorID = "ana@example.org" }, "actor_id"},
		{"invalid UTF-8", func(e *Event) { e.UserAgent = "a\xffb" }, "user_agent"},
	}
	for _, tc := range tests {
		e := fullEvent()
		tc.edit(&e)
		err := e.Validate()
		var te *tutela.Error
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!asError(err, &te) || te.Code != tutela.EINVALID || te.Field != tc.field):
			t.Errorf("%s: err = %v, want EINVALID on %s", tc.name, err, tc.field)
		}
		if _, cerr := e.Canonical(); (cerr == nil) != (err == nil) {
			t.Errorf("%s: Canonical and Validate disagree: %v / %v", tc.name, cerr, err)
		}
	}
}

func asError(err error, target **tutela.Error) bool {
	e, ok := err.(*tutela.Error)
	*target = e
	return ok
}

func TestNormalized_MakesUntrustedInputRecordable(t *testing.T) {
	t.Parallel()
	e := fullEvent()
	e.Time = time.Date(2025, 3, 1, 13, 34, 56, 123456789, time.FixedZone("CET", 3600))
	e.UserAgent = strings.Repeat("é", 400) + "\xff"
	e.Details = map[string]any{"password": "hunter2"}
	n := e.Normalized()
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	if !n.Time.Equal(time.Date(2025, 3, 1, 12, 34, 56, 123456000, time.UTC)) {
		t.Errorf("time = %v", n.Time)
	}
	if len(n.UserAgent) > maxUserAgent || !strings.HasPrefix(n.UserAgent, "éé") {
		t.Errorf("user agent not shortened on a rune boundary: %d bytes", len(n.UserAgent))
	}
	if n.Details["password"] != Redacted || e.Details["password"] != "hunter2" {
		t.Error("details not sanitized, or the original was modified")
	}
}

func TestLeafHash_IsRFC6962Leaf(t *testing.T) {
	t.Parallel()
	// RFC 6962 leaf hash of the empty leaf: SHA-256(0x00).
	if got, want := LeafHash(nil), mustHash(t, rfc6962Nodes[0][0]); got != want {
		t.Fatalf("LeafHash(\"\") = %x", got[:])
	}
}
