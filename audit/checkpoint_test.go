package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func testCheckpoint(t testing.TB) Checkpoint {
	return Checkpoint{
		Origin: testOrigin,
		Size:   20852163,
		Root:   mustHash(t, "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62"),
		Time:   time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func TestCheckpoint_BodyFormat(t *testing.T) {
	t.Parallel()
	c := testCheckpoint(t)
	want := "tutela.example/audit\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\ntime: 2025-03-01T12:00:00Z\n"
	if got := string(c.Body()); got != want {
		t.Fatalf("Body =\n%q\nwant\n%q", got, want)
	}
	c.Time = time.Time{}
	if got := string(c.Body()); got != "tutela.example/audit\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n" {
		t.Fatalf("Body without time = %q", got)
	}
}

func TestParseCheckpoint_RoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []Checkpoint{
		testCheckpoint(t),
		{Origin: "x", Size: 0, Root: EmptyTreeHash},
		{Origin: testOrigin, Size: 1<<63 - 1, Root: tlog.Hash{1}},
	} {
		got, err := ParseCheckpoint(c.Body())
		if err != nil {
			t.Fatalf("%q: %v", c.Body(), err)
		}
		if got != c {
			t.Fatalf("round trip = %+v, want %+v", got, c)
		}
	}
}

func TestParseCheckpoint_Strict(t *testing.T) {
	t.Parallel()
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	ok := testOrigin + "\n5\n" + root + "\n"
	if _, err := ParseCheckpoint([]byte(ok)); err != nil {
		t.Fatalf("valid body rejected: %v", err)
	}
	if c, err := ParseCheckpoint([]byte(ok + "unknown extension\n")); err != nil || c.Size != 5 {
		t.Fatalf("unknown extension line not ignored: %v", err)
	}
	bad := map[string]string{
		"empty":               "",
		"no final newline":    strings.TrimSuffix(ok, "\n"),
		"two lines":           testOrigin + "\n5\n",
		"empty origin":        "\n5\n" + root + "\n",
		"origin with space":   "tutela example\n5\n" + root + "\n",
		"origin with plus":    "tutela+x\n5\n" + root + "\n",
		"leading zero":        testOrigin + "\n05\n" + root + "\n",
		"plus sign":           testOrigin + "\n+5\n" + root + "\n",
		"negative size":       testOrigin + "\n-5\n" + root + "\n",
		"size overflow":       testOrigin + "\n9223372036854775808\n" + root + "\n",
		"hex size":            testOrigin + "\n0x5\n" + root + "\n",
		"space in size":       testOrigin + "\n 5\n" + root + "\n",
		"short root":          testOrigin + "\n5\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n",
		"long root":           testOrigin + "\n5\n" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "\n",
		"unpadded root":       testOrigin + "\n5\n" + strings.TrimRight(root, "=") + "\n",
		"url-safe root":       testOrigin + "\n5\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)) + "\n",
		"non-canonical root":  testOrigin + "\n5\n" + root[:42] + "B=\n",
		"empty extension":     ok + "\n",
		"bad time":            ok + "time: yesterday\n",
		"non-UTC time":        ok + "time: 2025-03-01T13:00:00+01:00\n",
		"fractional time":     ok + "time: 2025-03-01T12:00:00.5Z\n",
		"two times":           ok + "time: 2025-03-01T12:00:00Z\ntime: 2025-03-01T12:00:01Z\n",
		"CRLF":                strings.ReplaceAll(ok, "\n", "\r\n"),
		"oversized":           ok + strings.Repeat("x", MaxSignedCheckpointSize) + "\n",
		"trailing blank line": ok + "\n",
	}
	for name, body := range bad {
		if _, err := ParseCheckpoint([]byte(body)); !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("%s: err = %v, want ErrMalformedCheckpoint", name, err)
		}
	}
}

