package blob

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"slices"
	"sync"
	"testing"
)

var testAAD = []byte("tenant 7f3c/file 91ab")

func testDEK(t testing.TB) []byte {
	t.Helper()
	dek, err := NewDEK()
	if err != nil {
		t.Fatal(err)
	}
	return dek
}

func encrypt(t testing.TB, dek, aad, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Encrypt(&buf, dek, aad)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes, so segment boundaries fall inside writes.
	for rest := plain; len(rest) > 0; {
		n := min(len(rest), 65_537)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(t testing.TB, dek, aad, ct []byte) ([]byte, error) {
	t.Helper()
	r, err := Decrypt(bytes.NewReader(ct), dek, aad)
	if err != nil {
		t.Fatal(err)
	}
	return io.ReadAll(r)
}

func TestCrypt_RoundTrip(t *testing.T) {
	dek := testDEK(t)
	for _, n := range []int{0, 1, firstPlainSegment - 1, firstPlainSegment, firstPlainSegment + 1,
		firstPlainSegment + plainSegment - 1, firstPlainSegment + plainSegment, firstPlainSegment + plainSegment + 1,
		segmentSize - 1, segmentSize, segmentSize + 1, 5<<20 + 12345} {
		plain := testData(n, byte(n))
		ct := encrypt(t, dek, testAAD, plain)
		if int64(len(ct)) != CiphertextSize(int64(n)) || int64(len(ct)-n) != Overhead(int64(n)) {
			t.Fatalf("size %d: ciphertext %d bytes, CiphertextSize says %d", n, len(ct), CiphertextSize(int64(n)))
		}
		if n > 16 && bytes.Contains(ct, plain[:16]) {
			t.Fatalf("size %d: plaintext visible in the ciphertext", n)
		}
		got, err := decrypt(t, dek, testAAD, ct)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: decrypted %d bytes, err %v", n, len(got), err)
		}
	}
}

// A fresh salt per ciphertext: the same file encrypted twice is two different blobs.
func TestCrypt_SamePlaintextDifferentCiphertext(t *testing.T) {
	dek := testDEK(t)
	plain := []byte("same bytes")
	if bytes.Equal(encrypt(t, dek, testAAD, plain), encrypt(t, dek, testAAD, plain)) {
		t.Fatal("two encryptions of the same plaintext are equal")
	}
}

func TestCrypt_DEK(t *testing.T) {
	a, b := testDEK(t), testDEK(t)
	if len(a) != DEKSize || bytes.Equal(a, b) {
		t.Fatalf("NewDEK: %d bytes, equal twice: %v", len(a), bytes.Equal(a, b))
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := Encrypt(io.Discard, make([]byte, n), nil); err == nil {
			t.Fatalf("Encrypt accepted a %d-byte key", n)
		}
		if _, err := Decrypt(bytes.NewReader(nil), make([]byte, n), nil); err == nil {
			t.Fatalf("Decrypt accepted a %d-byte key", n)
		}
	}
}

// mustFail reads ct to the end and requires ErrDecrypt, on that read and on a later one:
// whatever was returned before the failure must be a prefix of the plaintext, and the reader
// must never report a clean end.
func mustFail(t *testing.T, name string, dek, aad, ct, plain []byte) {
	t.Helper()
	r, err := Decrypt(bytes.NewReader(ct), dek, aad)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("%s: read error %v, want ErrDecrypt", name, err)
	}
	if !bytes.HasPrefix(plain, got) {
		t.Fatalf("%s: returned %d bytes that are not the plaintext's", name, len(got))
	}
	if len(got) == len(plain) && len(plain) > 0 {
		t.Fatalf("%s: returned the whole plaintext before failing", name)
	}
	if n, err := r.Read(make([]byte, 100)); n != 0 || !errors.Is(err, ErrDecrypt) {
		t.Fatalf("%s: read after failure = %d, %v; want ErrDecrypt again", name, n, err)
	}
}

func TestCrypt_WrongKeyOrContext(t *testing.T) {
	dek := testDEK(t)
	plain := testData(3<<20, 1)
	ct := encrypt(t, dek, testAAD, plain)
	mustFail(t, "wrong key", testDEK(t), testAAD, ct, plain)
	mustFail(t, "wrong aad", dek, []byte("tenant 7f3c/file 91ac"), ct, plain)
	mustFail(t, "no aad", dek, nil, ct, plain)
	// Bound both ways: a blob written without context does not open under one.
	empty := encrypt(t, dek, nil, plain)
	mustFail(t, "aad added", dek, testAAD, empty, plain)
}

