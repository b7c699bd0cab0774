package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
)

// MFATests is the second-factor part of the conformance suite: single use under concurrency
// (TOTP steps, recovery codes, WebAuthn ceremonies and counters, client-assertion jtis), tenant
// scoping of every MFA query, cascades, and an audit event for every change.
var MFATests = []Test{
	{"MFATOTPStepSingleUseUnderConcurrency", testMFATOTPStep},
	{"MFATenantScoping", testMFATenantScoping},
	{"MFARecoveryCodesReplacedAndSingleUse", testMFARecoveryCodes},
	{"MFAWebAuthnCeremonySingleUseAndExpiry", testMFACeremony},
	{"MFAWebAuthnSignCountOnlyMovesForward", testMFASignCount},
	{"MFAClientAssertionJTISingleUse", testMFAJTI},
	{"MFAServiceAccountKeysScoped", testMFAServiceAccountKeys},
	{"MFAUserDeleteCascades", testMFACascade},
	{"MFAMutationsAudited", testMFAAudited},
	{"ServiceAccountSecretCapHoldsUnderConcurrency", testSACapConcurrent},
}

// A service account holds at most MaxActiveSecrets active secrets, even when several requests
// add one at the same moment: the count and the insert must not interleave.
func testSACapConcurrent(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	for round := range 3 {
		sa := &sqlstore.ServiceAccount{TenantID: tn.ID, Name: fmt.Sprintf("etl-%d", round)}
		update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateServiceAccount(ctx, sa, []byte("h")) })
		const n = 6
		errs := make(chan error, n)
		start := make(chan struct{})
		for i := range n {
			go func() {
				<-start
				errs <- db.Update(ctx, func(tx *sqlstore.Tx) error {
					_, err := tx.AddServiceAccountSecret(ctx, tn.ID, sa.ID, []byte(fmt.Sprintf("h%d", i)))
					return err
				})
			}()
		}
		close(start)
		added := 0
		for range n {
			switch err := <-errs; tutela.ErrorCode(err) {
			case "":
				added++
			case tutela.ECONFLICT:
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if want := sqlstore.MaxActiveSecrets - 1; added != want { // the account was created with one
			t.Fatalf("round %d: %d secrets added concurrently, want %d", round, added, want)
		}
	}
}

func newTOTP(t *testing.T, db *sqlstore.DB, tenantID, userID string) *sqlstore.MFAFactor {
	t.Helper()
	f := &sqlstore.MFAFactor{ID: tutela.NewID(), UserID: userID, Name: "app"}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.MFA(tenantID).CreateTOTP(ctx, f, []byte("sealed")) })
	return f
}

func useStep(db *sqlstore.DB, tenantID, userID, factorID string, step int64, activate bool) (bool, error) {
	var ok bool
	err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		ok, err = tx.MFA(tenantID).UseTOTPStep(ctx, userID, factorID, step, activate)
		return err
	})
	return ok, err
}

func testMFATOTPStep(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	f := newTOTP(t, db, tn.ID, u.ID)
	// Pending: not usable as an active factor, only confirmable.
	if ok, _ := useStep(db, tn.ID, u.ID, f.ID, 100, false); ok {
		t.Fatal("pending factor used")
	}
	if ok, err := useStep(db, tn.ID, u.ID, f.ID, 100, true); !ok || err != nil {
		t.Fatalf("confirm = %v, %v", ok, err)
	}
	if ok, _ := useStep(db, tn.ID, u.ID, f.ID, 101, true); ok {
		t.Fatal("active factor confirmed twice")
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			ok, err := useStep(db, tn.ID, u.ID, f.ID, 101, false)
			if err != nil {
				t.Errorf("use: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("step 101 accepted %d times, want once", wins.Load())
	}
	for _, step := range []int64{101, 100, 50} {
		if ok, _ := useStep(db, tn.ID, u.ID, f.ID, step, false); ok {
			t.Fatalf("step %d accepted after 101", step)
		}
	}
	var got []*sqlstore.TOTPFactor
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.MFA(tn.ID).TOTPFactors(ctx, u.ID, ""); return })
	if len(got) != 1 || got[0].LastStep != 101 || !got[0].Active || !bytes.Equal(got[0].Sealed, []byte("sealed")) || got[0].LastUsedAt == nil {
		t.Fatalf("factor = %+v", got)
	}
	// A new enrolment replaces an abandoned pending one, never an active one.
	newTOTP(t, db, tn.ID, u.ID)
	p2 := newTOTP(t, db, tn.ID, u.ID)
	var fs []*sqlstore.MFAFactor
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { fs, err = tx.MFA(tn.ID).Factors(ctx, u.ID); return })
	if len(fs) != 2 || fs[0].ID != f.ID || fs[1].ID != p2.ID {
		t.Fatalf("factors = %+v", fs)
	}
}

