package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
)

// memStore is an in-memory Store for unit tests and benchmarks; the SQL stores run the same
// behaviour in sqlstore/storetest.
type memStore struct {
	mu sync.Mutex
	m  map[[2]string]Keyset
}

func newMemStore() *memStore { return &memStore{m: map[[2]string]Keyset{}} }

func (s *memStore) GetKeyset(_ context.Context, tenant, purpose string) (*Keyset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks, ok := s.m[[2]string{tenant, purpose}]
	if !ok {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "not found")
	}
	return &ks, nil
}
func (s *memStore) ListKeysets(context.Context) ([]Keyset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Keyset
	for _, ks := range s.m {
		out = append(out, ks)
	}
	return out, nil
}
func (s *memStore) CreateKeyset(_ context.Context, ks *Keyset, _ Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{ks.TenantID, ks.Purpose}
	if _, ok := s.m[k]; ok {
		return tutela.Errorf(tutela.ECONFLICT, "exists")
	}
	s.m[k] = *ks
	return nil
}
func (s *memStore) UpdateKeyset(_ context.Context, ks *Keyset, prev int64, _ Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{ks.TenantID, ks.Purpose}
	if s.m[k].Version != prev {
		return tutela.Errorf(tutela.ECONFLICT, "changed")
	}
	s.m[k] = *ks
	return nil
}
func (s *memStore) DeleteKeyset(_ context.Context, tenant, purpose string, _ Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, [2]string{tenant, purpose})
	return nil
}

func randomMaster(t testing.TB) tutela.Secret {
	k := make([]byte, MasterKeySize)
	rand.Read(k)
	return tutela.NewSecretBytes(k)
}

func TestParseKEKURI(t *testing.T) {
	t.Parallel()
	good := map[string]KEKSpec{
		"":                                   {Scheme: SchemeLocal},
		"local:":                             {Scheme: SchemeLocal},
		"pkcs11:token=tutela;object=kek%3B1": {Scheme: SchemePKCS11, Token: "tutela", Object: "kek;1"},
		"aws-kms://arn:aws:kms:eu-west-1:111122223333:key/1234abcd": {Scheme: SchemeAWSKMS,
			KeyURI: "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/1234abcd"},
		"gcp-kms://projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k": {Scheme: SchemeGCPKMS,
			KeyURI: "gcp-kms://projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k"},
		"hcvault://vault.internal:8200/transit/keys/tutela": {Scheme: SchemeHCVault,
			KeyURI: "hcvault://vault.internal:8200/transit/keys/tutela"},
	}
	for uri, want := range good {
		got, err := ParseKEKURI(uri)
		if err != nil || got != want {
			t.Errorf("ParseKEKURI(%q) = %+v, %v; want %+v", uri, got, err, want)
		}
	}
	for _, uri := range []string{"file:/etc/key", "pkcs11:token=t", "pkcs11:token=t;object=k;pin-value=1234",
		"aws-kms://key/1", "gcp-kms://projects/p", "hcvault://:token@host/transit/keys/k", "hcvault:///transit/keys/k", "nonsense"} {
		_, err := ParseKEKURI(uri)
		if err == nil {
			t.Errorf("ParseKEKURI(%q) accepted", uri)
		} else if strings.Contains(uri, "1234") && strings.Contains(err.Error(), "1234") {
			t.Errorf("error echoes the PIN: %v", err)
		}
	}
}

