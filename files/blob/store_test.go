package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// testData returns n deterministic pseudo-random bytes; seed tells blobs apart.
func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = seed
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// put stores data through a Writer, in uneven writes so buffering boundaries are crossed.
func put(t testing.TB, s Store, data []byte) (string, int64) {
	t.Helper()
	ctx := context.Background()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 100_003)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		rest = rest[n:]
	}
	key, size, err := w.Commit(ctx)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return key, size
}

func get(t testing.TB, s Store, key string) ([]byte, error) {
	t.Helper()
	r, err := s.Open(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func objects(t testing.TB, s Store) []string {
	t.Helper()
	objs, err := s.Objects(context.Background())
	if err != nil {
		t.Fatalf("Objects: %v", err)
	}
	return objs
}

func mustBeEmpty(t testing.TB, s Store) {
	t.Helper()
	if objs := objects(t, s); len(objs) != 0 {
		t.Fatalf("store holds %q, want nothing", objs)
	}
}

func mustDelete(t testing.TB, s Store, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := s.Delete(context.Background(), k); err != nil {
			t.Fatalf("Delete(%s): %v", k, err)
		}
	}
}

// testStore is the conformance suite every Store passes. overwrite replaces the stored bytes
// of a committed blob behind the store's back (an attacker or a failing disk at rest). The
// subtests share s and run in order; each leaves the store empty, and checks it did.
func testStore(t *testing.T, s Store, overwrite func(t *testing.T, key string, data []byte)) {
	ctx := context.Background()
	mustBeEmpty(t, s)

	t.Run("RoundTrip", func(t *testing.T) {
		for _, n := range []int{0, 1, segmentSize - 1, segmentSize, segmentSize + 1,
			DefaultPartSize - 1, DefaultPartSize, DefaultPartSize + 1, 20 << 20} {
			data := testData(n, byte(n))
			key, size := put(t, s, data)
			if key != hexSHA256(data) || size != int64(n) {
				t.Fatalf("size %d: Commit = %s, %d; want %s, %d", n, key, size, hexSHA256(data), n)
			}
			if objs := objects(t, s); len(objs) != 1 || !strings.HasSuffix(objs[0], key) {
				t.Fatalf("size %d: store holds %q, want only the blob", n, objs)
			}
			got, err := get(t, s, key)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d: read back %d bytes, err %v", n, len(got), err)
			}
			mustDelete(t, s, key)
			mustBeEmpty(t, s)
		}
	})

	t.Run("EncryptedRoundTrip", func(t *testing.T) {
		dek, err := NewDEK()
		if err != nil {
			t.Fatal(err)
		}
		aad := []byte("tenant-1/file-1")
		for _, n := range []int{0, firstPlainSegment + 1, 3 << 20} {
			plain := testData(n, 7)
			w, err := s.Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ew, err := Encrypt(w, dek, aad)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ew.Write(plain); err != nil {
				t.Fatal(err)
			}
			if err := ew.Close(); err != nil {
				t.Fatal(err)
			}
			key, size, err := w.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if size != CiphertextSize(int64(n)) {
				t.Fatalf("size %d: stored %d bytes, want %d", n, size, CiphertextSize(int64(n)))
			}
			r, err := s.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			pr, err := Decrypt(r, dek, aad)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(pr)
			r.Close()
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("size %d: decrypted %d bytes, err %v", n, len(got), err)
			}
			mustDelete(t, s, key)
		}
		mustBeEmpty(t, s)
	})

	t.Run("AbortLeavesNothing", func(t *testing.T) {
		for _, n := range []int{0, 1000, 20 << 20} {
			w, err := s.Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(testData(n, 1)); err != nil {
				t.Fatal(err)
			}
			// A large upload is visible while it runs (temporary file, multipart upload),
			// so the emptiness below shows Abort removed it, not that Objects cannot see it.
			if n > DefaultPartSize && len(objects(t, s)) == 0 {
				t.Fatalf("size %d: unfinished upload not listed by Objects", n)
			}
			if err := w.Abort(); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			if err := w.Abort(); err != nil {
				t.Fatalf("second Abort: %v", err)
			}
			mustBeEmpty(t, s)
			if _, err := w.Write([]byte("x")); err == nil {
				t.Fatal("Write after Abort succeeded")
			}
			if _, _, err := w.Commit(ctx); err == nil {
				t.Fatal("Commit after Abort succeeded")
			}
			mustBeEmpty(t, s)
		}
	})

	t.Run("AbortAfterCommitKeepsBlob", func(t *testing.T) {
		data := testData(5000, 2)
		w, err := s.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		key, _, err := w.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("Abort after Commit: %v", err)
		}
		if _, _, err := w.Commit(ctx); err == nil {
			t.Fatal("second Commit succeeded")
		}
		if got, err := get(t, s, key); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("blob after Abort: %d bytes, %v", len(got), err)
		}
		mustDelete(t, s, key)
		mustBeEmpty(t, s)
	})

	t.Run("CommitCancelledLeavesNothing", func(t *testing.T) {
		for _, n := range []int{10, DefaultPartSize + 10} {
			w, err := s.Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(testData(n, 3)); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := w.Commit(cctx); err == nil {
				t.Fatalf("size %d: Commit under a cancelled context succeeded", n)
			}
			mustBeEmpty(t, s)
		}
	})

	t.Run("SameBytesTwice", func(t *testing.T) {
		for _, n := range []int{100, DefaultPartSize + 100} {
			data := testData(n, 4)
			k1, _ := put(t, s, data)
			k2, _ := put(t, s, data)
			if k1 != k2 {
				t.Fatalf("same bytes, keys %s and %s", k1, k2)
			}
			if objs := objects(t, s); len(objs) != 1 {
				t.Fatalf("store holds %q, want one blob", objs)
			}
			if got, err := get(t, s, k1); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, %v", len(got), err)
			}
			mustDelete(t, s, k1)
			mustBeEmpty(t, s)
		}
	})

	t.Run("TamperedBlobIsCorrupt", func(t *testing.T) {
		data := testData(segmentSize+3, 5)
		other := testData(200, 6)
		flipped := slices.Clone(data)
		flipped[len(flipped)/2] ^= 0x01
		cases := map[string][]byte{
			"flipped bit":   flipped,
			"truncated":     data[:len(data)-1],
			"appended":      append(slices.Clone(data), 0),
			"another blob":  other,
			"emptied":       {},
			"first byte":    append([]byte{data[0] ^ 0x80}, data[1:]...),
			"last byte off": append(slices.Clone(data[:len(data)-1]), data[len(data)-1]^0xff),
		}
		for name, stored := range cases {
			key, _ := put(t, s, data)
			overwrite(t, key, stored)
			r, err := s.Open(ctx, key)
			if err != nil {
				t.Fatalf("%s: Open: %v", name, err)
			}
			_, err = io.ReadAll(r)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: read error %v, want ErrCorrupt", name, err)
			}
			// A second read must not turn the failure into a clean end.
			if n, err := r.Read(make([]byte, 10)); n != 0 || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: read after failure = %d, %v", name, n, err)
			}
			r.Close()
			mustDelete(t, s, key)
		}
		mustBeEmpty(t, s)
	})

	t.Run("MissingBlob", func(t *testing.T) {
		key := hexSHA256([]byte("never stored"))
		if _, err := s.Open(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Open of a missing blob: %v, want ErrNotFound", err)
		}
	})

	t.Run("InvalidKeysRefused", func(t *testing.T) {
		valid := hexSHA256([]byte("x"))
		data := testData(10, 8)
		stored, _ := put(t, s, data)
		for _, key := range []string{
			"", "../x", "..", "/etc/passwd", strings.ToUpper(valid), valid[:63], valid + "0",
			"../" + valid[3:], valid[:62] + "/.", "ab/cd/" + valid[6:], strings.ToUpper(stored),
			"blobs/" + stored, stored[:2] + "/" + stored[2:4] + "/" + stored, stored + "\x00",
			strings.Repeat("g", 64), strings.Repeat(" ", 64),
		} {
			if ValidKey(key) {
				t.Fatalf("ValidKey(%q) = true", key)
			}
			if _, err := s.Open(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("Open(%q): %v, want ErrInvalidKey", key, err)
			}
			if err := s.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("Delete(%q): %v, want ErrInvalidKey", key, err)
			}
		}
		// None of the refused spellings reached the stored blob.
		if got, err := get(t, s, stored); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("stored blob after refused keys: %v", err)
		}
		mustDelete(t, s, stored)
		mustBeEmpty(t, s)
	})

	t.Run("DeleteIdempotent", func(t *testing.T) {
		key, _ := put(t, s, testData(10, 9))
		for range 2 {
			mustDelete(t, s, key)
		}
		mustDelete(t, s, hexSHA256([]byte("never stored")))
		if _, err := s.Open(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Open after Delete: %v, want ErrNotFound", err)
		}
		mustBeEmpty(t, s)
	})

	t.Run("Check", func(t *testing.T) {
		if err := s.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
		mustBeEmpty(t, s)
	})
}

func TestValidKey(t *testing.T) {
	good := hexSHA256(nil)
	if !ValidKey(good) {
		t.Fatalf("ValidKey(%q) = false", good)
	}
	if !ValidKey(strings.Repeat("0", 64)) || !ValidKey(strings.Repeat("f", 64)) {
		t.Fatal("all-digit or all-f key refused")
	}
	for _, k := range []string{strings.Repeat("F", 64), strings.Repeat("0", 63) + "G", good[:63] + "é"} {
		if ValidKey(k) {
			t.Fatalf("ValidKey(%q) = true", k)
		}
	}
}
