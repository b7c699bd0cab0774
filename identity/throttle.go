package identity

import (
	"crypto/sha256"
	"time"

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
func ipKey(ip string) []byte                     { return keyHash("ip", ip) }
func pairKey(ip string, acct []byte) []byte      { return keyHash("pair", ip, string(acct)) }
