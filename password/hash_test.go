package password

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tutela"
)

// testParams keep Argon2id cheap so tests run in milliseconds; DefaultParams is tested once.
var testParams = Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func newTestHasher(t testing.TB, p Params) *Hasher {
	t.Helper()
	h, err := NewHasher(p, 4, time.Second)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	return h
}

func mustHash(t testing.TB, h *Hasher, pw string) string {
	t.Helper()
	enc, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return enc
}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

func TestHash_DefaultParamsProducePHCString(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, DefaultParams())
	enc := mustHash(t, h, "correct horse battery staple")
	m := phcRE.FindStringSubmatch(enc)
	if m == nil {
		t.Fatalf("not a PHC argon2id string: %q", enc)
	}
	if got := m[1] + "," + m[2] + "," + m[3]; got != "19456,2,1" {
		t.Errorf("m,t,p = %s, want 19456,2,1 (OWASP)", got)
	}
	salt, err := base64.RawStdEncoding.DecodeString(m[4])
	if err != nil || len(salt) != 16 {
		t.Errorf("salt: %d bytes, err %v; want 16", len(salt), err)
	}
	key, err := base64.RawStdEncoding.DecodeString(m[5])
	if err != nil || len(key) != 32 {
		t.Errorf("key: %d bytes, err %v; want 32", len(key), err)
	}
	ok, rehash, err := h.Verify(context.Background(), "correct horse battery staple", enc)
	if !ok || rehash || err != nil {
		t.Errorf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestHash_SaltIsRandom(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	a, b := mustHash(t, h, "same password"), mustHash(t, h, "same password")
	if a == b {
		t.Fatal("two hashes of one password are equal; salt is not random")
	}
}

func TestHash_RejectsOverlongInputWithoutEchoingIt(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	pw := strings.Repeat("secretword", maxPasswordBytes/10+1)
	_, err := h.Hash(context.Background(), pw)
	if tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("Hash(overlong) err = %v, want EINVALID", err)
	}
	if strings.Contains(err.Error(), "secretword") {
		t.Error("error contains the password")
	}
	ok, _, err := h.Verify(context.Background(), pw, mustHash(t, h, "x"))
	if ok || err != nil {
		t.Errorf("Verify(overlong) = %v, %v; want false, nil", ok, err)
	}
}

func TestVerify_Argon2idRejectsWrongPassword(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	const pw = "Tr0ub4dor&3 horse"
	enc := mustHash(t, h, pw)
	for _, wrong := range []string{"", "tr0ub4dor&3 horse", "Tr0ub4dor&3 horse ", " Tr0ub4dor&3 horse", "Tr0ub4dor&3 hors", "Tr0ub4dor&3 horse\x00"} {
		ok, rehash, err := h.Verify(context.Background(), wrong, enc)
		if ok || rehash || err != nil {
			t.Errorf("Verify(%q) = %v, %v, %v; want false, false, nil", wrong, ok, rehash, err)
		}
	}
	if ok, _, err := h.Verify(context.Background(), pw, enc); !ok || err != nil {
		t.Errorf("Verify(right) = %v, %v", ok, err)
	}
}

