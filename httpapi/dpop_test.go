package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"tutela"
	"tutela/identity/token"
	"tutela/oidc"
	"tutela/sqlstore/sqltest"
)

// dpopClient is a public client holding a DPoP key.
type dpopClient struct {
	key *ecdsa.PrivateKey
	jkt string
}

func newDPoPClient(t *testing.T) *dpopClient {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The thumbprint as the server computes it, from a proof it accepts.
	jkt, _, err := oidc.VerifyDPoP((&dpopClient{key: k}).proofAt(t, "GET", "https://x.test/", "", 0), "GET", "https://x.test/", "", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return &dpopClient{key: k, jkt: jkt}
}

// proofAt signs a proof for method and htu, bound to tok ("" for none), issued at unix time iat
// (0: the test's fixed time for the thumbprint probe).
func (c *dpopClient) proofAt(t testing.TB, method, htu, tok string, iat int64) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: c.key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"jti": tutela.RandomToken(12), "htm": method, "htu": htu, "iat": iat}
	if tok != "" {
		claims["ath"] = oidc.ATH(tok)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func (e *env) proof(t testing.TB, c *dpopClient, method, path, tok string) string {
	return c.proofAt(t, method, "https://tutela.test"+path, tok, e.clock.Now().Unix())
}

// dpopReq sends GET path with Authorization "<scheme> tok" and the given DPoP headers.
func (e *env) dpopReq(t testing.TB, path, scheme, tok string, proofs ...string) (*http.Response, []byte) {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Authorization", scheme+" "+tok)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	return rec.Result(), rec.Body.Bytes()
}

// boundToken is the signed-in user's access token re-issued bound to jkt, as the OpenID
// Provider issues it to a DPoP client (cnf.jkt, RFC 9449 §6.1).
func (e *env) boundToken(t *testing.T, accessToken, jkt string) string {
	t.Helper()
	ctx := context.Background()
	c, err := e.ids.Tokens.Verify(ctx, accessToken, "tutela")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := e.ids.Tokens.Issue(ctx, token.Claims{Subject: c.Subject, Audience: c.Audience, SessionID: c.SessionID,
		Tenant: c.Tenant, TokenVersion: c.TokenVersion, AMR: c.AMR, AuthTime: c.AuthTime, ACR: c.ACR, JKT: jkt})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// wantChallenge checks a 401 and that its DPoP challenge carries error (or none when "").
func wantChallenge(t *testing.T, name string, res *http.Response, body []byte, dpopError string) {
	t.Helper()
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
	ch := res.Header.Values("WWW-Authenticate")
	i := slices.IndexFunc(ch, func(s string) bool { return strings.HasPrefix(s, "DPoP ") })
	if i < 0 || !strings.Contains(ch[i], `algs="ES256 EdDSA`) {
		t.Fatalf("%s: challenges %q: no DPoP challenge with algs", name, ch)
	}
	if dpopError != "" && !strings.Contains(ch[i], `error="`+dpopError+`"`) {
		t.Fatalf("%s: DPoP challenge %q, want error=%q", name, ch[i], dpopError)
	}
	if !slices.Contains(ch, `Bearer realm="tutela"`) {
		t.Fatalf("%s: challenges %q: no Bearer challenge", name, ch)
	}
}

func TestDPoP_BoundTokenNeedsItsProof(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			e.seed(t, "acme", "ana@example.org", pw)
			g := e.login(t, "acme", "ana@example.org", pw, "")
			client, thief := newDPoPClient(t), newDPoPClient(t)
			tok := e.boundToken(t, g.AccessToken, client.jkt)

			good := e.proof(t, client, "GET", "/v1/auth/me", tok)
			if res, body := e.dpopReq(t, "/v1/auth/me", "DPoP", tok, good); res.StatusCode != 200 {
				t.Fatalf("good proof: %d %s", res.StatusCode, body)
			}
			// The query is no part of htu (RFC 9449 §4.3 check 9).
			if res, body := e.dpopReq(t, "/v1/auth/me?x=1", "DPoP", tok, e.proof(t, client, "GET", "/v1/auth/me", tok)); res.StatusCode != 200 {
				t.Fatalf("with a query: %d %s", res.StatusCode, body)
			}
			// An unbound token still works as a Bearer token.
			if res, body := e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken); res.StatusCode != 200 {
				t.Fatalf("unbound bearer: %d %s", res.StatusCode, body)
			}

			for _, tc := range []struct {
				name, scheme, tok string
				proofs            []string
				dpopError         string
			}{
				{"replayed proof", "DPoP", tok, []string{good}, "invalid_dpop_proof"},
				{"bound token as Bearer", "Bearer", tok, nil, "invalid_token"},
				{"bound token as Bearer with a proof", "Bearer", tok, []string{e.proof(t, client, "GET", "/v1/auth/me", tok)}, "invalid_token"},
				{"no proof", "DPoP", tok, nil, "invalid_dpop_proof"},
				{"two proofs", "DPoP", tok, []string{e.proof(t, client, "GET", "/v1/auth/me", tok), e.proof(t, client, "GET", "/v1/auth/me", tok)}, "invalid_dpop_proof"},
				{"proof by another key", "DPoP", tok, []string{e.proof(t, thief, "GET", "/v1/auth/me", tok)}, "invalid_token"},
				{"unbound token under DPoP", "DPoP", g.AccessToken, []string{e.proof(t, client, "GET", "/v1/auth/me", g.AccessToken)}, "invalid_token"},
				{"proof for another path", "DPoP", tok, []string{e.proof(t, client, "GET", "/v1/auth/sessions", tok)}, "invalid_dpop_proof"},
				{"proof for another method", "DPoP", tok, []string{e.proof(t, client, "POST", "/v1/auth/me", tok)}, "invalid_dpop_proof"},
				{"proof for another token", "DPoP", tok, []string{e.proof(t, client, "GET", "/v1/auth/me", g.AccessToken)}, "invalid_dpop_proof"},
				{"stale proof", "DPoP", tok, []string{client.proofAt(t, "GET", "https://tutela.test/v1/auth/me", tok, e.clock.Now().Unix()-120)}, "invalid_dpop_proof"},
				{"garbage proof", "DPoP", tok, []string{"a.b.c"}, "invalid_dpop_proof"},
			} {
				res, body := e.dpopReq(t, "/v1/auth/me", tc.scheme, tc.tok, tc.proofs...)
				wantChallenge(t, tc.name, res, body, tc.dpopError)
				if strings.Contains(string(body), tok) {
					t.Fatalf("%s: the token is echoed", tc.name)
				}
			}
			// A refused proof by another key was not recorded as used: it was never accepted,
			// and the rightful proof is unaffected by the thief's attempts.
			if res, body := e.dpopReq(t, "/v1/auth/me", "DPoP", tok, e.proof(t, client, "GET", "/v1/auth/me", tok)); res.StatusCode != 200 {
				t.Fatalf("good proof after the attacks: %d %s", res.StatusCode, body)
			}
			// No credential at all: both schemes are offered.
			res, body := e.req(t, "GET", "/v1/auth/me", "", "", nil)
			wantChallenge(t, "no credential", res, body, "")
		})
	}
}