func testMFATenantScoping(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "tenant-a"), createTenant(t, db, "tenant-b")
	ub := createUser(t, db, b.ID, "b@example.org")
	f := newTOTP(t, db, b.ID, ub.ID)
	update(t, db, func(tx *sqlstore.Tx) error {
		_, err := tx.MFA(b.ID).ReplaceRecoveryCodes(ctx, ub.ID, [][]byte{{1}})
		return err
	})
	// From tenant A, B's user and factor behave exactly like absent ones.
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		m := tx.MFA(a.ID)
		if fs, err := m.Factors(ctx, ub.ID); err != nil || len(fs) != 0 {
			t.Errorf("Factors across tenants = %v, %v", fs, err)
		}
		if ok, err := m.HasActiveFactor(ctx, ub.ID); err != nil || ok {
			t.Errorf("HasActiveFactor across tenants = %v, %v", ok, err)
		}
		if ts, err := m.TOTPFactors(ctx, ub.ID, f.ID); err != nil || len(ts) != 0 {
			t.Errorf("TOTPFactors across tenants = %v, %v", ts, err)
		}
		if ok, err := m.UseTOTPStep(ctx, ub.ID, f.ID, 5, true); err != nil || ok {
			t.Errorf("UseTOTPStep across tenants = %v, %v", ok, err)
		}
		if cs, err := m.RecoveryCodes(ctx, ub.ID); err != nil || len(cs) != 0 {
			t.Errorf("RecoveryCodes across tenants = %v, %v", cs, err)
		}
		if ws, err := m.WebAuthnCredentials(ctx, ub.ID); err != nil || len(ws) != 0 {
			t.Errorf("WebAuthnCredentials across tenants = %v, %v", ws, err)
		}
		if code := tutela.ErrorCode(m.RemoveFactor(ctx, ub.ID, f.ID)); code != tutela.ENOTFOUND {
			t.Errorf("RemoveFactor across tenants = %s", code)
		}
		if n, err := m.RemoveAllFactors(ctx, ub.ID); err != nil || n != 0 {
			t.Errorf("RemoveAllFactors across tenants = %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Writes for B's user through A's repository fail as not found (each in its own
	// transaction: a failed statement ends a PostgreSQL transaction).
	for name, fn := range map[string]func(m sqlstore.MFA, now time.Time) error{
		"CreateTOTP": func(m sqlstore.MFA, _ time.Time) error {
			return m.CreateTOTP(ctx, &sqlstore.MFAFactor{ID: tutela.NewID(), UserID: ub.ID}, nil)
		},
		"CreateCeremony": func(m sqlstore.MFA, now time.Time) error {
			return m.CreateCeremony(ctx, &sqlstore.WebAuthnCeremony{Challenge: "c", UserID: ub.ID, Kind: "login",
				Session: []byte("{}"), ExpiresAt: now.Add(time.Minute)})
		},
		"CreateWebAuthnCredential": func(m sqlstore.MFA, _ time.Time) error {
			return m.CreateWebAuthnCredential(ctx, &sqlstore.WebAuthnCredential{
				MFAFactor: sqlstore.MFAFactor{UserID: ub.ID, Name: "k"}, CredentialID: []byte("id"), Credential: []byte("{}")})
		},
		"ReplaceRecoveryCodes": func(m sqlstore.MFA, _ time.Time) error {
			_, err := m.ReplaceRecoveryCodes(ctx, ub.ID, [][]byte{{2}})
			return err
		},
	} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error { return fn(tx.MFA(a.ID), tx.Now()) })
		if tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("%s for another tenant's user = %v, want not_found", name, err)
		}
	}
	var fs []*sqlstore.MFAFactor
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { fs, err = tx.MFA(b.ID).Factors(ctx, ub.ID); return })
	if len(fs) != 2 {
		t.Fatalf("tenant B factors changed: %+v", fs)
	}
}

