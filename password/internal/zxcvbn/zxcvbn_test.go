package zxcvbn

import (
	"os"
	"testing"

	upstream "github.com/ccojocar/zxcvbn-go"
)

// loadedAtStart is Loaded() before any test ran: importing the package must not load the
// dictionaries (upstream did, in init, for every command of the binary).
var loadedAtStart bool

func TestMain(m *testing.M) {
	loadedAtStart = Loaded()
	os.Exit(m.Run())
}

func TestLoaded_NotAtInitOnlyOnFirstUse(t *testing.T) {
	if loadedAtStart {
		t.Fatal("the dictionaries were loaded before the first PasswordStrength")
	}
	PasswordStrength("correcthorsebatterystaple", nil)
	if !Loaded() {
		t.Fatal("Loaded() is false after PasswordStrength")
	}
}

// TestPasswordStrength_SameAsUpstream checks that the lazy copy scores exactly as the library it
// was copied from (github.com/ccojocar/zxcvbn-go v1.0.4): same score, entropy and matches.
func TestPasswordStrength_SameAsUpstream(t *testing.T) {
	inputs := []string{"tutela", "alice", "example", "acme", "hospital"}
	for _, pw := range []string{
		"zxcvbn", "Tr0ub4dour&3", "qwER43@!", "correcthorsebatterystaple",
		"coRrecth0rseba++ery9.23.2007staple$", "D0g..................", "abcdefghijk987654321",
		"neverforget13/3/1997", "1qaz2wsx3edc", "temppass22", "briansmith4mayor", "password1",
		"thx1138", "ScoRpi0ns", "do you know", "ryanhunter2000", "asdfghju7654rewq",
		"AOEUIDHG&*()LS_", "12345678", "defghi6789", "R0$38uD99", "verlineVANDERMARK",
		"eheuczkqyq", "rWibMFACxAUGZmxhVncy", "Ba9ZyWABu99[BK#6MBgbH88Tofv)vs$",
		"alice.hospital2024", "Tutela!Tutela!", "789456123+-", "zaq1ZAQ!xsw2",
		"grüße-aus-köln-2019", "11/09/1991secret", "Acme2025acme",
	} {
		for _, in := range [][]string{nil, inputs} {
			got, want := PasswordStrength(pw, in), upstream.PasswordStrength(pw, in)
			got.CalcTime, want.CalcTime = 0, 0
			if got.Score != want.Score || got.Entropy != want.Entropy || got.CrackTime != want.CrackTime {
				t.Errorf("%q (inputs %v): score %d entropy %v, upstream %d %v", pw, in != nil,
					got.Score, got.Entropy, want.Score, want.Entropy)
			}
			if len(got.MatchSequence) != len(want.MatchSequence) {
				t.Errorf("%q: %d matches, upstream %d", pw, len(got.MatchSequence), len(want.MatchSequence))
				continue
			}
			for i := range got.MatchSequence {
				g, w := got.MatchSequence[i], want.MatchSequence[i]
				// A spatial match on the keypad and the Mac keypad can tie (same entropy); which of
				// the two names is kept depends on sort order. The advice reads the name of
				// dictionary matches only.
				if g.Pattern != w.Pattern || g.Token != w.Token || g.I != w.I || g.J != w.J ||
					g.Entropy != w.Entropy || g.Pattern == "dictionary" && g.DictionaryName != w.DictionaryName {
					t.Errorf("%q match %d: %+v, upstream %+v", pw, i, g, w)
				}
			}
		}
	}
}

// FuzzPasswordStrength checks the estimator does not panic on any input.
func FuzzPasswordStrength(f *testing.F) {
	f.Add([]byte("password"))
	f.Fuzz(func(_ *testing.T, data []byte) {
		_ = PasswordStrength(string(data), nil)
	})
}
