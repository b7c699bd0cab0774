package mfa_test

import (
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"tutela"
	"tutela/identity/identitytest"
	"tutela/mfa"
)

var vrp = virtualwebauthn.RelyingParty{ID: rp.ID, Name: rp.Name, Origin: rp.Origin}

// register runs a full registration ceremony with a software authenticator that signs a real
// packed attestation, and returns the factor ID.
func register(t *testing.T, k *kit, auth virtualwebauthn.Authenticator, cred virtualwebauthn.Credential, name string) string {
	t.Helper()
	opts, err := k.svc.BeginWebAuthnRegistration(ctx, k.tenant.ID, k.user.ID, k.user.Email, "Ana")
	if err != nil {
		t.Fatal(err)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts))
	if err != nil {
		t.Fatalf("options %s: %v", opts, err)
	}
	resp := virtualwebauthn.CreateAttestationResponse(vrp, auth, cred, *ao)
	id, err := k.svc.FinishWebAuthnRegistration(ctx, k.tenant.ID, k.user.ID, name, []byte(resp), nil)
	if err != nil {
		t.Fatalf("finish registration: %v", err)
	}
	return id
}

func login(t *testing.T, k *kit, auth virtualwebauthn.Authenticator, cred virtualwebauthn.Credential) (string, error) {
	t.Helper()
	resp := assertion(t, k, auth, cred)
	return k.svc.FinishWebAuthnLogin(ctx, k.tenant.ID, k.user.ID, []byte(resp))
}

func assertion(t *testing.T, k *kit, auth virtualwebauthn.Authenticator, cred virtualwebauthn.Credential) string {
	t.Helper()
	opts, err := k.svc.BeginWebAuthnLogin(ctx, k.tenant.ID, k.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	ao, err := virtualwebauthn.ParseAssertionOptions(string(opts))
	if err != nil {
		t.Fatalf("options %s: %v", opts, err)
	}
	return virtualwebauthn.CreateAssertionResponse(vrp, auth, cred, *ao)
}

func TestWebAuthn_RegisterAndLoginSeveralNamedPasskeys(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		auth := virtualwebauthn.NewAuthenticator()
		laptop := identitytest.NewPasskeyCredential(t)
		laptop.Counter = 1
		phone := identitytest.NewPasskeyCredential(t)
		idLaptop := register(t, k, auth, laptop, "laptop")
		idPhone := register(t, k, auth, phone, "phone")
		fs, err := k.svc.Factors(ctx, k.tenant.ID, k.user.ID)
		if err != nil || len(fs) != 2 || fs[0].Name != "laptop" || fs[1].Name != "phone" || !fs[0].Active {
			t.Fatalf("factors = %+v, %v", fs, err)
		}
		if ok, _ := k.svc.HasActiveFactor(ctx, k.tenant.ID, k.user.ID); !ok {
			t.Fatal("passkey not an active factor")
		}
		// The same authenticator credential cannot be registered twice.
		opts, _ := k.svc.BeginWebAuthnRegistration(ctx, k.tenant.ID, k.user.ID, k.user.Email, "Ana")
		ao, _ := virtualwebauthn.ParseAttestationOptions(string(opts))
		if len(ao.ExcludeCredentials) != 2 {
			t.Fatalf("existing passkeys not excluded: %v", ao.ExcludeCredentials)
		}
		_, err = k.svc.FinishWebAuthnRegistration(ctx, k.tenant.ID, k.user.ID, "again", []byte(virtualwebauthn.CreateAttestationResponse(vrp, auth, laptop, *ao)), nil)
		mustCode(t, err, tutela.ECONFLICT)

		laptop.Counter = 2
		auth.AddCredential(laptop)
		if id, err := login(t, k, auth, laptop); err != nil || id != idLaptop {
			t.Fatalf("login laptop = %q, %v", id, err)
		}
		// Authenticators without a counter (always 0) are accepted every time.
		for range 2 {
			if id, err := login(t, k, auth, phone); err != nil || id != idPhone {
				t.Fatalf("login phone = %q, %v", id, err)
			}
		}
		if k.auditActions(t)["mfa.webauthn_used"] != 3 || k.auditActions(t)["mfa.webauthn_registered"] != 2 {
			t.Fatalf("audit = %v", k.auditActions(t))
		}
	})
}

