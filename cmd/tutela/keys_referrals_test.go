package main

import (
	"context"
	"io"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/referrals"
	"tutela/vault"
)

// Retiring the referrals key after a rotation ends every referral it signed: referral tokens
// are never stored, so there is nothing to rewrap and retire must not refuse.
func TestKeysCommands_RetiringReferralsKeyEndsItsReferrals(t *testing.T) {
	environ := baseEnv(t)
	clock := clocktest.New(time.Now().UTC())
	withSigner := func(fn func(referrals.Signer)) {
		t.Helper()
		m, v, err := openKeys(&env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: io.Discard, clock: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		fn(referrals.Signer{Vault: v})
	}
	sign := func() (tok string) {
		t.Helper()
		withSigner(func(s referrals.Signer) {
			var err error
			if tok, err = s.Sign(context.Background(), &referrals.Referral{ID: tutela.NewID(), ExpiresAt: clock.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		})
		return tok
	}
	verify := func(tok string) (err error) {
		t.Helper()
		withSigner(func(s referrals.Signer) { _, err = s.Verify(context.Background(), tok, clock.Now()) })
		return err
	}
	old := sign()
	if _, _, err := runSubAt(t, environ, clock.Now, keysRotateCmd{Purpose: vault.PurposeReferrals}); err != nil {
		t.Fatal(err)
	}
	fresh := sign()
	if err := verify(old); err != nil {
		t.Fatalf("old referral before retirement: %v", err)
	}
	settleRotation(clock)
	if _, _, err := runSubAt(t, environ, clock.Now, keysRetireCmd{Purpose: vault.PurposeReferrals}); err != nil {
		t.Fatalf("retire referrals: %v", err)
	}
	if err := verify(old); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("old referral after retirement: %v", err)
	}
	if err := verify(fresh); err != nil {
		t.Fatalf("new referral after retirement: %v", err)
	}
}