// TestVerify_TamperedPHCField changes each field of a valid hash. None may verify; fields whose
// change makes the string non-canonical or unsupported must fail with the specific error.
func TestVerify_TamperedPHCField(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	const pw = "tamper-proof password"
	enc := mustHash(t, h, pw)
	f := strings.Split(enc, "$") // "", argon2id, v=19, m=64,t=1,p=1, salt, hash
	join := func(mod func(f []string)) string {
		g := append([]string(nil), f...)
		mod(g)
		return strings.Join(g, "$")
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name    string
		encoded string
		wantErr error // nil: parses, but must not verify
	}{
		{"variant argon2i", join(func(f []string) { f[1] = "argon2i" }), nil},
		{"variant argon2d", join(func(f []string) { f[1] = "argon2d" }), ErrUnsupportedHash},
		{"variant unknown", join(func(f []string) { f[1] = "argon2x" }), ErrUnsupportedHash},
		{"version 16", join(func(f []string) { f[2] = "v=16" }), ErrUnsupportedHash},
		{"version 18", join(func(f []string) { f[2] = "v=18" }), ErrMalformedHash},
		{"version omitted", strings.Join(append(f[:2:2], f[3:]...), "$"), ErrUnsupportedHash},
		{"memory", join(func(f []string) { f[3] = "m=128,t=1,p=1" }), nil},
		{"time", join(func(f []string) { f[3] = "m=64,t=2,p=1" }), nil},
		{"threads", join(func(f []string) { f[3] = "m=64,t=1,p=2" }), nil},
		{"memory leading zero", join(func(f []string) { f[3] = "m=064,t=1,p=1" }), ErrMalformedHash},
		{"memory sign", join(func(f []string) { f[3] = "m=+64,t=1,p=1" }), ErrMalformedHash},
		{"params reordered", join(func(f []string) { f[3] = "t=1,m=64,p=1" }), ErrMalformedHash},
		{"params extra", join(func(f []string) { f[3] = "m=64,t=1,p=1,k=2" }), ErrMalformedHash},
		{"time zero", join(func(f []string) { f[3] = "m=64,t=0,p=1" }), ErrMalformedHash},
		{"threads zero", join(func(f []string) { f[3] = "m=64,t=1,p=0" }), ErrMalformedHash},
		{"memory below 8 per thread", join(func(f []string) { f[3] = "m=8,t=1,p=2" }), ErrMalformedHash},
		{"memory huge", join(func(f []string) { f[3] = "m=4294967295,t=1,p=1" }), ErrMalformedHash},
		{"time huge", join(func(f []string) { f[3] = "m=64,t=1000000,p=1" }), ErrMalformedHash},
		{"salt first char", join(func(f []string) { f[4] = flip(f[4], 0) }), nil},
		{"salt not base64", join(func(f []string) { f[4] = "!!!!" + f[4][4:] }), ErrMalformedHash},
		{"salt padded", join(func(f []string) { f[4] += "==" }), ErrMalformedHash},
		{"salt too short", join(func(f []string) { f[4] = "AAAA" }), ErrMalformedHash},
		{"hash first char", join(func(f []string) { f[5] = flip(f[5], 0) }), nil},
		{"hash last char", join(func(f []string) { f[5] = flip(f[5], len(f[5])-1) }), nil},
		{"hash trailing bits", join(func(f []string) { f[5] = f[5][:len(f[5])-1] + string(f[5][len(f[5])-1]^1) }), nil},
		{"hash too short", join(func(f []string) { f[5] = f[5][:20] }), ErrMalformedHash},
		{"hash empty", join(func(f []string) { f[5] = "" }), ErrMalformedHash},
		{"extra field", enc + "$AAAA", ErrMalformedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, rehash, err := h.Verify(context.Background(), pw, tt.encoded)
			if ok || rehash {
				t.Fatalf("tampered hash %q verified", tt.encoded)
			}
			if tt.wantErr == nil {
				// Strict base64 may reject a changed trailing character as non-canonical:
				// that is a malformed hash, not a match, and equally safe.
				if err != nil && !errors.Is(err, ErrMalformedHash) {
					t.Fatalf("err = %v, want nil or ErrMalformedHash", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerify_TruncatedHashNeverVerifies(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	const pw = "truncate me please"
	hashes := map[string]string{
		"argon2id": mustHash(t, h, pw),
		"bcrypt":   bcryptHash(t, pw),
		"django":   djangoHash(t, pw, "truncsalt", 1000),
	}
	for name, enc := range hashes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for i := range len(enc) {
				ok, _, err := h.Verify(context.Background(), pw, enc[:i])
				if ok {
					t.Fatalf("truncated to %d chars, verified", i)
				}
				// An argon2 hash cut inside its last field may still decode to a shorter
				// (≥ 16-byte) tag; that parses and mismatches. Everything shorter is an error.
				if err == nil && (name != "argon2id" || i < strings.LastIndex(enc, "$")+22) {
					t.Fatalf("truncated to %d chars: no error", i)
				}
			}
		})
	}
}

func TestVerify_UnsupportedAlgorithms(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	tests := []struct {
		name, encoded string
		want          error
		mention       string
	}{
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ErrUnsupportedHash, "argon2d"},
		{"bcrypt 2x", "$2x$10$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", ErrUnsupportedHash, "2x"},
		{"bcrypt no minor", "$2$10$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeWX", ErrUnsupportedHash, ""},
		{"md5crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", ErrUnsupportedHash, ""},
		{"scrypt", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E", ErrUnsupportedHash, ""},
		{"django pbkdf2_sha512", "pbkdf2_sha512$1000$salt$AAAA", ErrUnsupportedHash, ""},
		{"django sha1", "sha1$salt$0123456789abcdef0123456789abcdef01234567", ErrUnsupportedHash, ""},
		{"plaintext", "hunter2", ErrUnsupportedHash, ""},
		{"empty", "", ErrMalformedHash, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, _, err := h.Verify(context.Background(), "hunter2", tt.encoded)
			if ok || !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, %v; want false, %v", ok, err, tt.want)
			}
			if tt.mention != "" && !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not say which algorithm is unsupported (%s)", err, tt.mention)
			}
		})
	}
}

