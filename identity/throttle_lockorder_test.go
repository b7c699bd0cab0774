package identity

// A right and a wrong password for one account from one source at once, on PostgreSQL: failed
// locks the pair row and then the account row; succeeded must lock them in the same order, or
// the two transactions deadlock (SQLSTATE 40P01: a 500, and a wrong guess answered uncounted).
// A single DELETE … WHERE key IN (pair, account) locked them in scan order, here account first.

import (
	"context"
	"errors"
	"testing"
	"time"

	"tutela/clocktest"
	"tutela/sqlstore"
)

func TestThrottle_SuccessAndFailureLockInOneOrder(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(t0)
	s, db := newTestService(t, sqlstore.Postgres, clock.Now, Config{}, "ana@example.org")
	acct, pair, ipk := seedThrottleRows(t, db)
	var wrong, right *signInAttempt
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if wrong, err = checkSignIn(ctx, tx, acct, pair, ipk); err != nil {
			return err
		}
		right, err = checkSignIn(ctx, tx, acct, pair, ipk)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	proceed, failErr := holdFailure(s, db, pair, acct, wrong)
	okErr := make(chan error, 1)
	go func() {
		okErr <- db.Update(ctx, func(tx *sqlstore.Tx) error { return right.succeeded(ctx, tx) })
	}()
	time.Sleep(300 * time.Millisecond) // the DELETE has locked the account row and waits for the pair's
	close(proceed)
	e1, e2 := <-failErr, <-okErr
	var th *ThrottledError
	for name, err := range map[string]error{"wrong guess (failed)": e1, "right password (succeeded)": e2} {
		if err != nil && !errors.As(err, &th) {
			t.Errorf("%s: %v — want nil or ThrottledError (lock order pair→account not kept by ClearThrottles)", name, err)
		}
	}
}

// An admin unlock (ResetThrottlesFor) and a wrong guess at the same account: the unlock must
// take the pair rows before the account row, as failed does. One DELETE … WHERE key = acct OR
// subject = acct locked them in scan order, here account first.
func TestThrottle_UnlockAndFailureLockInOneOrder(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(t0)
	s, db := newTestService(t, sqlstore.Postgres, clock.Now, Config{}, "ana@example.org")
	acct, pair, ipk := seedThrottleRows(t, db)
	var wrong *signInAttempt
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		wrong, err = checkSignIn(ctx, tx, acct, pair, ipk)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	proceed, failErr := holdFailure(s, db, pair, acct, wrong)
	unlockErr := make(chan error, 1)
	go func() {
		unlockErr <- db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ResetThrottlesFor(ctx, acct) })
	}()
	time.Sleep(300 * time.Millisecond) // the unlock is under way and waits for a row the failure holds
	close(proceed)
	if err := <-failErr; err != nil {
		t.Errorf("wrong guess (failed): %v — want nil", err)
	}
	if err := <-unlockErr; err != nil {
		t.Errorf("unlock: %v — want nil (lock order pair→account not kept by ResetThrottlesFor)", err)
	}
}

// seedThrottleRows makes the account, pair and address rows of one source's guesses at
// ana@example.org, the account's first (any earlier failure from another source leaves it so;
// on a big table the order is arbitrary anyway), and returns their keys.
func seedThrottleRows(t *testing.T, db *sqlstore.DB) (acct, pair, ipk []byte) {
	t.Helper()
	ctx := context.Background()
	const src = "203.0.113.9"
	acct = accountKey("acme", "ana@example.org")
	pair, ipk = pairKey(src, acct), ipKey(src)
	for _, k := range []struct {
		key  []byte
		kind string
		subj []byte
	}{{acct, "account", nil}, {pair, "pair", acct}, {ipk, "ip", nil}} {
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.LockThrottle(ctx, k.key, k.kind, k.subj); return err }); err != nil {
			t.Fatal(err)
		}
	}
	return acct, pair, ipk
}

// holdFailure starts counting wrong as a failure: it takes failed's first lock (the pair row)
// and returns once it holds it; the rest of failed runs when proceed is closed, and its
// transaction's result arrives on the returned channel.
func holdFailure(s *Service, db *sqlstore.DB, pair, acct []byte, wrong *signInAttempt) (proceed chan struct{}, result chan error) {
	ctx := context.Background()
	held := make(chan struct{})
	proceed, result = make(chan struct{}), make(chan error, 1)
	go func() {
		result <- db.Update(ctx, func(tx *sqlstore.Tx) error {
			if _, err := tx.LockThrottle(ctx, pair, "pair", acct); err != nil {
				return err
			}
			close(held)
			<-proceed
			return s.failed(ctx, tx, wrong)
		})
	}()
	<-held
	return proceed, result
}
