package oidc_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"tutela"
	"tutela/oidc"
)

var dpopNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	dpopURL   = "https://tutela.test/v1/users/me"
	dpopToken = "eyJhbGciOiJFZERTQSJ9.access.token"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// goodClaims are the claims of a proof for GET dpopURL with dpopToken at dpopNow.
func goodClaims() map[string]any {
	return map[string]any{"jti": "e1j3V_bKic8-LAEB", "htm": "GET", "htu": dpopURL, "iat": dpopNow.Unix(), "ath": oidc.ATH(dpopToken)}
}

// signProof signs claims with go-jose, embedding the public key, as a DPoP client library does.
func signProof(t testing.TB, alg jose.SignatureAlgorithm, key any, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType(jose.ContentType(typ))
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawES256 builds a compact JWS with any header, signed ES256 by signer: the forger's tool.
func rawES256(t testing.TB, header, claims map[string]any, signer *ecdsa.PrivateKey) string {
	t.Helper()
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := b64(hb) + "." + b64(cb)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, signer, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

func publicJWK(t testing.TB, key any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func with(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestVerifyDPoP_AcceptsGoodProofEveryAlgorithm(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
	}{{jose.ES256, newECKey(t)}, {jose.EdDSA, edKey}, {jose.RS256, rsaKey}, {jose.PS256, rsaKey}} {
		t.Run(string(tc.alg), func(t *testing.T) {
			proof := signProof(t, tc.alg, tc.key, "dpop+jwt", goodClaims())
			jkt, jti, err := oidc.VerifyDPoP(proof, "GET", dpopURL, dpopToken, dpopNow)
			if err != nil {
				t.Fatal(err)
			}
			pub := jose.JSONWebKey{Key: tc.key.Public()}
			tp, _ := pub.Thumbprint(crypto.SHA256)
			if jkt != b64(tp) || jti != "e1j3V_bKic8-LAEB" {
				t.Fatalf("jkt %q jti %q, want %q", jkt, jti, b64(tp))
			}
		})
	}
}

// The thumbprint is RFC 7638's: SHA-256 of the required members in lexicographic order with no
// white space, computed here by hand rather than through go-jose.
func TestVerifyDPoP_ThumbprintIsRFC7638(t *testing.T) {
	t.Parallel()
	k := newECKey(t)
	jkt, _, err := oidc.VerifyDPoP(signProof(t, jose.ES256, k, "dpop+jwt", goodClaims()), "GET", dpopURL, dpopToken, dpopNow)
	if err != nil {
		t.Fatal(err)
	}
	x, y := make([]byte, 32), make([]byte, 32)
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	copy(x, raw[1:33])
	copy(y, raw[33:])
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + b64(x) + `","y":"` + b64(y) + `"}`))
	if jkt != b64(sum[:]) {
		t.Fatalf("jkt %q, want %q", jkt, b64(sum[:]))
	}
}

func TestVerifyDPoP_RefusesForgedProofs(t *testing.T) {
	t.Parallel()
	key, other := newECKey(t), newECKey(t)
	jwk := publicJWK(t, &key.PublicKey)
	header := map[string]any{"alg": "ES256", "typ": "dpop+jwt", "jwk": jwk}
	privJWK, _ := json.Marshal(jose.JSONWebKey{Key: key})
	var priv map[string]any
	_ = json.Unmarshal(privJWK, &priv)
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}

	// hs256 signs with HMAC under secret while the header shows jwk: with the public key as the
	// secret, this is the classic algorithm-confusion forgery.
	hs256 := func(jwk any, secret []byte) string {
		hb, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "dpop+jwt", "jwk": jwk})
		cb, _ := json.Marshal(goodClaims())
		in := b64(hb) + "." + b64(cb)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	none := func() string {
		hb, _ := json.Marshal(map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": jwk})
		cb, _ := json.Marshal(goodClaims())
		return b64(hb) + "." + b64(cb) + "."
	}
	good := goodClaims()

	for _, tc := range []struct {
		name        string
		proof       string
		method, url string
		token       string
		want        error
	}{
		{"wrong typ", rawES256(t, with(header, "typ", "JWT"), good, key), "", "", "", oidc.ErrDPoPType},
		{"no typ", rawES256(t, with(header, "typ", nil), good, key), "", "", "", oidc.ErrDPoPType},
		{"alg none", none(), "", "", "", oidc.ErrDPoPMalformed},
		{"HS256 keyed with the public jwk", hs256(jwk, elliptic.MarshalCompressed(elliptic.P256(), key.X, key.Y)), "", "", "", oidc.ErrDPoPMalformed},
		{"HS256 with symmetric jwk", hs256(map[string]any{"kty": "oct", "k": b64([]byte("0123456789abcdef"))}, []byte("0123456789abcdef")), "", "", "", oidc.ErrDPoPKey},
		{"private key in jwk", rawES256(t, with(header, "jwk", priv), good, key), "", "", "", oidc.ErrDPoPKey},
		{"symmetric jwk under ES256", rawES256(t, with(header, "jwk", map[string]any{"kty": "oct", "k": b64([]byte("k"))}), good, key), "", "", "", oidc.ErrDPoPKey},
		{"no jwk", rawES256(t, with(header, "jwk", nil), good, key), "", "", "", oidc.ErrDPoPKey},
		{"RSA key under 2048 bits", signProof(t, jose.RS256, rsaSmall, "dpop+jwt", good), "", "", "", oidc.ErrDPoPKey},
		{"signed by another key", rawES256(t, header, good, other), "", "", "", oidc.ErrDPoPSignature},
		{"tampered payload", tamper(rawES256(t, header, good, key)), "", "", "", oidc.ErrDPoPSignature},
		{"wrong htm", rawES256(t, header, good, key), "POST", "", "", oidc.ErrDPoPMethod},
		{"htm lower case", rawES256(t, header, with(good, "htm", "get"), key), "", "", "", oidc.ErrDPoPMethod},
		{"wrong htu path", rawES256(t, header, with(good, "htu", "https://tutela.test/v1/users"), key), "", "", "", oidc.ErrDPoPURL},
		{"wrong htu host", rawES256(t, header, with(good, "htu", "https://evil.test/v1/users/me"), key), "", "", "", oidc.ErrDPoPURL},
		{"wrong htu scheme", rawES256(t, header, with(good, "htu", "http://tutela.test/v1/users/me"), key), "", "", "", oidc.ErrDPoPURL},
		{"wrong htu port", rawES256(t, header, with(good, "htu", "https://tutela.test:8443/v1/users/me"), key), "", "", "", oidc.ErrDPoPURL},
		{"htu with userinfo", rawES256(t, header, with(good, "htu", "https://a@tutela.test/v1/users/me"), key), "", "", "", oidc.ErrDPoPURL},
		{"relative htu", rawES256(t, header, with(good, "htu", "/v1/users/me"), key), "", "", "", oidc.ErrDPoPURL},
		{"stale iat", rawES256(t, header, with(good, "iat", dpopNow.Add(-61*time.Second).Unix()), key), "", "", "", oidc.ErrDPoPTime},
		{"future iat", rawES256(t, header, with(good, "iat", dpopNow.Add(61*time.Second).Unix()), key), "", "", "", oidc.ErrDPoPTime},
		{"missing iat", rawES256(t, header, with(good, "iat", nil), key), "", "", "", oidc.ErrDPoPTime},
		{"iat a string", rawES256(t, header, with(good, "iat", "1772366400"), key), "", "", "", oidc.ErrDPoPClaims},
		{"missing jti", rawES256(t, header, with(good, "jti", nil), key), "", "", "", oidc.ErrDPoPJTI},
		{"jti over 64", rawES256(t, header, with(good, "jti", strings.Repeat("j", 65)), key), "", "", "", oidc.ErrDPoPJTI},
		{"wrong ath", rawES256(t, header, with(good, "ath", oidc.ATH("another token")), key), "", "", "", oidc.ErrDPoPATH},
		{"missing ath", rawES256(t, header, with(good, "ath", nil), key), "", "", "", oidc.ErrDPoPATH},
		{"ath without a token", rawES256(t, header, good, key), "", "", "-", oidc.ErrDPoPATH},
		{"oversized", rawES256(t, header, with(good, "pad", strings.Repeat("p", oidc.MaxDPoPProof)), key), "", "", "", oidc.ErrDPoPTooLarge},
		{"two parts", "a.b", "", "", "", oidc.ErrDPoPMalformed},
		{"empty", "", "", "", "", oidc.ErrDPoPMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, u, tok := "GET", dpopURL, dpopToken
			if tc.method != "" {
				method = tc.method
			}
			if tc.url != "" {
				u = tc.url
			}
			if tc.token == "-" {
				tok = ""
			}
			jkt, jti, err := oidc.VerifyDPoP(tc.proof, method, u, tok, dpopNow)
			if !errors.Is(err, tc.want) || !errors.Is(err, oidc.ErrInvalidDPoPProof) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED || jkt != "" || jti != "" {
				t.Fatalf("code %q jkt %q jti %q", tutela.ErrorCode(err), jkt, jti)
			}
		})
	}
}

