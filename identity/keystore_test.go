package identity

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"tutela"
	"tutela/clocktest"
	"tutela/identity/token"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// TestKeyStore_EveryAlgorithmSharedThroughBothStores: keys of every algorithm, RSA included,
// survive the database (both dialects), so a second node signs with and publishes the same
// keys, and an RS256 ID token from one node verifies against the other's JWKS.
func TestKeyStore_EveryAlgorithmSharedThroughBothStores(t *testing.T) {
	t.Parallel()
	algs := []token.Alg{token.EdDSA, token.ES256, token.RS256}
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			if d == sqlstore.Postgres {
				sqltest.RequirePostgres(t)
			}
			ctx := context.Background()
			db := sqltest.Open(t, d, sqlstore.Options{})
			sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{7}, vault.MasterKeySize)))
			if err != nil {
				t.Fatal(err)
			}
			clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			cfg := token.Config{Issuer: "https://tutela.test", Audience: []string{"tutela"}, Algs: algs, Clock: clock.Now}
			a, err := token.NewRing(ctx, cfg, KeyStore{DB: db}, sealer)
			if err != nil {
				t.Fatal(err)
			}
			b, err := token.NewRing(ctx, cfg, KeyStore{DB: db}, sealer)
			if err != nil {
				t.Fatal(err)
			}
			var rows []sqlstore.SigningKeyRow
			if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { rows, err = tx.SigningKeys(ctx); return err }); err != nil {
				t.Fatal(err)
			}
			var stored []string
			for _, r := range rows {
				stored = append(stored, r.Alg)
			}
			slices.Sort(stored)
			if !slices.Equal(stored, []string{"ES256", "EdDSA", "RS256"}) {
				t.Fatalf("stored algorithms %v, want one key each (the second node added none)", stored)
			}
			for _, alg := range algs {
				ka, _, errA := a.SigningKey(alg)
				kb, _, errB := b.SigningKey(alg)
				if errA != nil || errB != nil || ka != kb {
					t.Fatalf("%s: nodes sign with %s and %s (%v, %v)", alg, ka, kb, errA, errB)
				}
			}
			now := clock.Now().Unix()
			tok, err := a.SignJWT(token.RS256, "JWT", map[string]any{"iss": "https://tutela.test", "sub": "u", "aud": "rp",
				"iat": now, "exp": now + 60})
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				t.Fatal(err)
			}
			set := jose.JSONWebKeySet{Keys: b.PublicKeys()}
			keys := set.Key(parsed.Headers[0].KeyID)
			var c jwt.Claims
			if len(keys) != 1 || parsed.Claims(keys[0], &c) != nil || c.Subject != "u" {
				t.Fatal("RS256 token of node A does not verify with node B's published keys")
			}
		})
	}
}
