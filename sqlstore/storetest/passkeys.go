package storetest

import (
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/sqlstore"
)

// PasskeyTests is the passkey sign-in and account-page part of the suite (issue 15): a
// discoverable sign-in's challenge is spent once, even by concurrent callers, and renaming a
// factor is tenant-scoped, validated and audited.
var PasskeyTests = []Test{
	{"PasskeyChallengeSpentOnceUnderConcurrency", testPasskeyChallengeSpent},
	{"MFARenameFactorScopedValidatedAudited", testRenameFactor},
}

func testPasskeyChallengeSpent(t *testing.T, open Opener) {
	clock := clocktest.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	db := open(t, sqlstore.Options{Clock: clock.Now})
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok bool
			err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
				ok, err = tx.SpendPasskeyChallenge(ctx, "challenge-1", clock.Now().Add(5*time.Minute))
				return err
			})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("challenge spent %d times", fresh)
	}
	spend := func(c string) bool {
		var ok bool
		update(t, db, func(tx *sqlstore.Tx) (err error) {
			ok, err = tx.SpendPasskeyChallenge(ctx, c, clock.Now().Add(5*time.Minute))
			return err
		})
		return ok
	}
	if !spend("challenge-2") || spend("challenge-2") || spend("") {
		t.Fatal("another challenge is independent; a spent one stays spent; an empty one is never fresh")
	}
	// The entry outlives the ceremony, not more: afterwards the ceremony's own expiry refuses it.
	clock.Add(6 * time.Minute)
	if !spend("challenge-2") {
		t.Fatal("expired entries are not purged")
	}
}

func testRenameFactor(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	other := createTenant(t, db, "beta")
	u := createUser(t, db, tn.ID, "a@example.org")
	w := &sqlstore.WebAuthnCredential{MFAFactor: sqlstore.MFAFactor{UserID: u.ID, Name: "laptop"}, CredentialID: []byte("c1"), Credential: []byte("{}")}
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.MFA(tn.ID).CreateWebAuthnCredential(ctx, w); err != nil {
			return err
		}
		_, err := tx.MFA(tn.ID).ReplaceRecoveryCodes(ctx, u.ID, [][]byte{{1}})
		return err
	})
	rename := func(tenantID, userID, factorID, name string) error {
		return db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.MFA(tenantID).RenameFactor(ctx, userID, factorID, name) })
	}
	name := func() string {
		var fs []*sqlstore.MFAFactor
		update(t, db, func(tx *sqlstore.Tx) (err error) { fs, err = tx.MFA(tn.ID).Factors(ctx, u.ID); return err })
		for _, f := range fs {
			if f.ID == w.ID {
				return f.Name
			}
		}
		t.Fatal("factor gone")
		return ""
	}
	for _, bad := range []string{"", "   ", "a\u202eb", "x\x00", string(make([]rune, 101))} {
		if err := rename(tn.ID, u.ID, w.ID, bad); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if err := rename(other.ID, u.ID, w.ID, "stolen"); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Errorf("another tenant: %v", err)
	}
	if err := rename(tn.ID, tutela.NewID(), w.ID, "stolen"); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Errorf("another user: %v", err)
	}
	var fs []*sqlstore.MFAFactor
	update(t, db, func(tx *sqlstore.Tx) (err error) { fs, err = tx.MFA(tn.ID).Factors(ctx, u.ID); return err })
	for _, f := range fs {
		if f.Type == sqlstore.FactorRecovery {
			if err := rename(tn.ID, u.ID, f.ID, "codes"); tutela.ErrorCode(err) != tutela.ENOTFOUND {
				t.Errorf("recovery codes renamed: %v", err)
			}
		}
	}
	if name() != "laptop" {
		t.Fatal("a refused rename changed the name")
	}
	if err := rename(tn.ID, u.ID, w.ID, "  work key "); err != nil {
		t.Fatal(err)
	}
	if name() != "work key" {
		t.Fatalf("name %q", name())
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, Action: "mfa.factor_renamed", Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["factor_id"] != w.ID || recs[0].Event.Details["name"] != nil {
		t.Fatalf("audit: %v %+v", err, recs)
	}
}
