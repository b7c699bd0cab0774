package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

var allAlgs = []Alg{EdDSA, ES256, RS256}

// newAlgsFixture is newFixture keeping keys for algs, the first one primary.
func newAlgsFixture(t testing.TB, algs ...Alg) *fixture {
	t.Helper()
	f := &fixture{clock: newFakeClock(), store: &countingStore{KeyStore: &MemKeyStore{}}, sealer: newSealer(t)}
	f.ring = f.node(t, algs...)
	return f
}

// node is another ring on f's store and clock, configured for algs (first primary).
func (f *fixture) node(t testing.TB, algs ...Alg) *Ring {
	t.Helper()
	cfg := testConfig(algs[0], f.clock)
	cfg.Algs = algs
	r, err := NewRing(context.Background(), cfg, f.store, f.sealer)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// kidsByAlg maps each published key's alg to its kids, newest first.
func kidsByAlg(t *testing.T, r *Ring) map[Alg][]string {
	t.Helper()
	out := map[Alg][]string{}
	for _, k := range r.PublicKeys() {
		out[Alg(k.Algorithm)] = append(out[Alg(k.Algorithm)], k.KeyID)
	}
	return out
}

func signingKID(t *testing.T, r *Ring, alg Alg) string {
	t.Helper()
	kid, _, err := r.SigningKey(alg)
	if err != nil {
		t.Fatalf("SigningKey(%s): %v", alg, err)
	}
	return kid
}

// idClaims are ID-token claims valid now.
func idClaims(f *fixture) map[string]any {
	now := f.clock.Now().Unix()
	return map[string]any{"iss": testIssuer, "sub": "user-1", "aud": "client-1", "iat": now, "exp": now + 300, "nonce": "n"}
}

// verifyWithJWKS checks tok as a relying party would: only with the published JWK Set.
func verifyWithJWKS(t *testing.T, r *Ring, tok string, alg Alg, typ string, now time.Time) error {
	t.Helper()
	b, err := r.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return err
	}
	h := parsed.Headers[0]
	if got := h.ExtraHeaders[jose.HeaderType]; got != typ {
		t.Errorf("typ = %v, want %s", got, typ)
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		return errors.New("kid not in the JWKS")
	}
	var c jwt.Claims
	if err := parsed.Claims(keys[0], &c); err != nil {
		return err
	}
	return c.Validate(jwt.Expected{Issuer: testIssuer, AnyAudience: jwt.Audience{"client-1"}, Time: now})
}