func testMFARecoveryCodes(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	replace := func(hs ...[]byte) {
		update(t, db, func(tx *sqlstore.Tx) error { _, err := tx.MFA(tn.ID).ReplaceRecoveryCodes(ctx, u.ID, hs); return err })
	}
	codes := func() []sqlstore.RecoveryCode {
		var cs []sqlstore.RecoveryCode
		_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { cs, err = tx.MFA(tn.ID).RecoveryCodes(ctx, u.ID); return })
		return cs
	}
	replace([]byte("h1"), []byte("h2"), []byte("h3"))
	old := codes()
	if len(old) != 3 {
		t.Fatalf("codes = %v", old)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_ = db.Update(ctx, func(tx *sqlstore.Tx) error {
				ok, n, err := tx.MFA(tn.ID).UseRecoveryCode(ctx, u.ID, old[0].ID)
				if ok {
					wins.Add(1)
					if n != 2 {
						t.Errorf("remaining = %d", n)
					}
				}
				return err
			})
		})
	}
	wg.Wait()
	if wins.Load() != 1 || len(codes()) != 2 {
		t.Fatalf("code used %d times, %d left", wins.Load(), len(codes()))
	}
	replace([]byte("n1"))
	now := codes()
	if len(now) != 1 || !bytes.Equal(now[0].Hash, []byte("n1")) {
		t.Fatalf("after replace: %v", now)
	}
	update(t, db, func(tx *sqlstore.Tx) error {
		if ok, _, err := tx.MFA(tn.ID).UseRecoveryCode(ctx, u.ID, old[1].ID); ok || err != nil {
			t.Errorf("voided code used: %v %v", ok, err)
		}
		return nil
	})
}

func testMFACeremony(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	v := createUser(t, db, tn.ID, "v@example.org")
	create := func(ch string) {
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.MFA(tn.ID).CreateCeremony(ctx, &sqlstore.WebAuthnCeremony{Challenge: ch, UserID: u.ID, Kind: "login",
				Session: []byte(`{"challenge":"` + ch + `"}`), ExpiresAt: clock.Now().Add(5 * time.Minute)})
		})
	}
	take := func(userID, kind, ch string) (*sqlstore.WebAuthnCeremony, error) {
		var c *sqlstore.WebAuthnCeremony
		err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) { c, err = tx.MFA(tn.ID).TakeCeremony(ctx, userID, kind, ch); return })
		return c, err
	}
	create("c1")
	_, err := take(v.ID, "login", "c1")
	mustCode(t, err, tutela.ENOTFOUND) // another user's
	_, err = take(u.ID, "register", "c1")
	mustCode(t, err, tutela.ENOTFOUND) // another kind
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if c, err := take(u.ID, "login", "c1"); err == nil {
				wins.Add(1)
				if string(c.Session) != `{"challenge":"c1"}` {
					t.Errorf("session = %s", c.Session)
				}
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("ceremony taken %d times", wins.Load())
	}
	create("c2")
	clock.Add(5 * time.Minute)
	_, err = take(u.ID, "login", "c2")
	mustCode(t, err, tutela.ENOTFOUND) // expired
}

func testMFASignCount(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	c := &sqlstore.WebAuthnCredential{MFAFactor: sqlstore.MFAFactor{UserID: u.ID, Name: "key"}, CredentialID: []byte("cred-1"),
		Credential: []byte(`{}`), SignCount: 5}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.MFA(tn.ID).CreateWebAuthnCredential(ctx, c) })
	// The same credential ID cannot be registered again, by anyone.
	w := createUser(t, db, tn.ID, "w@example.org")
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.MFA(tn.ID).CreateWebAuthnCredential(ctx, &sqlstore.WebAuthnCredential{MFAFactor: sqlstore.MFAFactor{UserID: w.ID, Name: "k"},
			CredentialID: []byte("cred-1"), Credential: []byte(`{}`)})
	}), tutela.ECONFLICT)
	use := func(n uint32) bool {
		var ok bool
		update(t, db, func(tx *sqlstore.Tx) (err error) {
			ok, err = tx.MFA(tn.ID).UseWebAuthnCredential(ctx, u.ID, c.ID, n, []byte(`{"n":1}`))
			return err
		})
		return ok
	}
	if use(5) || use(4) || !use(6) || use(6) || !use(100) {
		t.Fatal("sign count must strictly increase")
	}
	var got []*sqlstore.WebAuthnCredential
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.MFA(tn.ID).WebAuthnCredentials(ctx, u.ID); return })
	if len(got) != 1 || got[0].SignCount != 100 || string(got[0].Credential) != `{"n":1}` || !bytes.Equal(got[0].CredentialID, []byte("cred-1")) {
		t.Fatalf("credential = %+v", got)
	}
	// Counterless authenticators (always 0) stay usable.
	z := &sqlstore.WebAuthnCredential{MFAFactor: sqlstore.MFAFactor{UserID: u.ID, Name: "zero"}, CredentialID: []byte("cred-0"), Credential: []byte(`{}`)}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.MFA(tn.ID).CreateWebAuthnCredential(ctx, z) })
	update(t, db, func(tx *sqlstore.Tx) error {
		for range 2 {
			if ok, err := tx.MFA(tn.ID).UseWebAuthnCredential(ctx, u.ID, z.ID, 0, []byte(`{}`)); !ok || err != nil {
				t.Errorf("counterless use = %v, %v", ok, err)
			}
		}
		return nil
	})
}

