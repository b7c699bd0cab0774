package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"tutela/sqlstore"
)

// ThrottleTests is the brute-force counter part of the conformance suite. Sign-in throttling
// checks a counter and counts the attempt in one transaction (identity.Service.failed), which is
// only sound if LockThrottle really holds the row until commit.
var ThrottleTests = []Test{
	{"ThrottleLockSerializesCheckAndCount", testThrottleCheckAndCount},
	{"ThrottleLockSurvivesConcurrentReset", testThrottleConcurrentReset},
	{"ThrottlesReadInKeyOrder", testThrottlesInKeyOrder},
	{"ThrottleClearReportsLiveLocks", testThrottleClearReportsLocks},
	{"ThrottleResetForClearsAccountAndItsPairs", testThrottleResetFor},
}

// ResetThrottlesFor (an admin unlock) deletes an account's counter and its pairs' (the pairs
// first, the order a sign-in locks them in), and no other counter.
func testThrottleResetFor(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	acct, other := []byte("resetfor-acct"), []byte("resetfor-other")
	rows := []struct {
		key, subject []byte
		kind         string
	}{
		{acct, nil, "account"}, {[]byte("resetfor-pair1"), acct, "pair"}, {[]byte("resetfor-pair2"), acct, "pair"},
		{other, nil, "account"}, {[]byte("resetfor-pair3"), other, "pair"}, {[]byte("resetfor-ip"), nil, "ip"},
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		for _, r := range rows {
			if _, err := tx.LockThrottle(ctx, r.key, r.kind, r.subject); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ResetThrottlesFor(ctx, acct) }); err != nil {
		t.Fatal(err)
	}
	var left []*sqlstore.Throttle
	err = db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		keys := make([][]byte, len(rows))
		for i, r := range rows {
			keys[i] = r.key
		}
		left, err = tx.Throttles(ctx, keys...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, th := range left {
		got = append(got, string(th.Key))
	}
	if want := []string{"resetfor-other", "resetfor-pair3", "resetfor-ip"}; !slices.Equal(got, want) {
		t.Fatalf("left after ResetThrottlesFor: %q, want %q", got, want)
	}
}

func saveThrottle(t *testing.T, db *sqlstore.DB, key []byte, lockedUntil time.Time) {
	t.Helper()
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		th, err := tx.LockThrottle(ctx, key, "test", nil)
		if err != nil {
			return err
		}
		th.Failures, th.LockedUntil = 1, lockedUntil
		return tx.SaveThrottle(ctx, th)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Throttles reads several counters in one query and returns those that exist in the order the
// keys were given (sign-in checks the pair, account and IP counters together).
func testThrottlesInKeyOrder(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b, c := []byte("order-a"), []byte("order-b"), []byte("order-missing")
	saveThrottle(t, db, a, time.Time{})
	saveThrottle(t, db, b, time.Time{})
	var rows []*sqlstore.Throttle
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { rows, err = tx.Throttles(ctx, b, c, a); return err }); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || string(rows[0].Key) != "order-b" || string(rows[1].Key) != "order-a" {
		t.Fatalf("Throttles(b, missing, a) = %+v, want b then a", rows)
	}
}

// ClearThrottles (a successful sign-in) deletes the counters and reports a lock that still
// lasts, so the sign-in can be refused and rolled back with the counters intact; an expired
// lock is no lock.
func testThrottleClearReportsLocks(t *testing.T, open Opener) {
	now := time.Now().UTC().Truncate(time.Second)
	db := open(t, sqlstore.Options{Clock: func() time.Time { return now }})
	live, expired, plain := []byte("clear-live"), []byte("clear-expired"), []byte("clear-plain")
	saveThrottle(t, db, live, now.Add(time.Minute))
	saveThrottle(t, db, expired, now.Add(-time.Second))
	saveThrottle(t, db, plain, time.Time{})
	count := func() int {
		var rows []*sqlstore.Throttle
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { rows, err = tx.Throttles(ctx, live, expired, plain); return err }); err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}

	var until time.Time
	err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		if until, err = tx.ClearThrottles(ctx, plain, live, []byte("clear-missing")); err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback || !until.Equal(now.Add(time.Minute)) {
		t.Fatalf("clearing a live lock reported %v (err %v), want %v", until, err, now.Add(time.Minute))
	}
	if n := count(); n != 3 {
		t.Fatalf("%d counters after the rollback, want 3", n)
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) (err error) { until, err = tx.ClearThrottles(ctx, plain, expired); return err })
	if err != nil || !until.IsZero() {
		t.Fatalf("clearing an expired lock reported %v, %v; want no lock", until, err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d counters left, want only the live one", n)
	}
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
