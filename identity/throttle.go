package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/netip"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// Limit is one brute-force rule: MaxFailures failures within Window lock the key, for BaseLock
// doubling with each further lock up to MaxLock. Locks unlock by themselves.
type Limit struct {
	MaxFailures int
	Window      time.Duration
	BaseLock    time.Duration
	MaxLock     time.Duration
}

// ThrottlePolicy holds the three sign-in throttles (ASVS 6.3.1, NIST SP 800-63B §5.2.2).
//
// A single IP must never be able to lock a user out: each IP+account pair contributes at most
// Account.MaxFailures-1 failures to the account counter per window, so only attempts from two
// or more sources can lock the account, and the pair's own lock throttles one source hard.
type ThrottlePolicy struct {
	Account Limit // per tenant+e-mail, whether or not the account exists
	Pair    Limit // per client IP + account
	IP      Limit // per client IP, across accounts (credential stuffing)
}

// DefaultThrottlePolicy: account 5 failures / 15 min, lock 1 → 15 min; pair 3 / 15 min;
// IP 50 / 15 min.
func DefaultThrottlePolicy() ThrottlePolicy {
	return ThrottlePolicy{
		Account: Limit{MaxFailures: 5, Window: 15 * time.Minute, BaseLock: time.Minute, MaxLock: 15 * time.Minute},
		Pair:    Limit{MaxFailures: 3, Window: 15 * time.Minute, BaseLock: time.Minute, MaxLock: 15 * time.Minute},
		IP:      Limit{MaxFailures: 50, Window: 15 * time.Minute, BaseLock: time.Minute, MaxLock: 15 * time.Minute},
	}
}

// lockDecay: a key quiet this long forgets its earlier locks, so backoff restarts from BaseLock.
const lockDecay = 24 * time.Hour

// roll starts a new window when the current one is over, and forgets earlier locks after a
// quiet day, so backoff restarts from BaseLock.
func (l Limit) roll(t *sqlstore.Throttle, now time.Time) {
	if now.Sub(t.UpdatedAt) > lockDecay {
		t.Locks = 0
	}
	if now.Sub(t.WindowStart) >= l.Window {
		t.Failures, t.WindowStart = 0, now
	}
}

// fail records one failure on t at now under l and reports whether it locked the key.
func (l Limit) fail(t *sqlstore.Throttle, now time.Time) (locked bool) {
	l.roll(t, now)
	t.Failures++
	if t.Failures%l.MaxFailures != 0 {
		return false
	}
	t.Locks++
	// BaseLock·2^(locks-1), capped at MaxLock; compared before shifting so it cannot overflow.
	d := l.MaxLock
	if n := t.Locks - 1; n < 63 && l.BaseLock <= l.MaxLock>>n {
		d = l.BaseLock << n
	}
	t.LockedUntil = now.Add(d)
	return true
}