func testMFAJTI(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	sa := &sqlstore.ServiceAccount{TenantID: tn.ID, Name: "etl"}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateServiceAccount(ctx, sa, []byte("h")) })
	other := &sqlstore.ServiceAccount{TenantID: tn.ID, Name: "other"}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateServiceAccount(ctx, other, []byte("h")) })
	use := func(saID, jti string) bool {
		var ok bool
		update(t, db, func(tx *sqlstore.Tx) (err error) {
			ok, err = tx.UseClientAssertionJTI(ctx, tn.ID, saID, jti, clock.Now().Add(time.Minute))
			return err
		})
		return ok
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if use(sa.ID, "j1") {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("jti accepted %d times", wins.Load())
	}
	if !use(other.ID, "j1") {
		t.Fatal("jti namespaces are per client (RFC 7523 §3 item 7)")
	}
	clock.Add(time.Minute)
	if !use(sa.ID, "j1") {
		t.Fatal("expired jti not purged")
	}
}

func testMFAServiceAccountKeys(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "tenant-a"), createTenant(t, db, "tenant-b")
	sa := &sqlstore.ServiceAccount{TenantID: a.ID, Name: "etl"}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateServiceAccount(ctx, sa, []byte("h")) })
	k := &sqlstore.ServiceAccountKey{ServiceAccountID: sa.ID, KeyID: "k1", Alg: "ES256", PublicJWK: []byte(`{}`)}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AddServiceAccountKey(ctx, b.ID, k) }), tutela.ENOTFOUND)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.AddServiceAccountKey(ctx, a.ID, k) })
	dup := &sqlstore.ServiceAccountKey{ServiceAccountID: sa.ID, KeyID: "k1", Alg: "ES256", PublicJWK: []byte(`{}`)}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AddServiceAccountKey(ctx, a.ID, dup) }), tutela.ECONFLICT)
	var got *sqlstore.ServiceAccount
	var keys []sqlstore.ServiceAccountKey
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, keys, err = tx.ServiceAccountKeys(ctx, sa.ClientID); return })
	if got == nil || got.TenantID != a.ID || len(keys) != 1 || keys[0].KeyID != "k1" {
		t.Fatalf("keys = %+v %+v", got, keys)
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.RemoveServiceAccountKey(ctx, b.ID, sa.ID, k.ID) }), tutela.ENOTFOUND)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.RemoveServiceAccountKey(ctx, a.ID, sa.ID, k.ID) })
	for i := range 10 {
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.AddServiceAccountKey(ctx, a.ID, &sqlstore.ServiceAccountKey{ServiceAccountID: sa.ID,
				KeyID: string(rune('a' + i)), Alg: "EdDSA", PublicJWK: []byte(`{}`)})
		})
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.AddServiceAccountKey(ctx, a.ID, &sqlstore.ServiceAccountKey{ServiceAccountID: sa.ID, KeyID: "z", Alg: "EdDSA", PublicJWK: []byte(`{}`)})
	}), tutela.ECONFLICT)
}

func testMFACascade(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	newTOTP(t, db, tn.ID, u.ID)
	update(t, db, func(tx *sqlstore.Tx) error {
		if _, err := tx.MFA(tn.ID).ReplaceRecoveryCodes(ctx, u.ID, [][]byte{{1}, {2}}); err != nil {
			return err
		}
		return tx.MFA(tn.ID).CreateCeremony(ctx, &sqlstore.WebAuthnCeremony{Challenge: "c", UserID: u.ID, Kind: "register",
			Session: []byte("{}"), ExpiresAt: tx.Now().Add(time.Minute)})
	})
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Delete(ctx, u.ID) })
	for _, table := range []string{"mfa_factors", "mfa_recovery_codes", "webauthn_ceremonies"} {
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows survive the user's deletion", table, n)
		}
	}
}