func bcryptHash(t testing.TB, pw string) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func djangoHash(t testing.TB, pw, salt string, iter int) string {
	t.Helper()
	key, err := pbkdf2.Key(sha256.New, pw, []byte(salt), iter, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("pbkdf2_sha256$%d$%s$%s", iter, salt, base64.StdEncoding.EncodeToString(key))
}

func TestVerify_LegacyHashes(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	generated := bcryptHash(t, "legacy bcrypt pw")
	tests := []struct {
		name, pw, encoded string
		want              bool
	}{
		// Openwall crypt_blowfish test vector.
		{"bcrypt published vector", "U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", true},
		{"bcrypt published vector wrong", "U*V", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", false},
		{"bcrypt 2a", "legacy bcrypt pw", generated, true},
		{"bcrypt 2b", "legacy bcrypt pw", "$2b$" + generated[4:], true},
		{"bcrypt 2y", "legacy bcrypt pw", "$2y$" + generated[4:], true},
		{"bcrypt wrong", "legacy bcrypt pW", generated, false},
		{"bcrypt cost changed", "legacy bcrypt pw", generated[:4] + "05" + generated[6:], false},
		{"bcrypt salt changed", "legacy bcrypt pw", generated[:7] + flipBcrypt(generated[7]) + generated[8:], false},
		{"bcrypt hash changed", "legacy bcrypt pw", generated[:59] + flipBcrypt(generated[59]), false},
		// Django's own test vector (tests/auth_tests/test_hashers.py, Django 1.5–1.8 iterations).
		{"django published vector", "lètmein", "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=", true},
		{"django published vector wrong", "letmein", "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=", false},
		// passlib's django_pbkdf2_sha1 test vector.
		{"django sha1 published vector", "not a password", "pbkdf2_sha1$10000$wz5B6WkasRoF$atJmJ1o+XfJxKq1+Nu1f1i57Z5I=", true},
		{"django generated", "django pw", djangoHash(t, "django pw", "abc123", 1000), true},
		{"django iterations changed", "django pw", strings.Replace(djangoHash(t, "django pw", "abc123", 1000), "$1000$", "$1001$", 1), false},
		{"django salt changed", "django pw", strings.Replace(djangoHash(t, "django pw", "abc123", 1000), "$abc123$", "$abc124$", 1), false},
		// argon2-cffi's documented example, made by the reference C implementation: proves our
		// PHC parsing and argon2i interoperate.
		{"argon2i argon2-cffi vector", "s3kr3tp4ssw0rd", "$argon2i$v=19$m=512,t=2,p=2$5VtWOO3cGWYQHEMaYGbsfQ$AcmqasQgW/wI6wAHAMk4aQ", true},
		{"argon2i argon2-cffi vector wrong", "s3kr3tp4ssw0rD", "$argon2i$v=19$m=512,t=2,p=2$5VtWOO3cGWYQHEMaYGbsfQ$AcmqasQgW/wI6wAHAMk4aQ", false},
		{"django argon2 prefix", "via django", "argon2" + mustHash(t, h, "via django"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, rehash, err := h.Verify(context.Background(), tt.pw, tt.encoded)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.want {
				t.Fatalf("ok = %v, want %v", ok, tt.want)
			}
			if rehash != tt.want {
				t.Errorf("needsRehash = %v, want %v (legacy formats are always rehashed once verified)", rehash, tt.want)
			}
		})
	}
}

// bcrypt reads only the first 72 bytes of a password, so a legacy hash of a 72-byte password
// would also verify that password with anything appended, and sign-in would then store a hash of
// the longer input. Verify refuses input beyond 72 bytes against every bcrypt variant (ASVS
// 6.2.8); the 72 bytes themselves still verify.
func TestVerify_BcryptRefusesInputBeyond72Bytes(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	pw72 := strings.Repeat("0123456789abcdef", 4) + "ghijklmn"
	if len(pw72) != 72 {
		t.Fatalf("test password has %d bytes", len(pw72))
	}
	generated := bcryptHash(t, pw72)
	tests := []struct {
		name, pw string
		want     bool
	}{
		{"exactly 72 bytes", pw72, true},
		{"one byte more", pw72 + "x", false},
		{"a long suffix", pw72 + strings.Repeat("anything", 100), false},
		{"a multi-byte suffix", pw72 + "é", false},
		{"one byte less", pw72[:71], false},
	}
	for _, variant := range []string{"$2a$", "$2b$", "$2y$"} {
		encoded := variant + generated[4:]
		for _, tt := range tests {
			ok, rehash, err := h.Verify(context.Background(), tt.pw, encoded)
			if err != nil || ok != tt.want || rehash != tt.want {
				t.Errorf("%s %s: Verify = %v, %v, %v; want %v", variant, tt.name, ok, rehash, err, tt.want)
			}
		}
	}
}

func flipBcrypt(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func TestVerify_MalformedLegacyHashes(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	b := bcryptHash(t, "pw")
	d := djangoHash(t, "pw", "salt", 1000)
	tests := map[string]string{
		"bcrypt cost 31":         b[:4] + "31" + b[6:],
		"bcrypt cost 03":         b[:4] + "03" + b[6:],
		"bcrypt cost not digits": b[:4] + "1a" + b[6:],
		"bcrypt separator":       b[:6] + "#" + b[7:],
		"bcrypt bad character":   b[:30] + "!" + b[31:],
		"bcrypt too long":        b + "a",
		"django iterations zero": "pbkdf2_sha256$0$salt$" + strings.Split(d, "$")[3],
		"django iterations lead": "pbkdf2_sha256$01000$salt$" + strings.Split(d, "$")[3],
		"django iterations huge": "pbkdf2_sha256$999999999$salt$" + strings.Split(d, "$")[3],
		"django iterations sign": "pbkdf2_sha256$-1000$salt$" + strings.Split(d, "$")[3],
		"django empty salt":      "pbkdf2_sha256$1000$$" + strings.Split(d, "$")[3],
		"django bad base64":      "pbkdf2_sha256$1000$salt$!!!!",
		"django unpadded":        strings.TrimRight(d, "="),
		"django short digest":    "pbkdf2_sha256$1000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"django extra field":     d + "$x",
		"django missing field":   "pbkdf2_sha256$1000$salt",
	}
	for name, enc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ok, _, err := h.Verify(context.Background(), "pw", enc)
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Verify = %v, %v; want false, ErrMalformedHash", ok, err)
			}
		})
	}
}

