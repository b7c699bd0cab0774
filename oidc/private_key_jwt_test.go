package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"tutela"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
)

// A relying party authenticating with private_key_jwt (RFC 7523) exchanges its code with an
// ES256 assertion by its registered key, audience the issuer; an assertion by another key, a
// replayed one, or none at all is a failed client authentication: 401 invalid_client.
func TestPrivateKeyJWT_RelyingPartyExchangesWithItsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	tn, _ := e.Seed(t, "acme", "ana@example.org", pw)
	r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{AuthMethod: sqlstore.PrivateKeyJWT})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, Algorithm: "ES256", Use: "sig"})
	var kid string
	if err := e.DB.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		kid, err = tx.OIDCClients(tn.ID).AddKey(ctx, r.client.ID, "", pub)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	issuer := e.URL + "/t/acme"
	assertion := func(k *ecdsa.PrivateKey, kid, aud string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		b, _ := json.Marshal(map[string]any{"iss": r.client.ID, "sub": r.client.ID, "aud": aud, "jti": tutela.RandomToken(12),
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
		sig, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := sig.CompactSerialize()
		return out
	}
	sess := e.SignIn(t, "acme", "ana@example.org", pw)
	exchange := func(a string) (int, map[string]any) {
		v := oauth2.GenerateVerifier()
		q := r.signIn(t, tn.ID, sess, nil, oauth2.S256ChallengeOption(v))
		form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {r.conf.RedirectURL},
			"code_verifier": {v}, "client_id": {r.client.ID}}
		if a != "" {
			form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			form.Set("client_assertion", a)
		}
		return tokenRequest(t, issuer+"/oauth/token", form, "")
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, a := range map[string]string{
		"no assertion":         "",
		"another key":          assertion(other, kid, issuer),
		"another tenant's aud": assertion(key, kid, e.URL+"/t/other"),
	} {
		if st, out := exchange(a); st != 401 || out["error"] != "invalid_client" {
			t.Errorf("%s: %d %v", name, st, out)
		}
	}
	good := assertion(key, kid, issuer)
	if st, out := exchange(good); st != 200 || out["id_token"] == nil {
		t.Fatalf("its own key: %d %v", st, out)
	}
	if st, out := exchange(good); st != 401 {
		t.Fatalf("a replayed assertion: %d %v", st, out)
	}
}