func testMFAAudited(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	admin := createUser(t, db, tn.ID, "admin@example.org")
	u := createUser(t, db, tn.ID, "a@example.org")
	sa := &sqlstore.ServiceAccount{TenantID: tn.ID, Name: "etl"}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateServiceAccount(ctx, sa, []byte("h")) })
	rctx := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "req-7", IP: "192.0.2.9", UserAgent: "ua",
		Principal: &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: tn.ID, UserID: admin.ID}})
	err := db.Update(rctx, func(tx *sqlstore.Tx) error {
		m := tx.MFA(tn.ID)
		f := &sqlstore.MFAFactor{ID: tutela.NewID(), UserID: u.ID, Name: "app"}
		if err := m.CreateTOTP(rctx, f, []byte("s")); err != nil {
			return err
		}
		if _, err := m.UseTOTPStep(rctx, u.ID, f.ID, 1, true); err != nil {
			return err
		}
		if _, err := m.UseTOTPStep(rctx, u.ID, f.ID, 2, false); err != nil {
			return err
		}
		if _, err := m.ReplaceRecoveryCodes(rctx, u.ID, [][]byte{{1}}); err != nil {
			return err
		}
		cs, err := m.RecoveryCodes(rctx, u.ID)
		if err != nil {
			return err
		}
		if _, _, err := m.UseRecoveryCode(rctx, u.ID, cs[0].ID); err != nil {
			return err
		}
		if err := m.CreateCeremony(rctx, &sqlstore.WebAuthnCeremony{Challenge: "c", UserID: u.ID, Kind: "register",
			Session: []byte("{}"), ExpiresAt: tx.Now().Add(time.Minute)}); err != nil {
			return err
		}
		w := &sqlstore.WebAuthnCredential{MFAFactor: sqlstore.MFAFactor{UserID: u.ID, Name: "k"}, CredentialID: []byte("c"), Credential: []byte("{}")}
		if err := m.CreateWebAuthnCredential(rctx, w); err != nil {
			return err
		}
		if _, err := m.UseWebAuthnCredential(rctx, u.ID, w.ID, 3, []byte("{}")); err != nil {
			return err
		}
		if err := m.RecordClonedAuthenticator(rctx, u.ID, w.ID, 3, 2); err != nil {
			return err
		}
		if err := m.RemoveFactor(rctx, u.ID, f.ID); err != nil {
			return err
		}
		if _, err := m.RemoveAllFactors(rctx, u.ID); err != nil {
			return err
		}
		k := &sqlstore.ServiceAccountKey{ServiceAccountID: sa.ID, KeyID: "k", Alg: "EdDSA", PublicJWK: []byte("{}")}
		if err := tx.AddServiceAccountKey(rctx, tn.ID, k); err != nil {
			return err
		}
		if _, err := tx.UseClientAssertionJTI(rctx, tn.ID, sa.ID, "j", tx.Now().Add(time.Minute)); err != nil {
			return err
		}
		return tx.RemoveServiceAccountKey(rctx, tn.ID, sa.ID, k.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, ActorID: admin.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]audit.Event{}
	for _, r := range recs {
		got[r.Event.Action] = r.Event
	}
	for _, want := range []string{"mfa.totp_enrollment_started", "mfa.totp_enrolled", "mfa.totp_used",
		"mfa.recovery_codes_generated", "mfa.recovery_used", "mfa.webauthn_register_begun", "mfa.webauthn_registered",
		"mfa.webauthn_used", "mfa.webauthn_cloned", "mfa.factor_removed", "mfa.factors_reset",
		"service_account.key_added", "service_account.client_assertion", "service_account.key_removed"} {
		e, ok := got[want]
		if !ok {
			t.Errorf("no %s event", want)
			continue
		}
		if e.RequestID != "req-7" || e.SourceIP != "192.0.2.9" || e.ActorType != audit.ActorUser {
			t.Errorf("%s not attributed to the request: %+v", want, e)
		}
	}
	if got["mfa.webauthn_cloned"].Outcome != audit.OutcomeFailure {
		t.Errorf("clone recorded as %q", got["mfa.webauthn_cloned"].Outcome)
	}
}