// tamper flips the payload to one the signature was not made over.
func tamper(proof string) string {
	p := strings.Split(proof, ".")
	cb, _ := json.Marshal(with(goodClaims(), "jti", "another"))
	return p[0] + "." + b64(cb) + "." + p[2]
}

// htu compares normalised (RFC 3986 §6.2.2-6.2.3) and ignores query and fragment on both
// sides (RFC 9449 §4.3 check 9).
func TestVerifyDPoP_HTUNormalisedQueryIgnored(t *testing.T) {
	t.Parallel()
	key := newECKey(t)
	header := map[string]any{"alg": "ES256", "typ": "dpop+jwt", "jwk": publicJWK(t, &key.PublicKey)}
	for _, tc := range []struct{ htu, request string }{
		{dpopURL, dpopURL + "?page=2&q=x"},
		{dpopURL, dpopURL + "#frag"},
		{dpopURL + "?other=1", dpopURL + "?page=2"},
		{"HTTPS://Tutela.TEST/v1/users/me", dpopURL},
		{"https://tutela.test:443/v1/users/me", dpopURL},
		{dpopURL, "https://tutela.test:443/v1/users/me"},
		{"http://tutela.test:80/", "http://tutela.test"},
		{"https://[::1]:8443/x", "https://[::1]:8443/x?y"},
	} {
		proof := rawES256(t, header, with(goodClaims(), "htu", tc.htu), key)
		if _, _, err := oidc.VerifyDPoP(proof, "GET", tc.request, dpopToken, dpopNow); err != nil {
			t.Errorf("htu %q request %q: %v", tc.htu, tc.request, err)
		}
	}
}

