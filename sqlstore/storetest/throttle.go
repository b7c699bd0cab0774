package storetest

import (
	"sync"
	"testing"

	"tutela/sqlstore"
)

// ThrottleTests is the brute-force counter part of the conformance suite. Sign-in throttling
// checks a counter and counts the attempt in one transaction (identity.reserveSignIn), which is
// only sound if LockThrottle really holds the row until commit.
var ThrottleTests = []Test{
	{"ThrottleLockSerializesCheckAndCount", testThrottleCheckAndCount},
	{"ThrottleLockSurvivesConcurrentReset", testThrottleConcurrentReset},
}

// Many transactions at once each check the counter and count one attempt only while it is below
// a limit: exactly the limit's worth get through, and no count is lost.
func testThrottleCheckAndCount(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	key := []byte("throttle-check-and-count")
	const attempts, limit = 40, 5
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	for range attempts {
		wg.Go(func() {
			err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				th, err := tx.LockThrottle(ctx, key, "test", nil)
				if err != nil || th.Failures >= limit {
					return err
				}
				th.Failures++
				mu.Lock()
				admitted++
				mu.Unlock()
				return tx.SaveThrottle(ctx, th)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var rows []*sqlstore.Throttle
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { rows, err = tx.Throttles(ctx, key); return err }); err != nil {
		t.Fatal(err)
	}
	if admitted != limit || len(rows) != 1 || rows[0].Failures != limit {
		t.Fatalf("admitted %d, counter %+v; want %d and %d", admitted, rows, limit, limit)
	}
}

// A counter deleted while another transaction waits to lock it (a successful sign-in resetting
// it) is created afresh for the waiter, never "not found".
func testThrottleConcurrentReset(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	key := []byte("throttle-concurrent-reset")
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				if i%3 == 0 {
					return tx.ResetThrottles(ctx, key)
				}
				th, err := tx.LockThrottle(ctx, key, "test", nil)
				if err != nil {
					return err
				}
				th.Failures++
				return tx.SaveThrottle(ctx, th)
			})
			if err != nil {
				t.Errorf("transaction %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}