// Tampering with the layout: header, each segment, truncation, extension, reordering.
func TestCrypt_TamperingIsAnError(t *testing.T) {
	dek := testDEK(t)
	// Four segments: the first, two full ones, and a short last one.
	plain := testData(firstPlainSegment+2*plainSegment+1000, 2)
	ct := encrypt(t, dek, testAAD, plain)
	seg := func(i int) (int, int) { // segment i's byte range in ct
		if i == 0 {
			return headerSize, segmentSize
		}
		return i * segmentSize, min((i+1)*segmentSize, len(ct))
	}
	if s, e := seg(3); e-s != 1000+tagSize {
		t.Fatalf("layout: last segment %d bytes, want %d", e-s, 1000+tagSize)
	}
	flip := func(pos int) []byte {
		c := slices.Clone(ct)
		c[pos] ^= 0x01
		return c
	}
	cases := map[string][]byte{
		"header length byte": flip(0),
		"salt":               flip(1),
		"nonce prefix":       flip(headerSize - 1),
		"empty":              {},
		"header only":        ct[:headerSize],
		"header cut short":   ct[:headerSize-1],
		"last byte cut":      ct[:len(ct)-1],
		"last tag cut":       ct[:len(ct)-tagSize],
		"last segment gone":  ct[:3*segmentSize], // ends on a segment boundary
		"two segments gone":  ct[:2*segmentSize],
		"one byte appended":  append(slices.Clone(ct), 0),
		"tag appended":       append(slices.Clone(ct), ct[len(ct)-tagSize:]...),
		"segment appended":   append(slices.Clone(ct), ct[segmentSize:2*segmentSize]...),
		"last segment twice": append(slices.Clone(ct), ct[3*segmentSize:]...),
	}
	for i := range 4 {
		s, e := seg(i)
		cases["bit in segment "+string(rune('0'+i))+" start"] = flip(s)
		cases["bit in segment "+string(rune('0'+i))+" middle"] = flip((s + e) / 2)
		cases["bit in segment "+string(rune('0'+i))+" tag"] = flip(e - 1)
	}
	swapped := slices.Clone(ct)
	copy(swapped[segmentSize:2*segmentSize], ct[2*segmentSize:3*segmentSize])
	copy(swapped[2*segmentSize:3*segmentSize], ct[segmentSize:2*segmentSize])
	cases["segments 1 and 2 swapped"] = swapped
	dropped := append(slices.Clone(ct[:segmentSize]), ct[2*segmentSize:]...)
	cases["segment 1 dropped"] = dropped
	// A segment from another ciphertext under the same key and context.
	other := encrypt(t, dek, testAAD, plain)
	spliced := slices.Clone(ct)
	copy(spliced[segmentSize:2*segmentSize], other[segmentSize:2*segmentSize])
	cases["segment from another file"] = spliced

	for name, c := range cases {
		mustFail(t, name, dek, testAAD, c, plain)
	}
	// The untouched ciphertext still opens: the failures above are the tampering's.
	if got, err := decrypt(t, dek, testAAD, ct); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("untouched ciphertext: %v", err)
	}
}

// failingReader returns its data, then err instead of EOF.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// The source's own failure (a blob that fails its content address, a broken connection)
// reaches the caller as itself, not as a decryption error, wherever it happens.
func TestCrypt_SourceErrorPassesThrough(t *testing.T) {
	dek := testDEK(t)
	plain := testData(firstPlainSegment+500, 3)
	ct := encrypt(t, dek, testAAD, plain)
	for _, cut := range []int{0, 10, headerSize, segmentSize, len(ct)} {
		r, err := Decrypt(&failingReader{r: bytes.NewReader(ct[:cut]), err: ErrCorrupt}, dek, testAAD)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(r)
		if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrDecrypt) {
			t.Fatalf("cut at %d: error %v, want ErrCorrupt only", cut, err)
		}
	}
}

