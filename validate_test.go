package tutela_test

import (
	"strings"
	"testing"

	"tutela"
)

func TestValidEmail(t *testing.T) {
	t.Parallel()
	local64 := strings.Repeat("a", 64)
	label63 := strings.Repeat("d", 63)
	// 64 + 1 + 189 = 254 bytes: the longest address RFC 5321 allows.
	longest := local64 + "@" + strings.Repeat(label63+".", 2) + strings.Repeat("e", 57) + ".org"
	if len(longest) != 254 {
		t.Fatalf("test address is %d bytes", len(longest))
	}
	for _, s := range []string{
		"admin@example.org", "Ana.Lopez@Example.org", "Jean-Luc.Picard+work@mail.starfleet.org",
		"=1+2@example.org", "o'brien@example.ie", "x_y{z}|~!#$%&*/?^`@example.org",
		"root@localhost", "a@b.c", "user@xn--bcher-kva.example", "u@123.example", "u@3com.com",
		local64 + "@example.org", "a@" + label63 + ".org", longest,
	} {
		if !tutela.ValidEmail(s) {
			t.Errorf("ValidEmail(%q) = false, want true", s)
		}
	}
	for _, s := range []string{
		"", "admin", "@example.org", "admin@", "a@b@example.org",
		"ad\u200bmin@example.org",                                // zero-width space
		"\u0430dmin@example.org",                                 // Cyrillic а
		"admin@ex\u0430mple.org",                                 // Cyrillic а in the domain
		"admin@b\u00fccher.example",                              // IDN in Unicode form
		"x@[127.0.0.1]", "x@[IPv6:::1]", "x@127.0.0.1", "x@10.1", // IP literals and dotted quads
		`"a b"@example.org`, `"x> NOTIFY=SUCCESS"@example.org`, // quoted local parts
		"Ana <ana@example.org>", " ana@example.org", "ana@example.org ", "ana@example.org\n",
		"a\x00@example.org", "a\r\nBcc:eve@example.org", "a\x1b[31m@example.org",
		".a@example.org", "a.@example.org", "a..b@example.org",
		"a@-example.org", "a@example-.org", "a@example..org", "a@.example.org", "a@example.org.",
		"a@exa_mple.org", "a(comment)@example.org", "a@example.org(comment)",
		local64 + "a@example.org",       // local part of 65
		"a@" + label63 + "d.org",        // label of 64
		"a" + longest,                   // 255 in all
		"a@b.c\xff", "\xff@example.org", // invalid UTF-8
	} {
		if tutela.ValidEmail(s) {
			t.Errorf("ValidEmail(%q) = true, want false", s)
		}
	}
}

func TestValidText(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "Ana López", "Zoë O'Brien-Smith", "José María Núñez", "Nguyễn Thị Minh Khai",
		"محمد عبد الله", "Оксана Коваленко", "王秀英", "김민준", "Αλέξανδρος", "שרה לוי",
		"अनुष्का शर्मा", "Ана (UNHCR) — Amman, field office #2", "Tenant: Ärzte ohne Grenzen e.V.",
		"e\u0301", // decomposed accent: a combining mark (Mn), not a format character
		"😀",
		"مهر\u200cانگیز", // Persian: the non-joiner belongs to the spelling of the name
		"क्\u200dष",      // Devanagari with a joiner between letters

	} {
		if !tutela.ValidText(s) {
			t.Errorf("ValidText(%q) = false, want true", s)
		}
	}
	for _, s := range []string{
		"a\x00b", "line\nbreak", "carriage\rreturn", "tab\there", "\x1b[31mred\x1b[0m", "del\x7f",
		"\u0085next line",                                                     // C1 control
		"admin\u202egnp.exe", "\u2066isolate\u2069", "\u200fRLM", "\u061cALM", // bidi
		"zero\u200bwidth", "zero\u200cnon", "\u200cleading", "trailing\u200d", "a \u200c b", "a\u200c\u200cb", "word\u2060joiner", "\ufeffBOM",
		"soft\u00adhyphen", "line\u2028separator", "para\u2029separator",
		"bad\xffutf8", "\xc0\xaf",
	} {
		if tutela.ValidText(s) {
			t.Errorf("ValidText(%q) = true, want false", s)
		}
	}
}
