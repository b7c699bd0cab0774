package syslog_test

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"tutela/syslog"
)

func TestAppend_RFC5424Layout(t *testing.T) {
	t.Parallel()
	m := syslog.Message{
		Facility: syslog.FacilityAuthPriv, Severity: syslog.SevWarning,
		Time:     time.Date(2026, 12, 7, 9, 30, 1, 123456789, time.FixedZone("X", 3600)),
		Hostname: "node-1", AppName: "tutela", ProcID: "42", MsgID: "alert",
		Data: []syslog.Element{{ID: "alert@32473", Params: []syslog.Param{{"rule", `a"b\c]d`}, {"count", "10"}}}},
		Msg:  "10 lockouts — tenant t1",
	}
	got, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	// PRI 10*8+4 = 84; time in UTC, six fraction digits; BOM before MSG (§6.4).
	want := "<84>1 2026-12-07T08:30:01.123456Z node-1 tutela 42 alert " +
		`[alert@32473 rule="a\"b\\c\]d" count="10"] ` + "\xef\xbb\xbf10 lockouts — tenant t1"
	if string(got) != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestAppend_NilValuesAndNoMsg(t *testing.T) {
	t.Parallel()
	got, err := (&syslog.Message{Facility: 0, Severity: 0}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<0>1 - - - - - -"; string(got) != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestAppend_RefusesWhatItCannotSendFaithfully(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 33)
	for name, m := range map[string]syslog.Message{
		"facility":          {Facility: 24},
		"severity":          {Severity: 8},
		"negative severity": {Severity: -1},
		"space in hostname": {Hostname: "a b"},
		"non-ascii app":     {AppName: "tütela"},
		"msgid too long":    {MsgID: long},
		"hostname nil":      {Hostname: "-"},
		"sd-id with =":      {Data: []syslog.Element{{ID: "a=b"}}},
		"sd-id with space":  {Data: []syslog.Element{{ID: "a b"}}},
		"sd-id empty":       {Data: []syslog.Element{{ID: ""}}},
		"sd-id too long":    {Data: []syslog.Element{{ID: long}}},
		"param name ]":      {Data: []syslog.Element{{ID: "x@1", Params: []syslog.Param{{"a]", "v"}}}}},
		"param value utf8":  {Data: []syslog.Element{{ID: "x@1", Params: []syslog.Param{{"a", "\xff"}}}}},
		"msg utf8":          {Msg: "ok\xc3"},
	} {
		if _, err := m.Append(nil); err == nil {
			t.Errorf("%s: formatted, want an error", name)
		}
	}
}

func TestParse_RoundTrip(t *testing.T) {
	t.Parallel()
	m := syslog.Message{
		Facility: syslog.FacilityAudit, Severity: syslog.SevNotice,
		Time:     time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		Hostname: "h", AppName: "tutela", ProcID: "1", MsgID: "m",
		Data: []syslog.Element{{ID: "a@1", Params: []syslog.Param{{"k", `\`}}}, {ID: "b@1"}},
		Msg:  "x ] \" \\ y",
	}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := syslog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v\nwant %+v", got, m)
	}
}

func TestParse_RejectsMalformed(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"",
		"<84>",
		"84>1 - - - - - -",
		"<192>1 - - - - - -",
		"<084>1 - - - - - -",
		"<84>2 - - - - - -",
		"<84>1 2026-12-07 - - - - -",
		"<84>1 2026-12-07T08:30:01.1234567Z h a p m -",
		"<84>1 - h a p m",
		"<84>1 - h a p m [x@1 k=\"v\"",
		"<84>1 - h a p m [x@1 k=\"v]\"]",
		"<84>1 - h a p m [x@1 k=v]",
		"<84>1 - h a p m [x@1 k=\"v\"]junk",
		"<84>1 - h a p m [] ",
		"<84>1 - h a p m - \xef\xbb\xbf\xff",
		"<84>1 - h\x00 a p m -",
	} {
		if m, err := syslog.Parse([]byte(s)); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", s, m)
		}
	}
}

// FuzzEscaping: whatever UTF-8 a caller puts in a PARAM-VALUE or MSG reaches a strict parser
// unchanged, and the escaped value never lets '"' or ']' end the element early.
func FuzzEscaping(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, `]`, `\]`, `a\"]b`, "é]\\\"", `\\\\"`, "\xef\xbb\xbf"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, value, msg string) {
		m := syslog.Message{Facility: 4, Severity: 2, Data: []syslog.Element{{ID: "x@1", Params: []syslog.Param{{"v", value}, {"w", "end"}}}}, Msg: msg}
		b, err := m.Append(nil)
		if !isUTF8(value) || !isUTF8(msg) {
			if err == nil {
				t.Fatalf("invalid UTF-8 accepted: %q", b)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := syslog.Parse(b)
		if err != nil {
			t.Fatalf("Parse(%q): %v", b, err)
		}
		if len(got.Data) != 1 || len(got.Data[0].Params) != 2 || got.Data[0].Params[0].Value != value || got.Data[0].Params[1].Value != "end" {
			t.Fatalf("value %q came back as %+v", value, got.Data)
		}
		if got.Msg != msg {
			t.Fatalf("msg %q came back as %q", msg, got.Msg)
		}
		esc := syslog.AppendEscaped(nil, value)
		for i := 0; i < len(esc); i++ {
			if esc[i] == '\\' {
				i++
				continue
			}
			if esc[i] == '"' || esc[i] == ']' {
				t.Fatalf("unescaped %q at %d in %q", esc[i], i, esc)
			}
		}
	})
}

// FuzzParse: the parser never panics, and whatever it accepts formats back to a message it
// parses the same way.
func FuzzParse(f *testing.F) {
	f.Add([]byte("<84>1 2026-12-07T08:30:01.123456Z h tutela 1 m [x@1 k=\"a\\\"b\"] \xef\xbb\xbfhi"))
	f.Add([]byte("<0>1 - - - - - -"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := syslog.Parse(b)
		if err != nil {
			return
		}
		if !isUTF8(m.Msg) {
			return // a MSG without BOM may be any octets; Append only sends UTF-8
		}
		out, err := m.Append(nil)
		if err != nil {
			return // e.g. an SD param value with invalid UTF-8 escapes is refused on the way out
		}
		again, err := syslog.Parse(out)
		if err != nil || !reflect.DeepEqual(normal(again), normal(m)) {
			t.Fatalf("%q -> %q -> %+v (%v)", b, out, again, err)
		}
	})
}

func normal(m syslog.Message) syslog.Message {
	if !m.Time.IsZero() {
		m.Time = m.Time.UTC().Truncate(time.Microsecond)
	}
	return m
}

func isUTF8(s string) bool { return utf8.ValidString(s) }

func TestReadFrame(t *testing.T) {
	t.Parallel()
	r := bufio.NewReader(bytes.NewReader(syslog.AppendFrame(syslog.AppendFrame(nil, []byte("<0>1 - - - - - -")), []byte("ab c"))))
	for _, want := range []string{"<0>1 - - - - - -", "ab c"} {
		got, err := syslog.ReadFrame(r, 0)
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	for _, bad := range []string{"0 ", "05 abcde", "x ", " 1 a", "3 ab", "100 " + strings.Repeat("a", 100), "12"} {
		if got, err := syslog.ReadFrame(bufio.NewReader(strings.NewReader(bad)), 64); err == nil {
			t.Errorf("ReadFrame(%q) = %q, want an error", bad, got)
		}
	}
	// A length claim over the limit is refused before reading (or allocating) the body.
	if _, err := syslog.ReadFrame(bufio.NewReader(strings.NewReader("99999999999999999999 ")), 0); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Fatalf("huge MSG-LEN: %v", err)
	}
}