// throttle keys: SHA-256 over a kind prefix and the identity, so the table stores no e-mail
// addresses or IPs in the clear.
func keyHash(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

func accountKey(tenant, emailNorm string) []byte { return keyHash("acct", tenant, emailNorm) }
func ipKey(ip string) []byte                     { return keyHash("ip", sourceOf(ip)) }
func pairKey(ip string, acct []byte) []byte      { return keyHash("pair", sourceOf(ip), string(acct)) }

// sourceOf is the source an address counts as for the IP and pair throttles: its
// tutela.ClientNetwork, so an IPv6 host rotating addresses inside its /64 stays one source and
// can neither pass the per-IP limit nor lock an account as "many sources". A string that is not
// an address (no client IP was resolved) is its own source.
func sourceOf(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	return tutela.ClientNetwork(a).String()
}

// Sign-in attempts are counted when they are answered, in the transaction that answers them.
// A password is verified outside any transaction (it is slow); then one transaction either
// counts it as a failure or resets the counters as a success, and refuses it instead if a key
// it needs has been locked meanwhile. The answer a client sees for a guess ("wrong" or
// "signed in") is only ever given by a transaction that found the keys unlocked while holding
// the pair and account rows, so however many guesses arrive at once, at most the limit's worth
// are answered "wrong" before the lock; the rest are answered too_many_attempts whatever the
// password, which tells the guesser nothing (ASVS 6.3.1, NIST SP 800-63B §5.2.2).
//
// This replaces counting every attempt as a failure before checking it and taking the count
// back on success: that wrote the per-source row twice for every sign-in, so every sign-in
// from one NAT queued on one row on PostgreSQL, and it refused concurrent correct sign-ins to
// one account from one address once the pending ones reached the pair limit (issue 20). Now a
// correct password writes no shared counter: it deletes the account's and the pair's rows (when
// there are any) and only reads the per-source row. Only failures write the per-source row, and
// they stop at its limit, when it locks and the cheap check before verification refuses without
// writing. An attempt that never proved a wrong guess (the hasher busy, the pepper unavailable,
// a server fault) is simply never counted.
//
// Guesses that arrive together all pass the check before verification, and then queue for a
// hashing slot; each checks the keys again once it holds a slot, before hashing, and holds the
// slot until its failure is counted (Service.slotFor), so a burst costs at most the limit's
// worth of hashes plus the hasher's other slots per node, not one hash per guess.

// reservation is what counting one attempt did to one counter, so that it can be taken back.
// The per-user counters (second factors, re-entered passwords) still count an attempt before
// checking it and take it back on success: one user's attempts are few and never concurrent in
// numbers, so their rows are not hot.
type reservation struct {
	key, subject []byte
	kind         string
	window       time.Time // start of the window the failure was counted in
	// locked: this attempt locked the key, from prevUntil to lockedUntil; details describe the
	// lock for the security event, recorded only once the attempt proved wrong.
	locked                 bool
	prevUntil, lockedUntil time.Time
	details                string
}

// reserve counts one failure on t under l and returns what it did.
func reserve(l Limit, t *sqlstore.Throttle, now time.Time) reservation {
	r := reservation{key: t.Key, subject: t.Subject, kind: t.Kind, prevUntil: t.LockedUntil}
	r.locked = l.fail(t, now)
	r.window, r.lockedUntil = t.WindowStart, t.LockedUntil
	if r.locked {
		r.details = lockDetails(t)
	}
	return r
}

// takeBack undoes r on its counter as far as nothing has moved on since: the failure leaves the
// count while its window lasts, and the lock it set is lifted unless a later one replaced it.
func (r reservation) takeBack(ctx context.Context, tx *sqlstore.Tx) error {
	if r.window.IsZero() {
		return nil // nothing was counted
	}
	t, err := tx.LockThrottle(ctx, r.key, r.kind, r.subject)
	if err != nil {
		return err
	}
	if t.WindowStart.Equal(r.window) && t.Failures > 0 {
		t.Failures--
	}
	if r.locked && t.LockedUntil.Equal(r.lockedUntil) {
		t.Locks, t.LockedUntil = max(t.Locks-1, 0), r.prevUntil
	}
	return tx.SaveThrottle(ctx, t)
}

// lockedFor is how long the longest lock among ts still lasts at now.
func lockedFor(now time.Time, ts ...*sqlstore.Throttle) time.Duration {
	var wait time.Duration
	for _, t := range ts {
		if d := t.LockedUntil.Sub(now); d > wait {
			wait = d
		}
	}
	return wait
}

// signInAttempt is a sign-in's three throttle keys and, once it has failed, what counting the
// failure did to each (for the security events of the locks it set).
type signInAttempt struct {
	pairKey, acctKey, ipKey []byte
	pair, acct, ip          reservation
}

// checkSignIn refuses with ThrottledError while the account, pair or IP key is locked, before
// any credential work. It only reads: the answer is decided by failed or succeeded.
func checkSignIn(ctx context.Context, tx *sqlstore.Tx, acct, pair, ipk []byte) (*signInAttempt, error) {
	a := &signInAttempt{pairKey: pair, acctKey: acct, ipKey: ipk}
	if err := a.check(ctx, tx); err != nil {
		return nil, err
	}
	return a, nil
}

// check refuses with ThrottledError while one of a's keys is locked; it only reads.
func (a *signInAttempt) check(ctx context.Context, tx *sqlstore.Tx) error {
	ts, err := tx.Throttles(ctx, a.pairKey, a.acctKey, a.ipKey)
	if err != nil {
		return err
	}
	if wait := lockedFor(tx.Now(), ts...); wait > 0 {
		return &ThrottledError{Wait: wait}
	}
	return nil
}

// failed counts a wrong attempt on its three counters, or refuses it with ThrottledError if one
// of them has been locked since checkSignIn; the caller must then roll tx back.
func (s *Service) failed(ctx context.Context, tx *sqlstore.Tx, a *signInAttempt) error {
	now := tx.Now()
	// Every transaction that locks several throttle rows takes them in the order pair, account,
	// IP: succeeded deletes the pair row and then the account row (ClearThrottles, one statement
	// per key), an unlock deletes the pairs and then the account (ResetThrottlesFor), so
	// concurrent sign-ins and unlocks cannot deadlock on PostgreSQL.
	pt, err := tx.LockThrottle(ctx, a.pairKey, "pair", a.acctKey)
	if err != nil {
		return err
	}
	at, err := tx.LockThrottle(ctx, a.acctKey, "account", nil)
	if err != nil {
		return err
	}
	it, err := tx.LockThrottle(ctx, a.ipKey, "ip", nil)
	if err != nil {
		return err
	}
	if wait := lockedFor(now, pt, at, it); wait > 0 {
		return &ThrottledError{Wait: wait}
	}
	pol := s.cfg.Throttle
	a.pair = reserve(pol.Pair, pt, now)
	// One source adds at most Account.MaxFailures-1 failures to the account counter within the
	// account's current window (tracked on the pair row against that window's start, so the two
	// windows cannot drift apart): only two or more sources can lock the account.
	pol.Account.roll(at, now)
	if !pt.ContribWindow.Equal(at.WindowStart) {
		pt.Contrib, pt.ContribWindow = 0, at.WindowStart
	}
	a.acct = reservation{key: a.acctKey, kind: "account"}
	if pt.Contrib < pol.Account.MaxFailures-1 {
		pt.Contrib++
		a.acct = reserve(pol.Account, at, now)
	}
	a.ip = reserve(pol.IP, it, now)
	for _, t := range []*sqlstore.Throttle{pt, at, it} {
		if err := tx.SaveThrottle(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// succeeded resets the account and pair counters, as a successful sign-in always has, unless
// one of the three keys has been locked since checkSignIn: then it refuses with ThrottledError
// and the caller must roll tx back. The per-source counter counts failures only; a success
// reads it and leaves it alone, so sign-ins from one address do not queue on its row.
//
// Reading the per-source row without locking it is exact: the success writes nothing a
// concurrent failure reads, so it is as if it ran before that failure.
func (a *signInAttempt) succeeded(ctx context.Context, tx *sqlstore.Tx) error {
	until, err := tx.ClearThrottles(ctx, a.pairKey, a.acctKey)
	if err != nil {
		return err
	}
	ts, err := tx.Throttles(ctx, a.ipKey)
	if err != nil {
		return err
	}
	wait := lockedFor(tx.Now(), ts...)
	if d := until.Sub(tx.Now()); d > wait {
		wait = d
	}
	if wait > 0 {
		return &ThrottledError{Wait: wait}
	}
	return nil
}

// throttledAttempt records a sign-in refused by failed or succeeded (err a *ThrottledError) as
// throttled, as a refusal before verification is, and returns err unchanged.
func (s *Service) throttledAttempt(ctx context.Context, err error, tenantID, userID string, req LoginRequest) error {
	var throttled *ThrottledError
	if errors.As(err, &throttled) {
		s.recordAttempt(ctx, tenantID, userID, req, "throttled", "locked")
	}
	return err
}

// reserveUserAttempt counts an attempt on a per-user counter (second factors, re-entered
// passwords): ThrottledError while key is locked, otherwise one failure counted under limit.
func (s *Service) reserveUserAttempt(ctx context.Context, key []byte, kind string, limit Limit) (reservation, error) {
	var r reservation
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		th, err := tx.LockThrottle(ctx, key, kind, nil)
		if err != nil {
			return err
		}
		if wait := lockedFor(tx.Now(), th); wait > 0 {
			return &ThrottledError{Wait: wait}
		}
		r = reserve(limit, th, tx.Now())
		return tx.SaveThrottle(ctx, th)
	})
	return r, err
}

// uncheck takes back, in a transaction of its own, a reserved attempt that proved no wrong
// guess. It runs even when ctx has ended, since the client leaving does not make the attempt a
// guess; a failure to take back is logged and leaves the attempt counted (fail closed).
func (s *Service) uncheck(ctx context.Context, takeBack func(context.Context, *sqlstore.Tx) error) {
	ctx = context.WithoutCancel(ctx)
	if err := s.db.Update(ctx, func(tx *sqlstore.Tx) error { return takeBack(ctx, tx) }); err != nil {
		s.log.Warn("take back unchecked sign-in attempt", "err", err)
	}
}
