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

// Two schemes over one keyset: a token of one is never accepted by the other (the domain label
// and the prefix both bind it), and each checks its own tokens.
func TestScheme_TokensDoNotCrossSchemes(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: clock.Now})
	v := sqltest.AttachVaultAt(t, db, clock.Now)
	bad := tutela.Errorf(tutela.ENOTFOUND, "not found")
	a := linktoken.Scheme{Prefix: "aa1.", Label: "a\x00", Purpose: vault.PurposeFileLinks, Bad: bad, Expired: "gone"}
	b := linktoken.Scheme{Prefix: "aa1.", Label: "b\x00", Purpose: vault.PurposeFileLinks, Bad: bad, Expired: "gone"}
	ctx := context.Background()
	id := tutela.NewID()
	tok, keyID, exp, err := a.Sign(ctx, v, id, clock.Now().Add(time.Hour+time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(clock.Now().Add(time.Hour)) {
		t.Fatalf("expiry not kept to the second: %v", exp)
	}
	c, err := a.Verify(ctx, v, tok, clock.Now())
	if err != nil || c.ID != id || c.KeyID != keyID || !c.ExpiresAt.Equal(exp) {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	if _, err := b.Verify(ctx, v, tok, clock.Now()); err != bad {
		t.Fatalf("another scheme's label accepted the token: %v", err)
	}
	if _, err := a.Verify(ctx, v, tok, exp); tutela.ErrorCode(err) != tutela.ELINKGONE {
		t.Fatalf("at its expiry: %v", err)
	}
	if _, _, _, err := a.Sign(ctx, v, "not-an-id", exp); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("a malformed ID was signed: %v", err)
	}
}