func TestVault_WrongKEKRefusedAtStart(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	k1, _ := NewLocalKEK(randomMaster(t))
	v, err := New(context.Background(), k1, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Encrypt(context.Background(), "", PurposeSigningKeys, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	k2, _ := NewLocalKEK(randomMaster(t))
	if _, err := New(context.Background(), k2, st, Options{}); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("err = %v, want ErrWrongKEK", err)
	}
}

func TestVault_CacheExpiresAndRotationSeenByOtherNode(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	kek, _ := NewLocalKEK(randomMaster(t))
	a, _ := New(context.Background(), kek, st, Options{})
	b, _ := New(context.Background(), kek, st, Options{})
	ctx := context.Background()
	if _, err := a.Encrypt(ctx, "", PurposeTOTP, []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rotate(ctx, "", PurposeTOTP); err != nil {
		t.Fatal(err)
	}
	ct, _ := b.Encrypt(ctx, "", PurposeTOTP, []byte("2"), nil)
	// a has the old keyset cached; a key it does not know triggers one reload.
	if got, err := a.Decrypt(ctx, "", PurposeTOTP, ct, nil); err != nil || string(got) != "2" {
		t.Fatalf("other node's new key: %q, %v", got, err)
	}
}

func TestVaultSealer_OpensLegacyAndRejectsWrongContext(t *testing.T) {
	t.Parallel()
	master := randomMaster(t)
	kek, _ := NewLocalKEK(master)
	v, _ := New(context.Background(), kek, newMemStore(), Options{})
	legacy, _ := NewLocalSealer(master)
	s, err := NewVaultSealer(v, "", PurposeSigningKeys, master)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := legacy.Seal([]byte("old"), []byte("k1"))
	if got, err := s.Open(old, []byte("k1")); err != nil || string(got) != "old" {
		t.Fatalf("legacy: %q, %v", got, err)
	}
	ct, _ := s.Seal([]byte("new"), []byte("k1"))
	if got, err := s.Open(ct, []byte("k1")); err != nil || string(got) != "new" {
		t.Fatalf("vault: %q, %v", got, err)
	}
	for _, c := range [][]byte{ct, old} {
		if _, err := s.Open(c, []byte("k2")); !errors.Is(err, ErrUnseal) {
			t.Fatalf("wrong aad: %v", err)
		}
	}
}

func TestVault_DeterministicLookup(t *testing.T) {
	t.Parallel()
	kek, _ := NewLocalKEK(randomMaster(t))
	v, _ := New(context.Background(), kek, newMemStore(), Options{})
	ctx := context.Background()
	a, _ := v.Encrypt(ctx, "t", PurposeLookup, []byte("a@example.org"), AAD("users", "email_lookup", ""))
	b, _ := v.Encrypt(ctx, "t", PurposeLookup, []byte("a@example.org"), AAD("users", "email_lookup", ""))
	c, _ := v.Encrypt(ctx, "u", PurposeLookup, []byte("a@example.org"), AAD("users", "email_lookup", ""))
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("lookup ciphertexts must be equal within a tenant and differ across tenants")
	}
}

// TestPKCS11_SoftHSMRoundTrip needs SoftHSM2 (Debian softhsm2); it skips without it unless
// CI=true. It makes a throwaway token in t.TempDir, generates a non-extractable AES key there,
// and runs the vault on it.
func TestPKCS11_SoftHSMRoundTrip(t *testing.T) {
	module := "/usr/lib/softhsm/libsofthsm2.so"
	util, err := exec.LookPath("softhsm2-util")
	if _, serr := os.Stat(module); err != nil || serr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("SoftHSM2 missing (apt-get install softhsm2); CI=true forbids skipping")
		}
		t.Skip("SoftHSM2 not installed (apt-get install softhsm2)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	os.MkdirAll(filepath.Join(dir, "tokens"), 0o700)
	os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	pin := tutela.NewSecret("123456")
	if out, err := exec.Command(util, "--init-token", "--free", "--label", "tutela-test", "--pin", pin.Reveal(),
		"--so-pin", "654321").CombinedOutput(); err != nil {
		t.Fatalf("init token: %v: %s", err, out)
	}
	if err := GeneratePKCS11Key(module, "tutela-test", "tutela-kek", pin); err != nil {
		t.Fatal(err)
	}
	if err := GeneratePKCS11Key(module, "tutela-test", "tutela-kek", pin); err == nil {
		t.Fatal("a second key with the same label was created")
	}
	if _, err := OpenPKCS11KEK(module, "tutela-test", "tutela-kek", tutela.NewSecret("000000")); err == nil ||
		strings.Contains(err.Error(), "000000") {
		t.Fatalf("wrong PIN: %v", err)
	}
	kek, err := OpenKEK(context.Background(), KEKConfig{URI: "pkcs11:token=tutela-test;object=tutela-kek",
		PKCS11Module: module, PKCS11PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer kek.(*PKCS11KEK).Close()
	if kek.URI() != "pkcs11:token=tutela-test;object=tutela-kek" {
		t.Fatalf("URI %q", kek.URI())
	}
	ct, err := kek.Encrypt([]byte("keyset"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kek.Decrypt(ct, []byte("aad")); err != nil || string(got) != "keyset" {
		t.Fatalf("HSM round trip: %q, %v", got, err)
	}
	if _, err := kek.Decrypt(ct, []byte("other")); err == nil {
		t.Fatal("HSM decrypt ignored aad")
	}
	st := newMemStore()
	v, err := New(context.Background(), kek, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dct, err := v.Encrypt(ctx, "t1", PurposePersonalData, []byte("Ada"), AAD("people", "name", "1"))
	if err != nil {
		t.Fatal(err)
	}
	v.Invalidate()
	if got, err := v.Decrypt(ctx, "t1", PurposePersonalData, dct, AAD("people", "name", "1")); err != nil || string(got) != "Ada" {
		t.Fatalf("vault on HSM: %q, %v", got, err)
	}
	// Move the keysets from the HSM to a local KEK and back: RewrapKEK touches keysets only.
	local, _ := NewLocalKEK(randomMaster(t))
	if n, err := RewrapKEK(ctx, st, kek, local); err != nil || n != 1 {
		t.Fatalf("RewrapKEK: %d, %v", n, err)
	}
	v2, err := New(ctx, local, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v2.Decrypt(ctx, "t1", PurposePersonalData, dct, AAD("people", "name", "1")); err != nil || string(got) != "Ada" {
		t.Fatalf("after KEK move: %q, %v", got, err)
	}
}

func benchVault(b *testing.B) *Vault {
	kek, _ := NewLocalKEK(randomMaster(b))
	v, err := New(context.Background(), kek, newMemStore(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

var benchPlain = bytes.Repeat([]byte("p"), 64)

// BenchmarkVaultEncryptDecrypt: one Encrypt+Decrypt of 64 bytes with a cached keyset; compare
// with BenchmarkRawAESGCM (goal: ≥ 0.8× its speed).
func BenchmarkVaultEncryptDecrypt(b *testing.B) {
	v := benchVault(b)
	ctx := context.Background()
	aad := AAD("users", "phone", "0190f3a4-aaaa-7000-8000-000000000001")
	b.ReportAllocs()
	for b.Loop() {
		ct, err := v.Encrypt(ctx, "0190f3a4-aaaa-7000-8000-000000000001", PurposePersonalData, benchPlain, aad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Decrypt(ctx, "0190f3a4-aaaa-7000-8000-000000000001", PurposePersonalData, ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawAESGCM(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(blk)
	aad := AAD("users", "phone", "0190f3a4-aaaa-7000-8000-000000000001")
	b.ReportAllocs()
	for b.Loop() {
		nonce := make([]byte, 12)
		rand.Read(nonce)
		ct := g.Seal(append([]byte{}, nonce...), nonce, benchPlain, aad)
		if _, err := g.Open(nil, ct[:12], ct[12:], aad); err != nil {
			b.Fatal(err)
		}
	}
}

type memSource struct{ items []RewrapItem }

func (*memSource) Name() string { return "mem" }
func (s *memSource) Next(_ context.Context, after string, limit int) ([]RewrapItem, error) {
	var out []RewrapItem
	for _, it := range s.items {
		if it.ID > after && len(out) < limit {
			out = append(out, it)
		}
	}
	return out, nil
}
func (s *memSource) Save(_ context.Context, items []RewrapItem) error {
	for _, it := range items {
		for i := range s.items {
			if s.items[i].ID == it.ID {
				s.items[i].Ciphertext, s.items[i].KeyID = it.Ciphertext, it.KeyID
			}
		}
	}
	return nil
}

// BenchmarkRewrap measures re-encryption (decrypt under the old key, encrypt under the new
// primary) without a database; rows/s is reported.
func BenchmarkRewrap(b *testing.B) {
	clock := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	kek, _ := NewLocalKEK(randomMaster(b))
	v, err := New(context.Background(), kek, newMemStore(), Options{Clock: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	src := &memSource{}
	for i := range 1000 {
		id := fmt.Sprintf("%06d", i)
		ct, _ := v.Encrypt(ctx, "t", PurposePersonalData, benchPlain, []byte(id))
		src.items = append(src.items, RewrapItem{ID: id, TenantID: "t", Purpose: PurposePersonalData, AAD: []byte(id), Ciphertext: ct})
	}
	b.ResetTimer()
	rows := 0
	for b.Loop() {
		b.StopTimer()
		v.Rotate(ctx, "t", PurposePersonalData)
		clock.Add(v.ttl + RotationSettleMargin)
		b.StartTimer()
		p, err := v.Rewrap(ctx, src, RewrapOptions{})
		if err != nil || p.Rewrapped != 1000 {
			b.Fatal(p, err)
		}
		rows += p.Rewrapped
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

func TestVault_RotateDueRotatesOnlyOldPrimaries(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	kek, _ := NewLocalKEK(randomMaster(t))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a, _ := New(context.Background(), kek, st, Options{Clock: clock})
	b, _ := New(context.Background(), kek, st, Options{Clock: clock})
	ctx := context.Background()
	old, _ := a.Encrypt(ctx, "t1", PurposePersonalData, []byte("old"), nil)
	now = now.Add(20 * 24 * time.Hour)
	if _, err := a.Encrypt(ctx, "t2", PurposePersonalData, []byte("young"), nil); err != nil {
		t.Fatal(err)
	}
	now = now.Add(15 * 24 * time.Hour) // t1's primary is 35 days old, t2's 15
	got, err := a.RotateDue(ctx, 30*24*time.Hour)
	if err != nil || len(got) != 1 || got[0].TenantID != "t1" || len(got[0].Keys) != 2 {
		t.Fatalf("RotateDue: %+v, %v", got, err)
	}
	// A second node running the same schedule right after finds nothing due.
	if again, err := b.RotateDue(ctx, 30*24*time.Hour); err != nil || len(again) != 0 {
		t.Fatalf("second node rotated again: %+v, %v", again, err)
	}
	ct, _ := a.Encrypt(ctx, "t1", PurposePersonalData, []byte("new"), nil)
	if KeyID(ct) == KeyID(old) {
		t.Fatal("new writes still use the old primary")
	}
	if pt, err := a.Decrypt(ctx, "t1", PurposePersonalData, old, nil); err != nil || string(pt) != "old" {
		t.Fatalf("old ciphertext after rotation: %q %v", pt, err)
	}
	// A destroyed keyset is not brought back by the schedule.
	if err := a.Destroy(ctx, "t2", PurposePersonalData); err != nil {
		t.Fatal(err)
	}
	now = now.Add(365 * 24 * time.Hour)
	if _, err := a.RotateDue(ctx, 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetKeyset(ctx, "t2", PurposePersonalData); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("destroyed keyset recreated: %v", err)
	}
	if _, err := a.RotateDue(ctx, 0); err == nil {
		t.Fatal("zero interval accepted")
	}
}

func TestVault_CacheExpiresWithInjectedClock(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	kek, _ := NewLocalKEK(randomMaster(t))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a, _ := New(context.Background(), kek, st, Options{Clock: func() time.Time { return now }, CacheTTL: time.Minute})
	b, _ := New(context.Background(), kek, st, Options{})
	ctx := context.Background()
	first, _ := a.Encrypt(ctx, "", PurposeTOTP, []byte("1"), nil)
	if _, err := b.Rotate(ctx, "", PurposeTOTP); err != nil {
		t.Fatal(err)
	}
	if ct, _ := a.Encrypt(ctx, "", PurposeTOTP, []byte("2"), nil); KeyID(ct) != KeyID(first) {
		t.Fatal("cache dropped before its TTL")
	}
	now = now.Add(2 * time.Minute)
	if ct, _ := a.Encrypt(ctx, "", PurposeTOTP, []byte("3"), nil); KeyID(ct) == KeyID(first) {
		t.Fatal("expired cache still encrypts under the old primary")
	}
}

// BenchmarkTinkAESGCMPrimitive is Tink's AES-GCM primitive alone (one key, output prefix, the
// vault's full associated data): the floor the vault's fast path can reach.
func BenchmarkTinkAESGCMPrimitive(b *testing.B) {
	v := benchVault(b)
	ctx := context.Background()
	tenant := "0190f3a4-aaaa-7000-8000-000000000001"
	c, err := v.primitive(ctx, tenant, PurposePersonalData, true)
	if err != nil || c.primary == nil {
		b.Fatal(err, "no fast path")
	}
	ad := append(lengthPrefixed("tutela/data/v1", tenant, PurposePersonalData), AAD("users", "phone", tenant)...)
	b.ReportAllocs()
	for b.Loop() {
		ct, err := c.primary.Encrypt(benchPlain, ad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.primary.Decrypt(ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}

// The cryptographic inventory (docs/crypto.md, ASVS 11.1.2) must name every keyset purpose.
func TestCryptoInventory_ListsEveryPurpose(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/crypto.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Purposes {
		if !strings.Contains(string(b), "keyset `"+p+"`") {
			t.Errorf("docs/crypto.md has no row for keyset %q", p)
		}
	}
}

// countingKEK counts unwraps (Decrypt) and holds each briefly, as a remote KMS would.
type countingKEK struct {
	KEK
	unwraps atomic.Int32
}

func (k *countingKEK) Decrypt(ct, aad []byte) ([]byte, error) {
	k.unwraps.Add(1)
	time.Sleep(20 * time.Millisecond) // a KMS round trip, so concurrent misses overlap
	return k.KEK.Decrypt(ct, aad)
}

// When a cached keyset expires under load, the waiting operations share one unwrap: the KMS is
// not called once per operation.
func TestVault_ConcurrentMissesUnwrapOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	local, _ := NewLocalKEK(randomMaster(t))
	kek := &countingKEK{KEK: local}
	st := newMemStore()
	v, err := New(ctx, kek, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := v.Encrypt(ctx, "t1", PurposeTOTP, []byte("seed"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Invalidate()
	kek.unwraps.Store(0)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := v.Decrypt(ctx, "t1", PurposeTOTP, ct, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := kek.unwraps.Load(); n != 1 {
		t.Fatalf("%d unwraps for 100 concurrent decryptions after expiry, want 1", n)
	}
}

// Outdated answers for one keyset: another tenant's rows under old keys do not block retiring
// this tenant's old keys, and do count for their own keyset.
func TestOutdated_CountsOnlyTheKeysetAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kek, _ := NewLocalKEK(randomMaster(t))
	v, err := New(ctx, kek, newMemStore(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := &memSource{}
	for i, tenant := range []string{"a", "b"} {
		ct, err := v.Encrypt(ctx, tenant, PurposePersonalData, []byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		src.items = append(src.items, RewrapItem{ID: fmt.Sprint(i), TenantID: tenant, Purpose: PurposePersonalData, Ciphertext: ct})
	}
	if _, err := v.Rotate(ctx, "b", PurposePersonalData); err != nil {
		t.Fatal(err)
	}
	if n, err := v.Outdated(ctx, src, "a", PurposePersonalData); err != nil || n != 0 {
		t.Fatalf("tenant a: %d, %v; want 0 (b's backlog is not a's)", n, err)
	}
	if n, err := v.Outdated(ctx, src, "b", PurposePersonalData); err != nil || n != 1 {
		t.Fatalf("tenant b: %d, %v; want 1", n, err)
	}
}