func TestVerifyDPoP_LeewayAndNonceConfigurable(t *testing.T) {
	t.Parallel()
	key := newECKey(t)
	header := map[string]any{"alg": "ES256", "typ": "dpop+jwt", "jwk": publicJWK(t, &key.PublicKey)}
	old := rawES256(t, header, with(goodClaims(), "iat", dpopNow.Add(-50*time.Second).Unix()), key)
	if _, _, err := oidc.VerifyDPoP(old, "GET", dpopURL, dpopToken, dpopNow); err != nil {
		t.Fatalf("within the default leeway: %v", err)
	}
	strict := oidc.DPoPVerifier{Leeway: 10 * time.Second}
	if _, _, err := strict.Verify(old, "GET", dpopURL, dpopToken, dpopNow); !errors.Is(err, oidc.ErrDPoPTime) {
		t.Fatalf("10 s leeway: %v", err)
	}
	if strict.ReplayWindow() != 20*time.Second || (oidc.DPoPVerifier{}).ReplayWindow() != 2*oidc.DPoPLeeway {
		t.Fatal("replay window must cover iat leeway on both sides")
	}
	withNonce := oidc.DPoPVerifier{Nonce: "n-123"}
	if _, _, err := withNonce.Verify(rawES256(t, header, goodClaims(), key), "GET", dpopURL, dpopToken, dpopNow); !errors.Is(err, oidc.ErrDPoPNonce) {
		t.Fatalf("missing nonce: %v", err)
	}
	if _, _, err := withNonce.Verify(rawES256(t, header, with(goodClaims(), "nonce", "n-124"), key), "GET", dpopURL, dpopToken, dpopNow); !errors.Is(err, oidc.ErrDPoPNonce) {
		t.Fatalf("wrong nonce: %v", err)
	}
	if _, _, err := withNonce.Verify(rawES256(t, header, with(goodClaims(), "nonce", "n-123"), key), "GET", dpopURL, dpopToken, dpopNow); err != nil {
		t.Fatalf("right nonce: %v", err)
	}
}

// At the token endpoint no access token is presented and the proof carries no ath.
func TestVerifyDPoP_TokenEndpointProofWithoutATH(t *testing.T) {
	t.Parallel()
	key := newECKey(t)
	claims := with(with(goodClaims(), "ath", nil), "htm", "POST")
	claims["htu"] = "https://tutela.test/t/acme/oauth/token"
	proof := signProof(t, jose.ES256, key, "dpop+jwt", claims)
	if _, _, err := oidc.VerifyDPoP(proof, "POST", "https://tutela.test/t/acme/oauth/token", "", dpopNow); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkVerifyDPoP(b *testing.B) {
	key := newECKey(b)
	proof := signProof(b, jose.ES256, key, "dpop+jwt", goodClaims())
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := oidc.VerifyDPoP(proof, "GET", dpopURL, dpopToken, dpopNow); err != nil {
			b.Fatal(err)
		}
	}
}