// TestRotate_EachAlgorithmOnItsOwnSchedule: algorithms rotate independently, a key's successor
// is the next key of its own algorithm (an RSA key added later does not end the EdDSA key's
// period), and a key of an algorithm dropped from the configuration signs no more but stays
// published until it retires.
func TestRotate_EachAlgorithmOnItsOwnSchedule(t *testing.T) {
	t.Parallel()
	f := newAlgsFixture(t, EdDSA, ES256)
	ctx := context.Background()
	ed1, es1 := signingKID(t, f.ring, EdDSA), signingKID(t, f.ring, ES256)
	if _, _, err := f.ring.SigningKey(RS256); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("RS256 not configured: err = %v, want ErrNoSigningKey", err)
	}

	// 12 h in, a node configured with RS256 too joins: its RSA key signs at once.
	f.clock.Add(12 * time.Hour)
	withRSA := f.node(t, EdDSA, ES256, RS256)
	rs1 := signingKID(t, withRSA, RS256)
	if err := f.ring.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if kidOf(t, f.issue(t)) != ed1 || signingKID(t, f.ring, EdDSA) != ed1 {
		t.Fatal("a new RS256 key ended the EdDSA key's signing period")
	}
	if got := kidsByAlg(t, f.ring); !slices.Equal(got[RS256], []string{rs1}) || !slices.Equal(got[EdDSA], []string{ed1}) {
		t.Fatalf("published keys after RS256 joined: %v", got)
	}

	// 23 h: EdDSA and ES256 are due, RS256 (11 h old) is not.
	f.clock.Add(11 * time.Hour)
	if err := withRSA.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	got := kidsByAlg(t, withRSA)
	if len(got[EdDSA]) != 2 || len(got[ES256]) != 2 || len(got[RS256]) != 1 {
		t.Fatalf("after rotation at 23 h: %v, want two EdDSA, two ES256, one RS256", got)
	}
	ed2, es2 := got[EdDSA][0], got[ES256][0]
	for alg, want := range map[Alg]string{EdDSA: ed1, ES256: es1, RS256: rs1} {
		if kid := signingKID(t, withRSA, alg); kid != want {
			t.Errorf("%s: pre-published successor signs before its activation", alg)
		}
	}
	f.clock.Add(59 * time.Minute)
	oldID, err := withRSA.SignJWT(ES256, "JWT", idClaims(f))
	if err != nil {
		t.Fatal(err)
	}
	if kidOf2(t, oldID) != es1 {
		t.Fatal("ES256 token not signed by the current key")
	}

	// 24 h: the successors sign; the ES256 ID token signed before still verifies.
	f.clock.Add(time.Minute)
	if signingKID(t, withRSA, EdDSA) != ed2 || signingKID(t, withRSA, ES256) != es2 || signingKID(t, withRSA, RS256) != rs1 {
		t.Fatal("successors did not take over at activation, or RS256 changed off schedule")
	}
	if err := verifyWithJWKS(t, withRSA, oldID, ES256, "JWT", f.clock.Now()); err != nil {
		t.Fatalf("ES256 token signed before rotation: %v", err)
	}
	// TTL + Leeway later the old keys leave the JWKS; RS256's only key stays.
	f.clock.Add(5*time.Minute + 30*time.Second)
	got = kidsByAlg(t, withRSA)
	if !slices.Equal(got[EdDSA], []string{ed2}) || !slices.Equal(got[ES256], []string{es2}) || !slices.Equal(got[RS256], []string{rs1}) {
		t.Fatalf("JWKS after the old keys retired: %v", got)
	}
	if err := verifyWithJWKS(t, withRSA, oldID, ES256, "JWT", f.clock.Now().Add(-5*time.Minute)); err == nil {
		t.Fatal("token of a retired key verifies against the JWKS")
	}

	// 35 h: RS256 is due (23 h after its activation).
	f.clock.Add(11*time.Hour - 5*time.Minute - 30*time.Second)
	if err := withRSA.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kidsByAlg(t, withRSA); len(got[RS256]) != 2 || len(got[EdDSA]) != 1 {
		t.Fatalf("after RS256 was due: %v", got)
	}

	// A node without RS256 in its configuration rotates nothing of it and will not sign with
	// it, yet publishes its keys (another node may still sign with them). By now the RS256
	// successor signs and rs1 has left the JWKS.
	f.clock.Add(time.Hour + 6*time.Minute)
	if err := f.ring.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.ring.SigningKey(RS256); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("unconfigured RS256 on the other node: err = %v", err)
	}
	if got := kidsByAlg(t, f.ring); !slices.Equal(got[RS256], []string{signingKID(t, withRSA, RS256)}) || got[RS256][0] == rs1 {
		t.Fatalf("the other node publishes RS256 keys %v, want the successor only", got[RS256])
	}
}

// kidOf2 is the kid of any compact JWS (kidOf parses access-token headers only).
func kidOf2(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := jose.ParseSignedCompact(tok, allJOSEAlgs)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Signatures[0].Header.KeyID
}

var allJOSEAlgs = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256}

// TestNewRing_ExistingSingleAlgorithmStoreGainsTheOthers: a store from before (one EdDSA key)
// keeps that key signing access tokens and gains an ES256 key.
func TestNewRing_ExistingSingleAlgorithmStoreGainsTheOthers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA) // Algs: [EdDSA]
	before := signingKID(t, f.ring, EdDSA)
	f.clock.Add(time.Hour)
	cfg := testConfig(EdDSA, f.clock)
	cfg.Algs = nil // the default
	r, err := NewRing(context.Background(), cfg, f.store, f.sealer)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Algs(); !slices.Equal(got, []Alg{EdDSA, ES256}) {
		t.Fatalf("Algs() = %v, want the default [EdDSA ES256]", got)
	}
	tok, _, err := r.Issue(context.Background(), Claims{Subject: "u", Audience: []string{testAudience}})
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, tok) != before {
		t.Fatal("access tokens changed key when ES256 was added")
	}
	if got := kidsByAlg(t, r); len(got[ES256]) != 1 || len(got[EdDSA]) != 1 {
		t.Fatalf("published keys %v", got)
	}
}

