package vault

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"tutela"
)

func newTestSealer(t *testing.T) (*LocalSealer, tutela.Secret) {
	t.Helper()
	k := make([]byte, MasterKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	key := tutela.NewSecretBytes(k)
	s, err := NewLocalSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

func TestLocalSealer_RoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := newTestSealer(t)
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("secret"), 1000)} {
		ct, err := s.Seal(pt, []byte("signing_key:k1"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Open(ct, []byte("signing_key:k1"))
		if err != nil {
			t.Fatalf("Open(%d bytes): %v", len(pt), err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("round trip: got %q, want %q", got, pt)
		}
	}
}

func TestLocalSealer_FreshNonceEachSeal(t *testing.T) {
	t.Parallel()
	s, _ := newTestSealer(t)
	a, _ := s.Seal([]byte("same"), nil)
	b, _ := s.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical: nonce reused")
	}
	if bytes.Contains(a, []byte("same")) {
		t.Fatal("ciphertext contains the plaintext")
	}
}

func TestLocalSealer_RejectsTampering(t *testing.T) {
	t.Parallel()
	s, _ := newTestSealer(t)
	other, _ := newTestSealer(t)
	plaintext := []byte("private key bytes")
	aad := []byte("signing_key:k1")
	ct, err := s.Seal(plaintext, aad)
	if err != nil {
		t.Fatal(err)
	}

	type attempt struct {
		name string
		s    *LocalSealer
		ct   []byte
		aad  []byte
	}
	attempts := []attempt{
		{"wrong aad", s, ct, []byte("signing_key:k2")},
		{"empty aad", s, ct, nil},
		{"wrong key", other, ct, aad},
		{"nil", s, nil, aad},
		{"empty", s, []byte{}, aad},
		{"version only", s, []byte{sealVersion}, aad},
		{"truncated to header", s, ct[:1+12], aad},
		{"truncated tag", s, ct[:len(ct)-1], aad},
		{"unknown version", s, append([]byte{2}, ct[1:]...), aad},
		{"garbage", s, bytes.Repeat([]byte{0xff}, 64), aad},
	}
	for i := range ct {
		for _, bit := range []byte{0x01, 0x80} {
			c := bytes.Clone(ct)
			c[i] ^= bit
			attempts = append(attempts, attempt{fmt.Sprintf("flip byte %d bit %#x", i, bit), s, c, aad})
		}
	}
	for _, a := range attempts {
		got, err := a.s.Open(a.ct, a.aad)
		if !errors.Is(err, ErrUnseal) {
			t.Errorf("%s: Open err = %v, want ErrUnseal", a.name, err)
		}
		if got != nil {
			t.Errorf("%s: Open returned data %q", a.name, got)
		}
		if err != nil && strings.Contains(err.Error(), string(plaintext)) {
			t.Errorf("%s: error leaks plaintext: %v", a.name, err)
		}
	}
}

func TestNewLocalSealer_Requires256BitKey(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 16, 24, 31, 33, 64} {
		k := bytes.Repeat([]byte{0x42}, n)
		s, err := NewLocalSealer(tutela.NewSecretBytes(k))
		if err == nil || s != nil {
			t.Errorf("NewLocalSealer(%d bytes) = %v, %v; want error", n, s, err)
			continue
		}
		if n > 0 && strings.Contains(err.Error(), string(k)) {
			t.Errorf("error leaks key: %v", err)
		}
	}
}

func TestLocalSealer_DoesNotPrintState(t *testing.T) {
	t.Parallel()
	s, key := newTestSealer(t)
	for _, out := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s)} {
		if !strings.Contains(out, "redacted") || strings.Contains(out, fmt.Sprintf("%x", key.Bytes())) {
			t.Errorf("formatted sealer = %q", out)
		}
	}
}

func FuzzLocalSealer_Open(f *testing.F) {
	k := bytes.Repeat([]byte{7}, MasterKeySize)
	s, err := NewLocalSealer(tutela.NewSecretBytes(k))
	if err != nil {
		f.Fatal(err)
	}
	ct, _ := s.Seal([]byte("seed"), []byte("a"))
	f.Add(ct, []byte("a"))
	f.Add([]byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, ct, aad []byte) {
		pt, err := s.Open(ct, aad)
		if err == nil && !bytes.Equal(pt, []byte("seed")) {
			t.Fatalf("opened forged data: %q", pt)
		}
	})
}