// TestVerify_Argon2idInteroperates checks a hash made by the reference implementation (via
// argon2-cffi's documented example) with 64 MiB, so it is skipped in -short runs.
func TestVerify_Argon2idInteroperates(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB argon2id")
	}
	t.Parallel()
	h := newTestHasher(t, testParams)
	const enc = "$argon2id$v=19$m=65536,t=3,p=4$MIIRqgvgQbgj220jfp0MPA$YfwJSVjtjSU0zzV/P3S9nnQ/USre2wvJMjfCIjrTQbg"
	ok, rehash, err := h.Verify(context.Background(), "correct horse battery staple", enc)
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify = %v, %v, %v; want true, true (other params), nil", ok, rehash, err)
	}
}

func TestVerify_NeedsRehashWhenParamsChange(t *testing.T) {
	t.Parallel()
	current := newTestHasher(t, testParams)
	const pw = "rehash me later"
	tests := []struct {
		name string
		old  Params
		want bool
	}{
		{"same params", testParams, false},
		{"memory", Params{Memory: 32, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, true},
		{"time", Params{Memory: 64, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}, true},
		{"threads", Params{Memory: 64, Time: 1, Threads: 2, KeyLen: 32, SaltLen: 16}, true},
		{"key length", Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 16, SaltLen: 16}, true},
		{"salt length", Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 32}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			enc := mustHash(t, newTestHasher(t, tt.old), pw)
			ok, rehash, err := current.Verify(context.Background(), pw, enc)
			if !ok || err != nil {
				t.Fatalf("Verify = %v, %v", ok, err)
			}
			if rehash != tt.want {
				t.Errorf("needsRehash = %v, want %v", rehash, tt.want)
			}
			if _, rehash, _ := current.Verify(context.Background(), "wrong", enc); rehash {
				t.Error("needsRehash reported for a wrong password")
			}
		})
	}
}

