package mfa_test

import (
	"errors"
	"testing"

	"github.com/descope/virtualwebauthn"

	"tutela/identity/identitytest"
	"tutela/mfa"
	"tutela/sqlstore"
)

var errRefused = errors.New("guard refused")

// A guard that refuses stops the activation and rolls back everything it wrote: the TOTP factor
// stays pending and its time step unspent, no passkey is stored; the same enrolment then
// succeeds once the guard allows it.
func TestGuard_RefusalLeavesNoFactor(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		e, err := k.svc.BeginTOTP(ctx, k.tenant.ID, k.user.ID, "ana@example.org", "Tutela")
		if err != nil {
			t.Fatal(err)
		}
		c := code(t, e.Secret.Reveal(), k.clock.Now())
		refuse := func(*sqlstore.Tx) error { return errRefused }
		if err := k.svc.ConfirmTOTP(ctx, k.tenant.ID, k.user.ID, e.FactorID, c, refuse); !errors.Is(err, errRefused) {
			t.Fatalf("refused guard: %v", err)
		}
		// A wrong code never reaches the guard.
		called := false
		spy := func(*sqlstore.Tx) error { called = true; return nil }
		mustIs(t, k.svc.ConfirmTOTP(ctx, k.tenant.ID, k.user.ID, e.FactorID, "000000", spy), mfa.ErrInvalidCode)
		if called {
			t.Fatal("guard called for a wrong code")
		}
		if has, _ := k.svc.HasActiveFactor(ctx, k.tenant.ID, k.user.ID); has {
			t.Fatal("factor active after a refused guard")
		}
		if err := k.svc.ConfirmTOTP(ctx, k.tenant.ID, k.user.ID, e.FactorID, c, spy); err != nil || !called {
			t.Fatalf("same code after the refusal: %v (guard called %v)", err, called)
		}

		opts, err := k.svc.BeginWebAuthnRegistration(ctx, k.tenant.ID, k.user.ID, k.user.Email, "Ana")
		if err != nil {
			t.Fatal(err)
		}
		ao, err := virtualwebauthn.ParseAttestationOptions(string(opts))
		if err != nil {
			t.Fatal(err)
		}
		resp := virtualwebauthn.CreateAttestationResponse(vrp, virtualwebauthn.NewAuthenticator(), identitytest.NewPasskeyCredential(t), *ao)
		if _, err := k.svc.FinishWebAuthnRegistration(ctx, k.tenant.ID, k.user.ID, "laptop", []byte(resp), refuse); !errors.Is(err, errRefused) {
			t.Fatalf("refused guard: %v", err)
		}
		fs, err := k.svc.Factors(ctx, k.tenant.ID, k.user.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.Type == mfa.TypeWebAuthn {
				t.Fatal("passkey stored despite the refused guard")
			}
		}
	})
}
