package mfa_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"tutela"
	"tutela/mfa"
	"tutela/sqlstore"
)

const tokenEndpoint = "https://tutela.test/v1/oauth/token"

func (k *kit) newServiceAccount(t *testing.T, tenantID, name string) *sqlstore.ServiceAccount {
	t.Helper()
	sa := &sqlstore.ServiceAccount{TenantID: tenantID, Name: name}
	if err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateServiceAccount(ctx, sa, sqlstore.HashToken(tutela.RandomToken(32)))
	}); err != nil {
		t.Fatal(err)
	}
	return sa
}

func publicJWK(t *testing.T, key crypto.PublicKey, kid string) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type assertionOpts struct {
	alg      jose.SignatureAlgorithm
	key      any
	kid      string
	iss, sub string
	aud      string
	exp, iat time.Time
	nbf      time.Time
	jti      string
}

func sign(t *testing.T, o assertionOpts) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if o.kid != "" {
		opts = opts.WithHeader("kid", o.kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: o.alg, Key: o.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := jwt.Claims{Issuer: o.iss, Subject: o.sub, Audience: jwt.Audience{o.aud}, ID: o.jti, IssuedAt: jwt.NewNumericDate(o.iat)}
	if !o.exp.IsZero() {
		c.Expiry = jwt.NewNumericDate(o.exp)
	}
	if !o.nbf.IsZero() {
		c.NotBefore = jwt.NewNumericDate(o.nbf)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClientAssertion_PrivateKeyJWT(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		sa := k.newServiceAccount(t, k.tenant.ID, "etl")
		ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
		ecKid, err := k.svc.RegisterClientKey(ctx, k.tenant.ID, sa.ID, publicJWK(t, &ecKey.PublicKey, "ec-1"))
		if err != nil || ecKid != "ec-1" {
			t.Fatalf("register EC = %q, %v", ecKid, err)
		}
		edKid, err := k.svc.RegisterClientKey(ctx, k.tenant.ID, sa.ID, publicJWK(t, edPub, ""))
		if err != nil || len(edKid) != 43 { // RFC 7638 thumbprint
			t.Fatalf("register Ed25519 = %q, %v", edKid, err)
		}
		now := k.clock.Now()
		good := func() assertionOpts {
			return assertionOpts{alg: jose.ES256, key: ecKey, kid: "ec-1", iss: sa.ClientID, sub: sa.ClientID, aud: tokenEndpoint,
				exp: now.Add(2 * time.Minute), iat: now, jti: tutela.RandomToken(16)}
		}
		verify := func(a string) error {
			got, err := k.svc.VerifyClientAssertion(ctx, a, tokenEndpoint)
			if err == nil && (got.ID != sa.ID || got.TenantID != k.tenant.ID) {
				t.Fatalf("authenticated as %+v", got)
			}
			return err
		}
		if err := verify(sign(t, good())); err != nil {
			t.Fatalf("valid ES256 assertion refused: %v", err)
		}
		ed := good()
		ed.alg, ed.key, ed.kid = jose.EdDSA, edKey, ""
		if err := verify(sign(t, ed)); err != nil {
			t.Fatalf("valid EdDSA assertion (no kid) refused: %v", err)
		}

		otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		hsKey := make([]byte, 32)
		other := k.newServiceAccount(t, k.tenant.ID, "other")
		attacks := map[string]func(o *assertionOpts){
			"wrong key":          func(o *assertionOpts) { o.key = otherKey },
			"wrong key no kid":   func(o *assertionOpts) { o.key, o.kid = otherKey, "" },
			"unknown kid":        func(o *assertionOpts) { o.kid = "nope" },
			"expired":            func(o *assertionOpts) { o.exp, o.iat = now.Add(-time.Minute), now.Add(-3*time.Minute) },
			"no exp":             func(o *assertionOpts) { o.exp = time.Time{} },
			"exp too far":        func(o *assertionOpts) { o.exp = now.Add(time.Hour) },
			"iat in the future":  func(o *assertionOpts) { o.iat = now.Add(2 * time.Minute) },
			"nbf in the future":  func(o *assertionOpts) { o.nbf = now.Add(2 * time.Minute) },
			"wrong aud":          func(o *assertionOpts) { o.aud = "https://evil.example/token" },
			"aud is issuer":      func(o *assertionOpts) { o.aud = "https://tutela.test" },
			"iss != sub":         func(o *assertionOpts) { o.sub = other.ClientID },
			"other client":       func(o *assertionOpts) { o.iss, o.sub = other.ClientID, other.ClientID },
			"unknown client":     func(o *assertionOpts) { o.iss, o.sub = "sa_nope", "sa_nope" },
			"no jti":             func(o *assertionOpts) { o.jti = "" },
			"HS256 shared":       func(o *assertionOpts) { o.alg, o.key = jose.HS256, hsKey },
			"ES256 header on Ed": func(o *assertionOpts) { o.key, o.kid = edKey, edKid; o.alg = jose.EdDSA; o.kid = "ec-1" },
		}
		for name, mutate := range attacks {
			o := good()
			mutate(&o)
			err := verify(sign(t, o))
			if err != mfa.ErrClientAuth {
				t.Errorf("%s: %v, want ErrClientAuth", name, err)
			}
		}
		// alg "none": go-jose cannot even produce it; craft it by hand.
		claims, _ := json.Marshal(map[string]any{"iss": sa.ClientID, "sub": sa.ClientID, "aud": tokenEndpoint,
			"exp": now.Add(time.Minute).Unix(), "jti": "n1"})
		b64 := base64.RawURLEncoding.EncodeToString
		for _, hdr := range []string{`{"alg":"none"}`, `{"alg":"none","kid":"ec-1"}`} {
			if err := verify(b64([]byte(hdr)) + "." + b64(claims) + "."); err != mfa.ErrClientAuth {
				t.Errorf("alg none: %v", err)
			}
		}
		for _, junk := range []string{"", "a.b.c", strings.Repeat("a", 9000)} {
			if err := verify(junk); err != mfa.ErrClientAuth {
				t.Errorf("junk %q: %v", junk[:min(len(junk), 10)], err)
			}
		}

		// Replay: the same jti twice, also concurrently.
		a := sign(t, good())
		if err := verify(a); err != nil {
			t.Fatal(err)
		}
		mustIs(t, verify(a), mfa.ErrAssertionReplayed)
		b := sign(t, good())
		var wins, replays atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				switch err := verify(b); err {
				case nil:
					wins.Add(1)
				case mfa.ErrAssertionReplayed:
					replays.Add(1)
				default:
					t.Errorf("unexpected: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || replays.Load() != 7 {
			t.Fatalf("concurrent: wins=%d replays=%d", wins.Load(), replays.Load())
		}
		// After expiry the jti is forgotten, but the assertion is expired too.
		k.clock.Add(10 * time.Minute)
		mustIs(t, verify(a), mfa.ErrClientAuth)

		// A disabled account cannot authenticate.
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE service_accounts SET status = 'disabled' WHERE id = $1`, sa.ID); err != nil {
			t.Fatal(err)
		}
		now = k.clock.Now()
		mustIs(t, verify(sign(t, good())), mfa.ErrClientAuth)
		if k.auditActions(t)["service_account.key_added"] != 2 {
			t.Fatalf("audit = %v", k.auditActions(t))
		}
	})
}

func TestClientAssertion_KeyRegistrationRules(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		sa := k.newServiceAccount(t, k.tenant.ID, "etl")
		rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		priv, _ := json.Marshal(jose.JSONWebKey{Key: ecKey, KeyID: "p"})
		hmac, _ := json.Marshal(map[string]string{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "h"})
		wrongAlg, _ := json.Marshal(jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "x", Algorithm: "EdDSA"})
		for name, jwk := range map[string][]byte{
			"RSA":          publicJWK(t, &rsaKey.PublicKey, "r"),
			"P-384":        publicJWK(t, &p384.PublicKey, "p384"),
			"private key":  priv,
			"HMAC oct":     hmac,
			"alg mismatch": wrongAlg,
			"junk":         []byte("{"),
		} {
			_, err := k.svc.RegisterClientKey(ctx, k.tenant.ID, sa.ID, jwk)
			if tutela.ErrorCode(err) != tutela.EINVALID {
				t.Errorf("%s key: %v, want invalid", name, err)
			}
		}
		// Tenant scoping: another tenant cannot add keys to this account.
		other := k.newTenant(t, "other")
		_, err := k.svc.RegisterClientKey(ctx, other.ID, sa.ID, publicJWK(t, &ecKey.PublicKey, "k"))
		mustCode(t, err, tutela.ENOTFOUND)
		if _, err := k.svc.RegisterClientKey(ctx, k.tenant.ID, sa.ID, publicJWK(t, &ecKey.PublicKey, "k")); err != nil {
			t.Fatal(err)
		}
		_, err = k.svc.RegisterClientKey(ctx, k.tenant.ID, sa.ID, publicJWK(t, &ecKey.PublicKey, "k"))
		mustCode(t, err, tutela.ECONFLICT)
	})
}
