package identity

import (
	"context"
	"crypto/sha256"
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

// Attempts are counted before they are checked. Checking the locks, verifying, and recording a
// failure in a later transaction would let N concurrent guesses all pass the check before any of
// them is counted. So every throttled check first reserves its attempt: in one transaction that
// holds the counters' row locks (LockThrottle) it refuses if a key is locked and otherwise counts
// the attempt as a failure. The slow verification runs after that transaction, outside it. A
// success then resets the counters as it always has, and an attempt that proved no wrong guess
// (never checked because the hasher was busy, or right but failed by a server fault afterwards)
// is taken back, so overload and outages do not lock users out.

// reservation is what counting one attempt did to one counter, so that it can be taken back.
type reservation struct {
	key, subject []byte
	kind         string
	window       time.Time // start of the window the failure was counted in
	// locked: this attempt locked the key, from prevUntil to lockedUntil; details describe the
	// lock for the security event, recorded only once the attempt proved wrong.
	locked                 bool
	prevUntil, lockedUntil time.Time
	details                string
	// contributed: this (pair) attempt also counted on its account, in the account window
	// starting at contribWindow.
	contributed   bool
	contribWindow time.Time
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
	if r.contributed && t.ContribWindow.Equal(r.contribWindow) && t.Contrib > 0 {
		t.Contrib--
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

// signInAttempt is a password sign-in's reservation on its three counters.
type signInAttempt struct{ pair, acct, ip reservation }

// reserveSignIn refuses with ThrottledError while the account, pair or IP key is locked, and
// otherwise counts the attempt as a failure on all three. The caller must roll tx back on
// ThrottledError, so a refused attempt leaves the counters as they were.
func (s *Service) reserveSignIn(ctx context.Context, tx *sqlstore.Tx, acct, pair, ipk []byte) (*signInAttempt, error) {
	now := tx.Now()
	// Every transaction takes these row locks in the order pair, account, IP (also the success
	// and take-back paths), so concurrent sign-ins cannot deadlock on PostgreSQL.
	pt, err := tx.LockThrottle(ctx, pair, "pair", acct)
	if err != nil {
		return nil, err
	}
	at, err := tx.LockThrottle(ctx, acct, "account", nil)
	if err != nil {
		return nil, err
	}
	it, err := tx.LockThrottle(ctx, ipk, "ip", nil)
	if err != nil {
		return nil, err
	}
	if wait := lockedFor(now, pt, at, it); wait > 0 {
		return nil, &ThrottledError{Wait: wait}
	}
	pol := s.cfg.Throttle
	a := &signInAttempt{pair: reserve(pol.Pair, pt, now)}
	// One source adds at most Account.MaxFailures-1 failures to the account counter within the
	// account's current window (tracked on the pair row against that window's start, so the two
	// windows cannot drift apart): only two or more sources can lock the account.
	pol.Account.roll(at, now)
	if !pt.ContribWindow.Equal(at.WindowStart) {
		pt.Contrib, pt.ContribWindow = 0, at.WindowStart
	}
	a.acct = reservation{key: acct, kind: "account"} // no window: nothing counted on it
	if pt.Contrib < pol.Account.MaxFailures-1 {
		pt.Contrib++
		a.pair.contributed, a.pair.contribWindow = true, pt.ContribWindow
		a.acct = reserve(pol.Account, at, now)
	}
	a.ip = reserve(pol.IP, it, now)
	for _, t := range []*sqlstore.Throttle{pt, at, it} {
		if err := tx.SaveThrottle(ctx, t); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// succeeded resets the account and pair counters, as a successful sign-in always has, and takes
// the attempt back from the IP counter, which counts failures only.
func (a *signInAttempt) succeeded(ctx context.Context, tx *sqlstore.Tx) error {
	if err := tx.ResetThrottles(ctx, a.pair.key, a.acct.key); err != nil {
		return err
	}
	return a.ip.takeBack(ctx, tx)
}

// takeBack undoes the whole reservation of an attempt that proved no wrong guess.
func (a *signInAttempt) takeBack(ctx context.Context, tx *sqlstore.Tx) error {
	for _, r := range []reservation{a.pair, a.acct, a.ip} {
		if err := r.takeBack(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// reserveUserAttempt is reserveSignIn for a per-user counter (second factors, re-entered
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