// A short write to the destination poisons the encrypting writer: the stream it would go on
// producing no longer matches what was written.
func TestCrypt_WriteErrorIsSticky(t *testing.T) {
	sink := &failAfter{n: segmentSize + 10}
	w, err := Encrypt(sink, testDEK(t), testAAD)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(testData(3<<20, 4)); err == nil {
		t.Fatal("Write past a failing destination succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after a failure succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a failure succeeded")
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestCrypt_OverheadIsDefinedForAnySize(t *testing.T) {
	if Overhead(-1) != Overhead(0) || CiphertextSize(-5) != CiphertextSize(0) {
		t.Fatal("negative sizes are not treated as empty")
	}
	if got := CiphertextSize(0); got != headerSize+tagSize {
		t.Fatalf("CiphertextSize(0) = %d, want %d", got, headerSize+tagSize)
	}
	// 1 GB: one tag per segment plus the header, a few KiB in all.
	if got := Overhead(1 << 30); got != headerSize+1025*tagSize {
		t.Fatalf("Overhead(1 GiB) = %d", got)
	}
}

// heapSampler records the peak HeapInuse seen at each call; the destination of an encryption
// calls it once per segment, so the peak is taken while the stream is in flight.
type heapSampler struct {
	mu   sync.Mutex // the encrypting and the decrypting goroutine both sample
	peak uint64
	ms   runtime.MemStats
}

func (h *heapSampler) sample() {
	h.mu.Lock()
	defer h.mu.Unlock()
	runtime.ReadMemStats(&h.ms)
	h.peak = max(h.peak, h.ms.HeapInuse)
}

// sampledSink hashes what it is given and samples the heap on each write.
type sampledSink struct {
	w io.Writer
	s *heapSampler
}

func (w sampledSink) Write(p []byte) (int, error) {
	w.s.sample()
	return w.w.Write(p)
}

// patternReader produces n bytes of a repeating pattern without holding them.
type patternReader struct{ n int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n)]
	for i := range b {
		b[i] = byte(p.n - int64(i))
	}
	p.n -= int64(len(b))
	return len(b), nil
}

const streamSize = 256 << 20

// heapGrowth runs fn with a sampler and returns how far HeapInuse rose above its level after
// a collection beforehand.
func heapGrowth(fn func(s *heapSampler)) int64 {
	s := &heapSampler{}
	runtime.GC()
	s.sample()
	base := s.ms.HeapInuse
	s.peak = 0
	fn(s)
	return int64(s.peak) - int64(base)
}

// 256 MiB go through Encrypt holding two segments: the file is never in memory. The bound is
// generous (8 MiB against about 3 MiB used); holding the file would take 256 MiB.
func TestCrypt_Encrypt256MiBInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB of encryption")
	}
	dek := testDEK(t)
	growth := heapGrowth(func(s *heapSampler) {
		w, err := Encrypt(sampledSink{w: sha256.New(), s: s}, dek, testAAD)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(w, &patternReader{n: streamSize}); err != nil || n != streamSize {
			t.Fatalf("encrypted %d bytes, %v", n, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("peak heap growth encrypting %d MiB: %.1f MiB", streamSize>>20, float64(growth)/(1<<20))
	if growth > 8<<20 {
		t.Fatalf("peak heap grew by %.1f MiB, want < 8 MiB", float64(growth)/(1<<20))
	}
}

// Encrypt piped into Decrypt: 256 MiB round trip, intact, holding a few segments on each
// side (about 6 MiB measured; bound 16 MiB).
func TestCrypt_RoundTrip256MiBInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB of encryption")
	}
	dek := testDEK(t)
	got := sha256.New()
	growth := heapGrowth(func(s *heapSampler) {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			w, err := Encrypt(sampledSink{w: pw, s: s}, dek, testAAD)
			if err == nil {
				_, err = io.Copy(w, &patternReader{n: streamSize})
			}
			if err == nil {
				err = w.Close()
			}
			pw.CloseWithError(err)
			done <- err
		}()
		r, err := Decrypt(pr, dek, testAAD)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(sampledSink{w: got, s: s}, r)
		if err != nil || n != streamSize {
			t.Fatalf("decrypted %d bytes, %v", n, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	want := sha256.New()
	if _, err := io.Copy(want, &patternReader{n: streamSize}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("decrypted stream differs from the plaintext")
	}
	t.Logf("peak heap growth in the round trip: %.1f MiB", float64(growth)/(1<<20))
	if growth > 16<<20 {
		t.Fatalf("peak heap grew by %.1f MiB, want < 16 MiB", float64(growth)/(1<<20))
	}
}