func TestVerify_NFKCNormalisation(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	tests := []struct {
		name, set, typed string
	}{
		{"full-width typed", "pass word 42", "ｐａｓｓ ｗｏｒｄ ４２"},
		{"full-width set", "ｐａｓｓ ｗｏｒｄ ４２", "pass word 42"},
		{"ligature", "ﬁnancial ﬂow", "financial flow"},
		{"combining accent", "cafe\u0301 crème", "café cre\u0300me"},
		{"no-break space", "two\u00a0words", "two words"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			enc := mustHash(t, h, tt.set)
			if ok, _, err := h.Verify(context.Background(), tt.typed, enc); !ok || err != nil {
				t.Errorf("Verify(%q) against hash of %q = %v, %v; want match", tt.typed, tt.set, ok, err)
			}
		})
	}
}

// TestVerify_LegacyRawFallback: imported systems hashed the password as typed, so a
// non-normalised password must still verify against its legacy hash, and an ASCII legacy hash
// must accept the full-width spelling.
func TestVerify_LegacyRawFallback(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	raw := "ｐａｓｓ ｗｏｒｄ" // full-width, as an old system stored it
	for name, enc := range map[string]string{
		"bcrypt": bcryptHash(t, raw),
		"django": djangoHash(t, raw, "s4lt", 1000),
	} {
		if ok, rehash, err := h.Verify(context.Background(), raw, enc); !ok || !rehash || err != nil {
			t.Errorf("%s: Verify(raw) = %v, %v, %v; want true, true, nil", name, ok, rehash, err)
		}
	}
	enc := bcryptHash(t, "pass word")
	if ok, _, err := h.Verify(context.Background(), raw, enc); !ok || err != nil {
		t.Errorf("full-width against ASCII bcrypt hash = %v, %v; want match", ok, err)
	}
}