func TestWebAuthn_SignCountRegressionIsClone(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		auth := virtualwebauthn.NewAuthenticator()
		cred := identitytest.NewPasskeyCredential(t)
		cred.Counter = 5
		id := register(t, k, auth, cred, "key")
		cred.Counter = 10
		if _, err := login(t, k, auth, cred); err != nil {
			t.Fatal(err)
		}
		for _, c := range []uint32{10, 7} { // equal and lower: both regressions (WebAuthn §6.1.1)
			clone := cred
			clone.Counter = c
			_, err := login(t, k, auth, clone)
			mustIs(t, err, mfa.ErrClonedAuthenticator)
			mustCode(t, err, tutela.EINVALIDCREDENTIALS)
		}
		ev := k.auditEvents(t, "mfa.webauthn_cloned")
		if len(ev) != 2 || ev[0].Outcome != "failure" || ev[0].Details["factor_id"] != id {
			t.Fatalf("clone events = %+v", ev)
		}
		// The genuine authenticator, moving on, still works.
		cred.Counter = 11
		if _, err := login(t, k, auth, cred); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWebAuthn_UserVerificationRequired(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		auth := virtualwebauthn.NewAuthenticator()
		cred := identitytest.NewPasskeyCredential(t)
		register(t, k, auth, cred, "key")
		noUV := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserNotVerified: true})
		_, err := login(t, k, noUV, cred)
		mustIs(t, err, mfa.ErrWebAuthn)
		// Registration without UV is refused too.
		opts, _ := k.svc.BeginWebAuthnRegistration(ctx, k.tenant.ID, k.user.ID, k.user.Email, "Ana")
		ao, _ := virtualwebauthn.ParseAttestationOptions(string(opts))
		other := identitytest.NewPasskeyCredential(t)
		_, err = k.svc.FinishWebAuthnRegistration(ctx, k.tenant.ID, k.user.ID, "no uv", []byte(virtualwebauthn.CreateAttestationResponse(vrp, noUV, other, *ao)), nil)
		mustIs(t, err, mfa.ErrWebAuthn)
	})
}

func TestWebAuthn_CeremonySingleUseBoundAndExpiring(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		auth := virtualwebauthn.NewAuthenticator()
		cred := identitytest.NewPasskeyCredential(t)
		register(t, k, auth, cred, "key")
		resp := assertion(t, k, auth, cred)
		// Another user cannot finish this user's ceremony.
		bob := k.newUser(t, k.tenant.ID, "bob@example.org")
		_, err := k.svc.FinishWebAuthnLogin(ctx, k.tenant.ID, bob.ID, []byte(resp))
		mustIs(t, err, mfa.ErrWebAuthn)
		if _, err := k.svc.FinishWebAuthnLogin(ctx, k.tenant.ID, k.user.ID, []byte(resp)); err != nil {
			t.Fatal(err)
		}
		// Replaying the same response: the ceremony is spent.
		_, err = k.svc.FinishWebAuthnLogin(ctx, k.tenant.ID, k.user.ID, []byte(resp))
		mustIs(t, err, mfa.ErrWebAuthn)
		// Too late.
		late := assertion(t, k, auth, cred)
		k.clock.Add(5*time.Minute + time.Second)
		_, err = k.svc.FinishWebAuthnLogin(ctx, k.tenant.ID, k.user.ID, []byte(late))
		mustIs(t, err, mfa.ErrWebAuthn)
		// Wrong origin (phishing site relaying the ceremony).
		evil := virtualwebauthn.RelyingParty{ID: rp.ID, Name: rp.Name, Origin: "https://tutela.test.evil.example"}
		opts, _ := k.svc.BeginWebAuthnLogin(ctx, k.tenant.ID, k.user.ID)
		ao, _ := virtualwebauthn.ParseAssertionOptions(string(opts))
		_, err = k.svc.FinishWebAuthnLogin(ctx, k.tenant.ID, k.user.ID, []byte(virtualwebauthn.CreateAssertionResponse(evil, auth, cred, *ao)))
		mustIs(t, err, mfa.ErrWebAuthn)
		// Garbage.
		_, err = k.svc.FinishWebAuthnLogin(ctx, k.tenant.ID, k.user.ID, []byte(`{"id":"x"}`))
		mustIs(t, err, mfa.ErrWebAuthn)
		// A user without passkeys cannot begin.
		_, err = k.svc.BeginWebAuthnLogin(ctx, k.tenant.ID, bob.ID)
		mustCode(t, err, tutela.EINVALID)
	})
}

func TestWebAuthn_ForgedSignatureRefused(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		auth := virtualwebauthn.NewAuthenticator()
		cred := identitytest.NewPasskeyCredential(t)
		register(t, k, auth, cred, "key")
		// Same credential ID, different private key.
		forged := identitytest.NewPasskeyCredential(t)
		forged.ID = cred.ID
		_, err := login(t, k, auth, forged)
		mustIs(t, err, mfa.ErrWebAuthn)
	})
}
