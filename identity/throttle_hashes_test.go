package identity

// A burst of guesses must not cost one Argon2id hash per guess: checkTarget's check runs before
// the wait for a hashing slot, so each guess checks the throttles again once it holds a slot and
// keeps the slot until its failure is counted (Service.slotFor).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"tutela"
	"tutela/clocktest"
	"tutela/sqlstore"
)

// testHasherSlots is the hashing slots of newTestService's Hasher.
const testHasherSlots = 2

// n concurrent wrong guesses from one source at one account, known or not: exactly the pair
// limit's worth are answered "wrong", the rest too_many_attempts, and at most
// Pair.MaxFailures + testHasherSlots - 1 hashes are computed in all (one node): a guess is hashed
// only if the keys were unlocked once it held a slot, and holds the slot until counted, so when
// the locking failure commits only the other slots' holders can have been hashed uncounted.
func TestThrottle_ConcurrentGuessesHashedUpToLimitPlusSlots(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres} {
		for _, email := range []string{"ana@example.org", "nobody@example.org"} {
			t.Run(fmt.Sprintf("%v/%s", d, email), func(t *testing.T) {
				clock := clocktest.New(t0)
				s, _ := newTestService(t, d, clock.Now, Config{}, "ana@example.org")
				before := s.Hasher.Computed()
				const n = 40
				errs := make([]error, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() { <-start; errs[i] = signInAs(s, email, "198.51.100.9", "wrong guess") })
				}
				close(start)
				wg.Wait()
				wrong, throttled := 0, 0
				for _, err := range errs {
					switch tutela.ErrorCode(err) {
					case tutela.EINVALIDCREDENTIALS:
						wrong++
					case tutela.ETOOMANYATTEMPTS:
						throttled++
					default:
						t.Errorf("guess answered %v", err)
					}
				}
				limit := DefaultThrottlePolicy().Pair.MaxFailures
				hashed := s.Hasher.Computed() - before
				t.Logf("%d concurrent guesses: %d answered wrong, %d throttled, %d hashes", n, wrong, throttled, hashed)
				if wrong != limit || throttled != n-limit {
					t.Errorf("%d answered wrong and %d throttled, want %d and %d", wrong, throttled, limit, n-limit)
				}
				if bound := int64(limit + testHasherSlots - 1); hashed > bound {
					t.Fatalf("%d hashes for %d concurrent guesses, want at most %d", hashed, n, bound)
				}
			})
		}
	}
}

// A key locked while a guess waited for its hashing slot: the guess is refused once it holds
// the slot, with no hash computed, for known and unknown accounts alike; an unknown account's
// guess whose keys are not locked still costs its dummy hash.
func TestThrottle_LockedWhileQueuedRefusedWithoutHashing(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(t0)
	s, db := newTestService(t, sqlstore.SQLite, clock.Now, Config{}, "ana@example.org")
	const src = "198.51.100.9"
	for _, email := range []string{"ana@example.org", "nobody@example.org"} {
		req := LoginRequest{Tenant: "acme", Email: email, Password: tutela.NewSecret("wrong guess"), IP: src}
		acct := accountKey("acme", email)
		target := func() *signInTarget {
			tg, err := s.checkTarget(ctx, req, "acme", acct, func(tx *sqlstore.Tx, tn *tutela.Tenant) (*sqlstore.Credentials, error) {
				return tx.Users(tn.ID).CredentialsByEmail(ctx, email)
			}, nil)
			if err != nil {
				t.Fatalf("%s: check before the lock: %v", email, err)
			}
			return tg
		}

		// Unlocked: the slot is granted and the guess is hashed (a dummy hash when unknown).
		before := s.Hasher.Computed()
		if err := signInAs(s, email, src, "wrong guess"); tutela.ErrorCode(err) != tutela.EINVALIDCREDENTIALS {
			t.Fatalf("%s: first guess: %v", email, err)
		}
		if got := s.Hasher.Computed() - before; got != 1 {
			t.Fatalf("%s: first guess computed %d hashes, want 1", email, got)
		}

		// The guess passes the check before the wait, then the pair key locks.
		tg := target()
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			th, err := tx.LockThrottle(ctx, pairKey(src, acct), "pair", acct)
			if err != nil {
				return err
			}
			th.LockedUntil = clock.Now().Add(DefaultThrottlePolicy().Pair.BaseLock)
			return tx.SaveThrottle(ctx, th)
		}); err != nil {
			t.Fatal(err)
		}
		before = s.Hasher.Computed()
		slot, err := s.slotFor(ctx, tg, req)
		var th *ThrottledError
		if !errors.As(err, &th) || tutela.ErrorCode(err) != tutela.ETOOMANYATTEMPTS {
			t.Fatalf("%s: locked while queued: slot %v, err %v; want ThrottledError", email, slot, err)
		}
		if got := s.Hasher.Computed() - before; got != 0 {
			t.Fatalf("%s: locked while queued computed %d hashes, want 0", email, got)
		}
		// The refused attempt gave its slot back: every slot can be taken again.
		var held []interface{ Release() }
		for range testHasherSlots {
			sl, err := s.Hasher.Acquire(ctx)
			if err != nil {
				t.Fatalf("%s: slot not given back: %v", email, err)
			}
			held = append(held, sl)
		}
		for _, sl := range held {
			sl.Release()
		}
	}
}