func TestHasher_BusyWhenSlotsTaken(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(testParams, 1, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	enc := mustHash(t, h, "pw")
	ctx := context.Background()
	if err := h.acquire(ctx); err != nil { // hold the only slot
		t.Fatal(err)
	}

	_, hashErr := h.Hash(ctx, "pw")
	_, _, verifyErr := h.Verify(ctx, "pw", enc)
	dummyErr := h.DummyVerify(ctx, "pw")
	for name, err := range map[string]error{"Hash": hashErr, "Verify": verifyErr, "DummyVerify": dummyErr} {
		if !errors.Is(err, ErrBusy) || tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
			t.Errorf("%s: err = %v, want ErrBusy (EUNAVAILABLE)", name, err)
		}
	}
	if got := tutela.ErrorMessage(ErrBusy); got != "too many sign-ins in progress, retry shortly" {
		t.Errorf("message = %q", got)
	}

	// A caller whose context ends while waiting is told the service is busy, too.
	waitLong, err := NewHasher(testParams, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitLong.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := waitLong.Hash(cctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("Hash with expiring context: err = %v, want ErrBusy", err)
	}

	h.release()
	if _, err := h.Hash(ctx, "pw"); err != nil {
		t.Errorf("Hash after release: %v", err)
	}
}

func TestHasher_WaiterGetsReleasedSlot(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(testParams, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := h.Hash(context.Background(), "pw")
		done <- err
	}()
	h.release()
	if err := <-done; err != nil {
		t.Fatalf("waiting Hash: %v", err)
	}
}

func TestHasher_CancelledContextDoesNoWork(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash: err = %v, want context.Canceled", err)
	}
}

func TestHasher_DummyVerifyCostsLikeARealHash(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	ph, err := parseHash(h.dummy)
	if err != nil {
		t.Fatalf("dummy hash: %v", err)
	}
	if ph.alg != algArgon2id || h.stale(ph) {
		t.Errorf("dummy hash %q does not use the current argon2id params", h.dummy)
	}
	if n := h.Computed(); n != 0 {
		t.Errorf("building the Hasher ran %d argon2id computations, want none", n)
	}
	if err := h.DummyVerify(context.Background(), "anything"); err != nil {
		t.Errorf("DummyVerify: %v", err)
	}
	if n := h.Computed(); n != 1 {
		t.Errorf("DummyVerify ran %d argon2id computations, want 1", n)
	}
	// Its key is random bytes, not a hash of anything: no password verifies against it.
	for _, pw := range []string{"anything", "", "password"} {
		if ok, _, err := h.Verify(context.Background(), pw, h.dummy); ok || err != nil {
			t.Errorf("Verify(%q, dummy) = %v, %v; want false, nil", pw, ok, err)
		}
	}
	if other := newTestHasher(t, testParams); other.dummy == h.dummy {
		t.Error("two Hashers share a dummy hash")
	}
}

func TestParams_Validate(t *testing.T) {
	t.Parallel()
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("DefaultParams invalid: %v", err)
	}
	bad := map[string]Params{
		"zero":               {},
		"no threads":         {Memory: 64, Time: 1, Threads: 0, KeyLen: 32, SaltLen: 16},
		"memory per thread":  {Memory: 31, Time: 1, Threads: 4, KeyLen: 32, SaltLen: 16},
		"memory huge":        {Memory: maxMemoryKiB + 1, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
		"no time":            {Memory: 64, Time: 0, Threads: 1, KeyLen: 32, SaltLen: 16},
		"time huge":          {Memory: 64, Time: maxTime + 1, Threads: 1, KeyLen: 32, SaltLen: 16},
		"short key":          {Memory: 64, Time: 1, Threads: 1, KeyLen: 8, SaltLen: 16},
		"short salt":         {Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 8},
		"huge salt":          {Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: maxSaltLen + 1},
		"several at once":    {Memory: 1, Time: 0, Threads: 1, KeyLen: 1, SaltLen: 1},
		"huge key":           {Memory: 64, Time: 1, Threads: 1, KeyLen: maxKeyLen + 1, SaltLen: 16},
		"threads need 8 KiB": {Memory: 8, Time: 1, Threads: 2, KeyLen: 32, SaltLen: 16},
	}
	for name, p := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := p.Validate(); tutela.ErrorCode(err) != tutela.EINVALID {
				t.Errorf("Validate = %v, want EINVALID", err)
			}
			if _, err := NewHasher(p, 1, 0); err == nil {
				t.Error("NewHasher accepted invalid params")
			}
		})
	}
	err := bad["several at once"].Validate()
	if n := strings.Count(tutela.ErrorMessage(err), ";"); n < 3 {
		t.Errorf("Validate reported %d problems, want every one: %v", n+1, err)
	}
}