func TestConfig_PrimaryFirstAndAlwaysKept(t *testing.T) {
	t.Parallel()
	f := newAlgsFixture(t, ES256, EdDSA)
	if got := f.ring.Algs(); !slices.Equal(got, []Alg{ES256, EdDSA}) {
		t.Fatalf("Algs() = %v", got)
	}
	k := f.signingKey(t)
	if k.alg != ES256 || kidOf(t, f.issue(t)) != k.id {
		t.Fatal("access tokens are not signed with the primary algorithm")
	}
	// The primary is kept even when Algs leaves it out.
	cfg := testConfig(ES256, f.clock)
	cfg.Algs = []Alg{EdDSA, EdDSA}
	r, err := NewRing(context.Background(), cfg, &MemKeyStore{}, f.sealer)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Algs(); !slices.Equal(got, []Alg{ES256, EdDSA}) {
		t.Fatalf("Algs() = %v, want [ES256 EdDSA]", got)
	}
	for name, c := range map[string]Config{
		"RS256 primary":    {Alg: RS256},
		"HS256 in algs":    {Algs: []Alg{EdDSA, "HS256"}},
		"none in algs":     {Algs: []Alg{"none"}},
		"PS256 in algs":    {Algs: []Alg{"PS256"}},
		"lower-case rs256": {Algs: []Alg{"rs256"}},
	} {
		c.Issuer, c.Audience = testIssuer, []string{testAudience}
		store := &MemKeyStore{}
		if _, err := NewRing(context.Background(), c, store, f.sealer); err == nil || !strings.Contains(err.Error(), "alg") {
			t.Errorf("%s: err = %v, want an alg error", name, err)
		}
		if keys, _ := store.ListSigningKeys(context.Background()); len(keys) != 0 {
			t.Errorf("%s: invalid config wrote %d keys", name, len(keys))
		}
	}
}

func TestJWKS_PublishesEveryAlgorithm(t *testing.T) {
	t.Parallel()
	f := newAlgsFixture(t, allAlgs...)
	b, err := f.ring.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	kty := map[string]string{"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}
	seen := map[string]bool{}
	for _, k := range set.Keys {
		alg, _ := k["alg"].(string)
		seen[alg] = true
		if k["use"] != "sig" || k["kty"] != kty[alg] || k["kid"] != signingKID(t, f.ring, Alg(alg)) {
			t.Errorf("JWK %v: want use sig, kty %s, kid of the signing %s key", k, kty[alg], alg)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[private]; ok {
				t.Errorf("%s JWK has private member %q", alg, private)
			}
		}
	}
	if len(set.Keys) != 3 || !seen["EdDSA"] || !seen["ES256"] || !seen["RS256"] {
		t.Fatalf("JWKS %s: want one key per algorithm", b)
	}

	// PublicKeys is the same set, public halves only.
	pub := f.ring.PublicKeys()
	if len(pub) != len(set.Keys) {
		t.Fatalf("PublicKeys has %d keys, JWKS %d", len(pub), len(set.Keys))
	}
	for i, k := range pub {
		if !k.IsPublic() || !k.Valid() || k.Use != "sig" || k.KeyID != set.Keys[i]["kid"] || k.Algorithm != set.Keys[i]["alg"] {
			t.Errorf("PublicKeys[%d] = %s/%s, not the JWKS key %v", i, k.KeyID, k.Algorithm, set.Keys[i])
		}
	}
}

func TestSigningKey_RSAIs3072Bits(t *testing.T) {
	t.Parallel()
	f := newAlgsFixture(t, EdDSA, RS256)
	kid, priv, err := f.ring.SigningKey(RS256)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := priv.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("RS256 key is %T", priv)
	}
	if rk.N.BitLen() != 3072 {
		t.Fatalf("RS256 key has %d bits, want 3072", rk.N.BitLen())
	}
	for _, k := range f.ring.PublicKeys() {
		if k.KeyID == kid {
			if pk, ok := k.Key.(*rsa.PublicKey); !ok || pk.N.BitLen() != 3072 || !pk.Equal(rk.Public()) {
				t.Fatal("published RSA key is not the signing key's public half")
			}
			return
		}
	}
	t.Fatal("RS256 signing key not published")
}

// TestNewRing_RefusesWeakRSAKey: a stored RSA key weaker than the ring makes (a tampered or
// foreign row) does not load.
func TestNewRing_RefusesWeakRSAKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	weak, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	pub, _ := jose.JSONWebKey{Key: weak.Public(), KeyID: "weak", Algorithm: "RS256", Use: "sig"}.MarshalJSON()
	der, _ := x509.MarshalPKCS8PrivateKey(weak)
	sealed, err := f.sealer.Seal(der, sealAAD("weak", RS256))
	if err != nil {
		t.Fatal(err)
	}
	f.store.AddSigningKey(context.Background(), StoredKey{ID: "weak", Alg: RS256, Public: pub, SealedPrivate: sealed,
		CreatedAt: now, ActivateAt: now, RetireAt: now.Add(48 * time.Hour)})
	if _, err := NewRing(context.Background(), testConfig(EdDSA, f.clock), f.store, f.sealer); err == nil {
		t.Fatal("loaded a 2048-bit RSA key")
	}
}

