package storetest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// OIDCDPoPTests is the DPoP replay cache's part of the suite (RFC 9449 §11.1): a proof's jti is
// accepted once while it could still be valid, concurrently too, and only its hash is stored.
var OIDCDPoPTests = []Test{
	{"DPoPProofUsedOnce", testDPoPUsedOnce},
	{"DPoPProofConcurrentUseOneWins", testDPoPConcurrent},
	{"DPoPProofStoresOnlyHash", testDPoPHashOnly},
	{"DPoPProofSweepRemovesExpiredOnly", testDPoPSweep},
}

func useDPoP(db *sqlstore.DB, jti string, expires time.Time) error {
	return db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UseDPoPProof(ctx, jti, expires) })
}

func testDPoPUsedOnce(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	exp := clock.Now().Add(2 * time.Minute)
	if err := useDPoP(db, "jti-1", exp); err != nil {
		t.Fatal(err)
	}
	err := useDPoP(db, "jti-1", exp)
	mustCode(t, err, tutela.EUNAUTHENTICATED)
	if err != sqlstore.ErrDPoPReplay {
		t.Fatalf("replay error %v, want ErrDPoPReplay", err)
	}
	// The refusal leaves a PostgreSQL transaction usable: no aborted statement.
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.UseDPoPProof(ctx, "jti-1", exp); err != sqlstore.ErrDPoPReplay {
			return fmt.Errorf("replay in a transaction: %v", err)
		}
		return tx.UseDPoPProof(ctx, "jti-2", exp)
	})
	mustCode(t, useDPoP(db, "jti-2", exp), tutela.EUNAUTHENTICATED)
	// Still refused one moment before the record expires.
	clock.Add(2*time.Minute - time.Microsecond)
	mustCode(t, useDPoP(db, "jti-1", clock.Now().Add(time.Minute)), tutela.EUNAUTHENTICATED)
	// Past its expiry the record is taken over (its proof is refused by iat by then).
	clock.Add(time.Microsecond)
	if err := useDPoP(db, "jti-1", clock.Now().Add(2*time.Minute)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	mustCode(t, useDPoP(db, "jti-1", clock.Now().Add(2*time.Minute)), tutela.EUNAUTHENTICATED)
	// Bad input changes nothing.
	mustCode(t, useDPoP(db, "", exp), tutela.EUNAUTHENTICATED)
	mustCode(t, useDPoP(db, string(bytes.Repeat([]byte("j"), 65)), clock.Now().Add(time.Minute)), tutela.EUNAUTHENTICATED)
	mustCode(t, useDPoP(db, "jti-3", clock.Now()), tutela.EINVALID)
	if err := useDPoP(db, "jti-3", clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("jti-3 was recorded by a refused call: %v", err)
	}
}

func testDPoPConcurrent(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = useDPoP(db, "same-jti", clock.Now().Add(time.Minute)) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case err != sqlstore.ErrDPoPReplay:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent uses of one proof succeeded, want 1", ok)
	}
}

func testDPoPHashOnly(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	const jti = "visible-jti-value"
	if err := useDPoP(db, jti, clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := db.SQL().QueryRowContext(ctx, `SELECT jti_hash FROM oidc_dpop_proofs`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, sqlstore.HashToken(jti)) || bytes.Contains(stored, []byte(jti)) {
		t.Fatalf("stored %x, want SHA-256 of the jti", stored)
	}
}

func testDPoPSweep(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	for i, ttl := range []time.Duration{time.Minute, time.Minute, 5 * time.Minute} {
		if err := useDPoP(db, fmt.Sprint("sweep-", i), clock.Now().Add(ttl)); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(2 * time.Minute)
	var n int64
	update(t, db, func(tx *sqlstore.Tx) (err error) { n, err = tx.SweepDPoPProofs(ctx); return err })
	if n != 2 {
		t.Fatalf("swept %d, want the 2 expired", n)
	}
	// The live one is still remembered.
	mustCode(t, useDPoP(db, "sweep-2", clock.Now().Add(time.Minute)), tutela.EUNAUTHENTICATED)
	// The hourly retention purge runs the sweep.
	clock.Add(4 * time.Minute)
	r := sqlstore.Retention{LoginHistory: time.Hour, SecurityEvents: time.Hour, EndedSessions: time.Hour, UsedTokens: time.Hour, DeadJobs: time.Hour}
	c, err := db.PurgeExpired(ctx, clock.Now(), r)
	if err != nil || c.DPoPProofs != 1 || !strings.Contains(c.String(), "oidc_dpop_proofs=1") {
		t.Fatalf("purge: %+v %v", c, err)
	}
}