// TestVerify_ErrorsNeverContainThePassword feeds a distinctive password through every error
// path of Hash and Verify.
func TestVerify_ErrorsNeverContainThePassword(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, testParams)
	const pw = "Sup3rS3cretCanary"
	inputs := []string{"", "$argon2id$", "$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$" + pw, "$2a$10$" + pw, "pbkdf2_sha256$1000$" + pw + "$x", pw, "$argon2id$v=19$m=64,t=1,p=1$" + pw + "$" + pw}
	for _, enc := range inputs {
		_, _, err := h.Verify(context.Background(), pw, enc)
		if err == nil {
			t.Errorf("Verify(%q): no error", enc)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error %q contains the password", err)
		}
	}
}

// canonical re-encodes a parsed hash; the parser's strictness means it must give back exactly
// the input.
func canonical(encoded string, ph *parsedHash) string {
	switch ph.alg {
	case algArgon2id, algArgon2i:
		variant := "argon2id"
		if ph.alg == algArgon2i {
			variant = "argon2i"
		}
		pepper := ""
		if ph.peppered {
			pepper = fmt.Sprintf(",pepper=%d", ph.pepperID)
		}
		s := fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d%s$%s$%s", variant, ph.memory, ph.time, ph.threads, pepper,
			b64.EncodeToString(ph.salt), b64.EncodeToString(ph.key))
		if strings.HasPrefix(encoded, "argon2$") {
			s = "argon2" + s
		}
		return s
	case algBcrypt:
		return string(ph.bcrypt)
	case algPBKDF2SHA256, algPBKDF2SHA1:
		name := "pbkdf2_sha256"
		if ph.alg == algPBKDF2SHA1 {
			name = "pbkdf2_sha1"
		}
		return fmt.Sprintf("%s$%d$%s$%s", name, ph.iterations, ph.salt, base64.StdEncoding.EncodeToString(ph.key))
	}
	return ""
}

func FuzzVerify(f *testing.F) {
	h := newTestHasher(f, testParams)
	const pw = "fuzz password"
	f.Add(mustHash(f, h, pw))
	f.Add("argon2" + mustHash(f, h, pw))
	f.Add(mustHash(f, newPepperedTestHasher(f, newTestPepper(7)), pw))
	f.Add("$argon2i$v=19$m=512,t=2,p=2$5VtWOO3cGWYQHEMaYGbsfQ$AcmqasQgW/wI6wAHAMk4aQ")
	f.Add("$argon2d$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add(bcryptHash(f, pw))
	f.Add("$2y$04$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
	f.Add(djangoHash(f, pw, "salt", 10))
	f.Add("pbkdf2_sha1$10$wz5B6WkasRoF$atJmJ1o+XfJxKq1+Nu1f1i57Z5I=")
	for _, s := range []string{"", "$", "$$$$$", "$argon2id$v=19$m=,t=,p=$$", "$2a$", "pbkdf2_sha256$$$", "argon2$", "\xff\xfe$argon2id"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, encoded string) {
		ph, err := parseHash(encoded)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) && !errors.Is(err, ErrUnsupportedHash) {
				t.Fatalf("parse error %v is neither malformed nor unsupported", err)
			}
			return
		}
		if got := canonical(encoded, ph); got != encoded {
			t.Fatalf("accepted non-canonical hash\n got %q\nwant %q", encoded, got)
		}
		// Only derive keys for cheap parameters, so fuzzing explores the parser, not Argon2.
		if ph.memory > 1024 || ph.time > 4 || ph.iterations > 10000 || (ph.alg == algBcrypt && encoded[4:6] > "05") {
			return
		}
		ok, _, err := h.Verify(context.Background(), pw, encoded)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
	})
}

func BenchmarkArgon2id(b *testing.B) {
	h := newTestHasher(b, DefaultParams())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyArgon2id(b *testing.B) {
	h := newTestHasher(b, DefaultParams())
	ctx := context.Background()
	enc := mustHash(b, h, "correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", enc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
