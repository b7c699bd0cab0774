package linktoken_test

import (
	"context"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/linktoken"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// FuzzVerify: link tokens arrive in URLs from anyone. Verify never panics, and the only string
// it accepts is the token that Sign issued (any other input, a one-byte change included, is
// refused with the scheme's error or as expired).
func FuzzVerify(f *testing.F) {
	clock := clocktest.New(time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC))
	db := sqltest.Open(f, sqlstore.SQLite, sqlstore.Options{Clock: clock.Now})
	v := sqltest.AttachVaultAt(f, db, clock.Now)
	bad := tutela.Errorf(tutela.ENOTFOUND, "not found")
	s := linktoken.Scheme{Prefix: "fz1.", Label: "fuzz\x00", Purpose: vault.PurposeFileLinks, Bad: bad, Expired: "gone"}
	ctx := context.Background()
	id := tutela.NewID()
	tok, _, _, err := s.Sign(ctx, v, id, clock.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(tok[:len(tok)-1])
	f.Add("fz1.")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := s.Verify(ctx, v, in, clock.Now())
		if err == nil {
			if in != tok || c.ID != id {
				t.Fatalf("Verify accepted %q as %+v; only %q was issued", in, c, tok)
			}
			return
		}
		if err != bad && tutela.ErrorCode(err) != tutela.ELINKGONE {
			t.Fatalf("refused with an unexpected error: %v", err)
		}
	})
}
