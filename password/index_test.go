package password

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeIndex imports input into a file in a temporary directory and returns its path.
func writeIndex(t *testing.T, input string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	n, err := ImportIndex(strings.NewReader(input), &out)
	if err != nil {
		t.Fatalf("ImportIndex: %v", err)
	}
	path := filepath.Join(t.TempDir(), "breached.idx")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, n
}

func openIndex(t *testing.T, path string) *Index {
	t.Helper()
	ix, err := OpenIndex(path)
	if err != nil {
		t.Fatalf("OpenIndex: %v", err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func TestIndex_ImportThenLookup(t *testing.T) {
	t.Parallel()
	breached := []string{"password", "123456", "qwerty", "letmein!", "ｐａｓｓ"}
	var in strings.Builder
	// Unsorted, mixed case, with counts and without, duplicates, blank lines and CRLF.
	for i := len(breached) - 1; i >= 0; i-- {
		d := sha1Hex(breached[i])
		if i%2 == 0 {
			d = strings.ToLower(d)
		}
		in.WriteString(d + ":" + "12\r\n\r\n")
		in.WriteString(sha1Hex(breached[i]) + "\n")
	}
	in.WriteString("  \n" + sha1Hex("padding only") + ":0\n")

	path, n := writeIndex(t, in.String())
	if n != len(breached) {
		t.Errorf("ImportIndex wrote %d hashes, want %d distinct", n, len(breached))
	}
	ix := openIndex(t, path)
	if ix.Len() != int64(len(breached)) {
		t.Errorf("Len = %d", ix.Len())
	}
	for _, pw := range breached {
		if hit, err := ix.Breached(context.Background(), pw); !hit || err != nil {
			t.Errorf("Breached(%q) = %v, %v; want true", pw, hit, err)
		}
	}
	// "pass" is only in the index in its full-width form; the typed form is checked too.
	for _, pw := range []string{"password1", "Password", "", "padding only", "pass"} {
		if hit, err := ix.Breached(context.Background(), pw); hit || err != nil {
			t.Errorf("Breached(%q) = %v, %v; want false", pw, hit, err)
		}
	}
	if hit, _ := ix.Breached(context.Background(), "ｑｗｅｒｔｙ"); !hit {
		t.Error("full-width spelling of a breached password not found")
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:8]) != "TUTELABR" || binary.BigEndian.Uint32(data[8:]) != 1 || binary.BigEndian.Uint64(data[12:]) != uint64(n) {
		t.Errorf("header % x", data[:indexHeaderLen])
	}
	recs := data[indexHeaderLen:]
	for i := indexRecordLen; i < len(recs); i += indexRecordLen {
		if bytes.Compare(recs[i-indexRecordLen:i], recs[i:i+indexRecordLen]) >= 0 {
			t.Fatalf("records %d and %d out of order", i/indexRecordLen-1, i/indexRecordLen)
		}
	}
}

func TestIndex_EveryRecordIsFound(t *testing.T) {
	t.Parallel()
	var in strings.Builder
	pws := make([]string, 1000)
	for i := range pws {
		pws[i] = strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("9", i/26)
		in.WriteString(sha1Hex(pws[i]) + "\n")
	}
	path, _ := writeIndex(t, in.String())
	ix := openIndex(t, path)
	for _, pw := range pws {
		if hit, err := ix.Breached(context.Background(), pw); !hit || err != nil {
			t.Fatalf("Breached(%q) = %v, %v", pw, hit, err)
		}
	}
}

func TestIndex_Empty(t *testing.T) {
	t.Parallel()
	path, n := writeIndex(t, "\n\n")
	if n != 0 {
		t.Errorf("n = %d", n)
	}
	if hit, err := openIndex(t, path).Breached(context.Background(), "password"); hit || err != nil {
		t.Errorf("Breached on empty index = %v, %v", hit, err)
	}
}

func TestImportIndex_ReportsMalformedLine(t *testing.T) {
	t.Parallel()
	good := sha1Hex("good")
	tests := map[string]string{
		"short hash":     good[:39],
		"long hash":      good + "0",
		"not hex":        "G" + good[1:],
		"bad count":      good + ":lots",
		"negative count": good + ":-1",
		"empty count":    good + ":",
		"two colons":     good + ":1:2",
		"line too long":  strings.Repeat("A", 5000),
	}
	for name, bad := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := good + "\n\n" + bad + "\n" + good + "\n"
			var out bytes.Buffer
			_, err := ImportIndex(strings.NewReader(in), &out)
			if err == nil || !strings.Contains(err.Error(), "line 3:") {
				t.Fatalf("err = %v, want it to name line 3", err)
			}
			if out.Len() != 0 {
				t.Error("wrote output despite the error")
			}
		})
	}
}

func TestOpenIndex_RejectsCorruptFiles(t *testing.T) {
	t.Parallel()
	var in strings.Builder
	for _, pw := range []string{"a", "b", "c"} {
		in.WriteString(sha1Hex(pw) + "\n")
	}
	var buf bytes.Buffer
	if _, err := ImportIndex(strings.NewReader(in.String()), &buf); err != nil {
		t.Fatal(err)
	}
	valid := buf.Bytes()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	tests := map[string][]byte{
		"empty":                {},
		"header only part":     valid[:10],
		"truncated record":     valid[:len(valid)-1],
		"missing record":       valid[:len(valid)-indexRecordLen],
		"trailing byte":        append(bytes.Clone(valid), 0),
		"bad magic":            mod(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version 2":            mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 2); return b }),
		"count too large":      mod(func(b []byte) []byte { binary.BigEndian.PutUint64(b[12:], 4); return b }),
		"count overflows size": mod(func(b []byte) []byte { binary.BigEndian.PutUint64(b[12:], 1<<63); return b }),
		"count wraps to size":  mod(func(b []byte) []byte { binary.BigEndian.PutUint64(b[12:], 3+(1<<64-1)/indexRecordLen+1); return b }),
		"text file, not index": []byte(in.String()),
		"count zero with body": mod(func(b []byte) []byte { binary.BigEndian.PutUint64(b[12:], 0); return b }),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "idx")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			ix, err := OpenIndex(path)
			if !errors.Is(err, ErrCorruptIndex) {
				if ix != nil {
					ix.Close()
				}
				t.Fatalf("OpenIndex err = %v, want ErrCorruptIndex", err)
			}
		})
	}
	if _, err := OpenIndex(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, ErrCorruptIndex) {
		t.Errorf("missing file: err = %v, want a not-found error", err)
	}
}

func TestIndex_ClosedRejectsLookups(t *testing.T) {
	t.Parallel()
	path, _ := writeIndex(t, sha1Hex("x")+"\n")
	ix, err := OpenIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := ix.Breached(context.Background(), "x"); err == nil {
		t.Error("lookup after Close succeeded")
	}
}

func BenchmarkIndexBreached(b *testing.B) {
	var in strings.Builder
	for i := range 100000 {
		in.WriteString(sha1Hex(string(rune(i))+"pw") + "\n")
	}
	var out bytes.Buffer
	if _, err := ImportIndex(strings.NewReader(in.String()), &out); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "idx")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	ix, err := OpenIndex(path)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ix.Breached(context.Background(), "not in the index"); err != nil {
			b.Fatal(err)
		}
	}
}