// TestSignJWT_VerifiesWithGoJOSEAgainstPublishedJWK: an ID token of each algorithm verifies with
// an independent implementation using only the JWKS, and carries the requested typ.
func TestSignJWT_VerifiesWithGoJOSEAgainstPublishedJWK(t *testing.T) {
	t.Parallel()
	f := newAlgsFixture(t, allAlgs...)
	for _, alg := range allAlgs {
		for _, typ := range []string{"JWT", "logout+jwt"} {
			tok, err := f.ring.SignJWT(alg, typ, idClaims(f))
			if err != nil {
				t.Fatalf("%s: %v", alg, err)
			}
			if err := verifyWithJWKS(t, f.ring, tok, alg, typ, f.clock.Now()); err != nil {
				t.Fatalf("%s %s: %v", alg, typ, err)
			}
			parsed, _ := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if parsed.Headers[0].KeyID != signingKID(t, f.ring, alg) {
				t.Errorf("%s token names kid %s, not the signing key", alg, parsed.Headers[0].KeyID)
			}
			// Claims reach the token unchanged.
			var c map[string]any
			if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil || c["nonce"] != "n" || c["sub"] != "user-1" {
				t.Errorf("%s claims = %v", alg, c)
			}
		}
	}
	// An RS256 token presented under another algorithm's key does not verify.
	tok, _ := f.ring.SignJWT(RS256, "JWT", idClaims(f))
	parsed, _ := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	var c jwt.Claims
	for _, k := range f.ring.PublicKeys() {
		if k.Algorithm != string(RS256) {
			if err := parsed.Claims(k, &c); err == nil {
				t.Fatalf("RS256 token verified with the %s key", k.Algorithm)
			}
		}
	}
}

func TestSignJWT_RefusesMisuse(t *testing.T) {
	t.Parallel()
	f := newAlgsFixture(t, EdDSA, ES256)
	valid := idClaims(f)
	with := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{}
		for k, v := range valid {
			c[k] = v
		}
		mod(c)
		return c
	}
	cases := []struct {
		name   string
		alg    Alg
		typ    string
		claims any
		noKey  bool
	}{
		{"access-token typ", EdDSA, "at+jwt", valid, false},
		{"access-token media type", EdDSA, "application/AT+JWT", valid, false},
		{"empty typ", EdDSA, "", valid, false},
		{"typ with a quote", EdDSA, `JWT","alg":"none`, valid, false},
		{"typ with a space", EdDSA, "JWT x", valid, false},
		{"overlong typ", EdDSA, strings.Repeat("a", 65), valid, false},
		{"RS256 not configured", RS256, "JWT", valid, true},
		{"HS256", "HS256", "JWT", valid, true},
		{"none", "none", "JWT", valid, true},
		{"claims a string", EdDSA, "JWT", "sub", false},
		{"claims an array", EdDSA, "JWT", []string{"a"}, false},
		{"claims null", EdDSA, "JWT", nil, false},
		{"claims not encodable", EdDSA, "JWT", map[string]any{"f": func() {}}, false},
		{"no iss", EdDSA, "JWT", with(func(c map[string]any) { delete(c, "iss") }), false},
		{"empty iss", EdDSA, "JWT", with(func(c map[string]any) { c["iss"] = "" }), false},
		{"no aud", EdDSA, "JWT", with(func(c map[string]any) { delete(c, "aud") }), false},
		{"empty aud list", EdDSA, "JWT", with(func(c map[string]any) { c["aud"] = []string{} }), false},
		{"aud list with an empty member", EdDSA, "JWT", with(func(c map[string]any) { c["aud"] = []string{"a", ""} }), false},
		{"aud a number", EdDSA, "JWT", with(func(c map[string]any) { c["aud"] = 7 }), false},
		{"no exp", EdDSA, "JWT", with(func(c map[string]any) { delete(c, "exp") }), false},
		{"no iat", EdDSA, "JWT", with(func(c map[string]any) { delete(c, "iat") }), false},
		{"exp a string", EdDSA, "JWT", with(func(c map[string]any) { c["exp"] = "tomorrow" }), false},
		{"exp before iat", EdDSA, "JWT", with(func(c map[string]any) { c["exp"] = c["iat"].(int64) - 1 }), false},
		{"exp equals iat", EdDSA, "JWT", with(func(c map[string]any) { c["exp"] = c["iat"] }), false},
	}
	for _, tc := range cases {
		tok, err := f.ring.SignJWT(tc.alg, tc.typ, tc.claims)
		if err == nil {
			t.Errorf("%s: signed %s", tc.name, tok)
			continue
		}
		if tc.noKey != errors.Is(err, ErrNoSigningKey) {
			t.Errorf("%s: err = %v (ErrNoSigningKey expected: %v)", tc.name, err, tc.noKey)
		}
	}
	// The valid claims sign: the cases above failed for their own reason.
	if _, err := f.ring.SignJWT(EdDSA, "JWT", valid); err != nil {
		t.Fatal(err)
	}
}