func TestOpenCheckpoint_VerifiesSignatureAndOrigin(t *testing.T) {
	t.Parallel()
	_, vkey, s := newTestKeys(t)
	c := testCheckpoint(t)
	signed, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(signed, append(c.Body(), "\n— "+testOrigin+" "...)) {
		t.Fatalf("not a C2SP signed note:\n%s", signed)
	}
	got, err := OpenCheckpoint(signed, vkey, testOrigin)
	if err != nil || got != c {
		t.Fatalf("OpenCheckpoint = %+v, %v", got, err)
	}

	// Another key with the same name: an attacker's forgery.
	_, _, other := newTestKeys(t)
	forged, err := other.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(forged, vkey, testOrigin); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged: %v, want ErrBadSignature", err)
	}

	// The real signature on an altered body (bigger tree, same signature).
	altered := bytes.Replace(signed, []byte("\n20852163\n"), []byte("\n20852164\n"), 1)
	if _, err := OpenCheckpoint(altered, vkey, testOrigin); !errors.Is(err, ErrBadSignature) {
		t.Errorf("altered body: %v, want ErrBadSignature", err)
	}

	// A flipped bit in the signature itself.
	sigAt := bytes.LastIndexByte(signed[:len(signed)-1], ' ') + 10
	flipped := bytes.Clone(signed)
	flipped[sigAt] ^= 1
	if _, err := OpenCheckpoint(flipped, vkey, testOrigin); err == nil {
		t.Error("flipped signature accepted")
	}

	// The real key, but a checkpoint of another log.
	c2 := c
	c2.Origin = "other.example/audit"
	foreign, err := s.Sign(c2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(foreign, vkey, testOrigin); !errors.Is(err, ErrWrongOrigin) {
		t.Errorf("wrong origin: %v, want ErrWrongOrigin", err)
	}

	// A body that is not a checkpoint, validly signed.
	if _, err := OpenCheckpoint(signed[:len(c.Body())], vkey, testOrigin); !errors.Is(err, ErrMalformedCheckpoint) {
		t.Errorf("unsigned body: %v, want ErrMalformedCheckpoint", err)
	}
	if _, err := OpenCheckpoint(signed, "not a key", testOrigin); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("bad vkey: %v, want ErrInvalidKey", err)
	}
}

func TestSigner_NeverShowsTheKey(t *testing.T) {
	t.Parallel()
	skey, _, s := newTestKeys(t)
	secret := strings.SplitN(skey, "+", 5)[4]
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("signer", "signer", s, "value", *s)
	outputs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %d", s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v %d", *s, *s, *s, *s),
		fmt.Sprintf("%+v", struct{ S *Signer }{s}),
		logs.String(),
	}
	for _, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, "PRIVATE") {
			t.Fatalf("key leaked: %s", out)
		}
	}
	if s.String() != Redacted {
		t.Fatalf("String() = %q", s.String())
	}
	if _, err := NewSigner(skey[:len(skey)-2] + "AA"); err == nil || strings.Contains(err.Error(), secret[:8]) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := NewSigner("PRIVATE+KEY+x+00000000+" + secret); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("mismatched key: %v", err)
	}
	var zero Signer
	if _, err := zero.Sign(testCheckpoint(t)); err == nil {
		t.Fatal("zero Signer signed")
	}
}

func TestSigner_RejectsInvalidCheckpoints(t *testing.T) {
	t.Parallel()
	_, _, s := newTestKeys(t)
	for _, c := range []Checkpoint{
		{Origin: "", Size: 1},
		{Origin: "a\nb", Size: 1},
		{Origin: "a b", Size: 1},
		{Origin: testOrigin, Size: -1},
		{Origin: testOrigin, Size: 1, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := s.Sign(c); !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("Sign(%+v) = %v, want ErrMalformedCheckpoint", c, err)
		}
	}
	if _, _, err := GenerateKey("bad name"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("GenerateKey with space: %v", err)
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	c := Checkpoint{Origin: testOrigin, Size: 42, Root: tlog.Hash{7}, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.Add(c.Body())
	f.Add([]byte("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"))
	f.Add([]byte("o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n"))
	f.Add([]byte("o\n01\nAAAA\n"))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseCheckpoint(body)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to something that parses to the same checkpoint, and
		// the mandatory lines must be spelled exactly as they were.
		again, err := ParseCheckpoint(c.Body())
		if err != nil || again != c {
			t.Fatalf("re-parse of %q: %+v, %v", c.Body(), again, err)
		}
		lines := bytes.SplitN(body, []byte("\n"), 4)
		if !bytes.Equal(bytes.Join(lines[:3], []byte("\n")), bytes.Join(bytes.SplitN(c.Body(), []byte("\n"), 4)[:3], []byte("\n"))) {
			t.Fatalf("mandatory lines not canonical: %q vs %q", body, c.Body())
		}
	})
}