// TestVerify_RefusesAlgorithmSwaps: the access-token verifier takes each key's algorithm from
// the key, and RSA keys (which sign ID tokens only) never verify an access token.
func TestVerify_RefusesAlgorithmSwaps(t *testing.T) {
	t.Parallel()
	f := newAlgsFixture(t, allAlgs...)
	ctx := context.Background()
	s := f.ring.snap.Load()
	now := f.clock.Now()
	ed, es, rs := s.signingKey(EdDSA, now), s.signingKey(ES256, now), s.signingKey(RS256, now)
	rsaPriv := rs.priv.(*rsa.PrivateKey)

	// joseSign signs the valid access-token claims with key under header alg/kid/typ through
	// go-jose, as an attacker holding (or guessing) that key would.
	joseSign := func(alg jose.SignatureAlgorithm, key any, kid, typ string) string {
		t.Helper()
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(sg).Claims(f.validClaims()).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rsaPubDER, _ := x509.MarshalPKIXPublicKey(rsaPriv.Public())
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPubDER})
	idToken, err := f.ring.SignJWT(EdDSA, "JWT", map[string]any{
		"iss": testIssuer, "sub": "user-1", "aud": []string{testAudience}, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Unix() + 300, "jti": "j", "tv": 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"RS256 header naming the EdDSA kid, signed by the ring's RSA key", joseSign(jose.RS256, rsaPriv, ed.id, "at+jwt"), ErrAlgorithm},
		{"RS256 header naming the ES256 kid, signed by the ring's RSA key", joseSign(jose.RS256, rsaPriv, es.id, "at+jwt"), ErrAlgorithm},
		{"RS256 by the ring's own RSA key: RSA never signs access tokens", joseSign(jose.RS256, rsaPriv, rs.id, "at+jwt"), ErrAlgorithm},
		{"EdDSA header naming the RSA kid", joseSign(jose.EdDSA, otherEd, rs.id, "at+jwt"), ErrAlgorithm},
		{"EdDSA header naming the ES256 kid, signed by the EdDSA key", joseSign(jose.EdDSA, ed.priv, es.id, "at+jwt"), ErrAlgorithm},
		{"ES256 header naming the EdDSA kid, signed by the ES256 key", joseSign(jose.ES256, es.priv.(*ecdsa.PrivateKey), ed.id, "at+jwt"), ErrAlgorithm},
		{"HS256 keyed with the RSA public key PEM", joseSign(jose.HS256, rsaPubPEM, rs.id, "at+jwt"), ErrAlgorithm},
		{"HS256 keyed with the RSA JWK JSON", joseSign(jose.HS256, []byte(rs.jwk), rs.id, "at+jwt"), ErrAlgorithm},
		{"HS256 keyed with the RSA modulus", joseSign(jose.HS256, rsaPriv.N.Bytes(), rs.id, "at+jwt"), ErrAlgorithm},
		{"HS256 keyed with the ES256 JWK JSON", joseSign(jose.HS256, []byte(es.jwk), es.id, "at+jwt"), ErrAlgorithm},
		{"ID token from SignJWT presented as an access token", idToken, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := f.ring.Verify(ctx, tc.token, testAudience); c != nil || !errors.Is(err, tc.want) {
				t.Fatalf("claims %v, err = %v, want %v", c, err, tc.want)
			}
		})
	}
	// The same claims signed properly by the EdDSA key verify: the refusals are the header's.
	if _, err := f.ring.Verify(ctx, joseSign(jose.EdDSA, ed.priv, ed.id, "at+jwt"), testAudience); err != nil {
		t.Fatalf("control token: %v", err)
	}
}
