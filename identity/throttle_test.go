package identity

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"tutela"
	"tutela/identity/token"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// newThrottle is a counter as LockThrottle creates it: empty, window and update time now.
func newThrottle(now time.Time) *sqlstore.Throttle {
	return &sqlstore.Throttle{WindowStart: now, UpdatedAt: now}
}

// failAt runs l.fail and then stamps UpdatedAt as SaveThrottle does, so lockDecay sees the
// same history it sees in the store.
func failAt(l Limit, t *sqlstore.Throttle, now time.Time) bool {
	locked := l.fail(t, now)
	t.UpdatedAt = now
	return locked
}

var testLimit = Limit{MaxFailures: 3, Window: 15 * time.Minute, BaseLock: time.Minute, MaxLock: 15 * time.Minute}

func TestLimitFail_WindowResetsAfterWindow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		gap          time.Duration // between the first and second failure
		wantFailures int
		wantStart    time.Time
	}{
		{"same instant", 0, 2, t0},
		{"just inside the window", testLimit.Window - time.Nanosecond, 2, t0},
		{"exactly one window later", testLimit.Window, 1, t0.Add(testLimit.Window)},
		{"long after", 3 * testLimit.Window, 1, t0.Add(3 * testLimit.Window)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			th := newThrottle(t0)
			failAt(testLimit, th, t0)
			if locked := failAt(testLimit, th, t0.Add(c.gap)); locked {
				t.Fatal("second failure locked")
			}
			if th.Failures != c.wantFailures || !th.WindowStart.Equal(c.wantStart) {
				t.Fatalf("failures %d window start %v, want %d %v", th.Failures, th.WindowStart, c.wantFailures, c.wantStart)
			}
		})
	}
	// Failures spread so that no MaxFailures of them share a window never lock.
	th := newThrottle(t0)
	now := t0
	for i := range 20 {
		if failAt(testLimit, th, now) {
			t.Fatalf("failure %d locked although every window held at most %d", i, testLimit.MaxFailures-1)
		}
		if i%2 == 1 {
			now = now.Add(testLimit.Window)
		}
	}
}

func TestLimitFail_LocksOnEveryMaxFailuresthFailureWithDoublingCappedDuration(t *testing.T) {
	t.Parallel()
	// 3 failures per lock, base 1 min, cap 15 min: 1, 2, 4, 8, 15, 15 min. Each failure comes
	// one second after the previous, all within one window (18 s).
	th := newThrottle(t0)
	wantLock := map[int]time.Duration{3: 1 * time.Minute, 6: 2 * time.Minute, 9: 4 * time.Minute,
		12: 8 * time.Minute, 15: 15 * time.Minute, 18: 15 * time.Minute}
	for n := 1; n <= 18; n++ {
		now := t0.Add(time.Duration(n) * time.Second)
		before := th.LockedUntil
		locked := failAt(testLimit, th, now)
		d, want := wantLock[n]
		if locked != want {
			t.Fatalf("failure %d: locked = %v, want %v", n, locked, want)
		}
		if !want {
			if !th.LockedUntil.Equal(before) {
				t.Fatalf("failure %d changed LockedUntil without locking", n)
			}
			continue
		}
		if got := th.LockedUntil.Sub(now); got != d {
			t.Fatalf("lock %d (failure %d) lasts %v, want %v", th.Locks, n, got, d)
		}
		if th.Locks != n/3 {
			t.Fatalf("failure %d: locks = %d, want %d", n, th.Locks, n/3)
		}
	}
}

func TestLimitFail_DurationCappedWithoutOverflow(t *testing.T) {
	t.Parallel()
	for _, l := range []Limit{
		DefaultThrottlePolicy().Account,
		{MaxFailures: 1, Window: time.Hour, BaseLock: time.Second, MaxLock: 24 * time.Hour},
		{MaxFailures: 1, Window: time.Hour, BaseLock: 10 * time.Second, MaxLock: time.Hour},
		{MaxFailures: 1, Window: time.Hour, BaseLock: time.Hour, MaxLock: 30 * 24 * time.Hour},
	} {
		// Locks far beyond where BaseLock << (Locks-1) overflows int64 must still give MaxLock,
		// never a wrapped-around short or negative lock.
		for _, prior := range []int{10, 29, 30, 31, 40, 62, 63, 64, 1000} {
			th := newThrottle(t0)
			th.Locks = prior
			th.Failures = l.MaxFailures - 1
			if !failAt(l, th, t0) {
				t.Fatalf("%+v after %d locks: did not lock", l, prior)
			}
			// The uncapped duration is BaseLock·2^min(prior, 30); float64 cannot overflow here.
			want := l.MaxLock
			if exact := float64(l.BaseLock) * math.Exp2(float64(min(prior, 30))); exact < float64(l.MaxLock) {
				want = time.Duration(exact)
			}
			if got := th.LockedUntil.Sub(t0); got != want {
				t.Fatalf("%+v after %d locks: lock %v, want %v", l, prior, got, want)
			}
		}
	}
}

func TestLimitFail_LocksForgottenAfterQuietDay(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		quiet time.Duration
		want  time.Duration // duration of the next lock
	}{
		{"quiet under a day keeps backoff", lockDecay - time.Minute, 8 * time.Minute},
		{"quiet exactly a day keeps backoff", lockDecay, 8 * time.Minute},
		{"quiet over a day restarts at base", lockDecay + time.Second, time.Minute},
		{"quiet a week restarts at base", 7 * lockDecay, time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			th := newThrottle(t0)
			now := t0
			for range 3 * testLimit.MaxFailures { // three locks: 1, 2, 4 min
				now = now.Add(time.Second)
				failAt(testLimit, th, now)
			}
			if th.Locks != 3 {
				t.Fatalf("locks = %d, want 3", th.Locks)
			}
			for range testLimit.MaxFailures {
				now = now.Add(c.quiet)
				c.quiet = time.Second // only the first gap is quiet
				failAt(testLimit, th, now)
			}
			if got := th.LockedUntil.Sub(now); got != c.want {
				t.Fatalf("next lock %v, want %v (locks %d)", got, c.want, th.Locks)
			}
		})
	}
}

// signIn models Login's throttling (service.go) over in-memory counters: refuse while any of
// the account, pair or IP counter is locked, count failures as recordFailure does, and reset
// the account and pair counters on success.
type signIn struct {
	pol      ThrottlePolicy
	counters map[string]*sqlstore.Throttle
	// accountAdds[i] is the time of each failure that reached the account counter.
	accountAdds   []time.Time
	accountLocked bool
}

func newSignIn(pol ThrottlePolicy) *signIn {
	return &signIn{pol: pol, counters: map[string]*sqlstore.Throttle{}}
}

func (s *signIn) counter(key string, now time.Time) *sqlstore.Throttle {
	t, ok := s.counters[key]
	if !ok {
		t = newThrottle(now)
		s.counters[key] = t
	}
	return t
}

func (s *signIn) locked(now time.Time, keys ...string) bool {
	for _, k := range keys {
		if t, ok := s.counters[k]; ok && t.LockedUntil.After(now) {
			return true
		}
	}
	return false
}

// attempt returns "throttled", "failure" or "success".
func (s *signIn) attempt(ip string, right bool, now time.Time) string {
	acct, pair, ipk := "acct", "pair:"+ip, "ip:"+ip
	if s.locked(now, acct, pair, ipk) {
		return "throttled"
	}
	if right {
		delete(s.counters, acct)
		delete(s.counters, pair)
		return "success"
	}
	pt := s.counter(pair, now)
	failAt(s.pol.Pair, pt, now)
	at := s.counter(acct, now)
	s.pol.Account.roll(at, now)
	if !pt.ContribWindow.Equal(at.WindowStart) {
		pt.Contrib, pt.ContribWindow = 0, at.WindowStart
	}
	if pt.Contrib < s.pol.Account.MaxFailures-1 {
		pt.Contrib++
		if failAt(s.pol.Account, at, now) {
			s.accountLocked = true
		}
		s.accountAdds = append(s.accountAdds, now)
	}
	failAt(s.pol.IP, s.counter(ipk, now), now)
	return "failure"
}

// TestThrottle_OneSourceCannotFillTheAccountCounter is the property behind "a single IP must
// never be able to lock a user out": under DefaultThrottlePolicy one source, attacking at any
// pace, never adds Account.MaxFailures failures to the account counter within one window, so
// it never locks the account.
func TestThrottle_OneSourceCannotFillTheAccountCounter(t *testing.T) {
	t.Parallel()
	pol := DefaultThrottlePolicy()
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 0x7e7e1a))
		s := newSignIn(pol)
		now := t0
		// Pace varies per run from a burst (every 100 ms) to a trickle (every ~10 min), with
		// pauses, over 3000 attempts (hours to weeks of simulated time).
		pace := time.Duration(1+rng.IntN(600_000)) * time.Millisecond
		for range 3000 {
			step := time.Duration(rng.Int64N(int64(2 * pace)))
			if rng.IntN(50) == 0 {
				step += time.Duration(rng.IntN(48)) * time.Hour
			}
			now = now.Add(step)
			s.attempt("203.0.113.66", false, now)
			acct := s.counters["acct"]
			if acct != nil && acct.Failures >= pol.Account.MaxFailures {
				t.Fatalf("seed %d: account counter reached %d at %v", seed, acct.Failures, now.Sub(t0))
			}
		}
		if s.accountLocked {
			t.Fatalf("seed %d: one source locked the account", seed)
		}
		if len(s.accountAdds) == 0 {
			t.Fatalf("seed %d: no failure reached the account counter; the simulation is broken", seed)
		}
	}
}

// TestLogin_OneSourceCannotLockAfterTheUsersOwnSignIn runs the real Login against SQLite with a
// fake clock. The user's successful sign-in resets the account counter but not the attacker's
// pair counter, so the pair window and the account window drift apart; the attacker then adds
// up to Account.MaxFailures-1 at the end of its pair window and as many again at the start of
// the next, both inside one account window, and locks the account from a single IP. The
// in-memory model signIn above, replayed with the same sequence, locks the account too:
//
//	attacker fail @0s; user success @14m; attacker fail ×2 @14m1s; ×3 @15m2s → account locked.
//
// Once misaligned, the windows stay misaligned, so the attacker can keep the account locked.
func TestLogin_OneSourceCannotLockAfterTheUsersOwnSignIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := t0
	clock := func() time.Time { return now }
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: clock})
	p := password.DefaultParams()
	p.Memory, p.Time = 64, 1
	h, err := password.NewHasher(p, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewRing(ctx, token.Config{Issuer: "https://tutela.test", Audience: []string{"tutela"}, Clock: clock},
		&token.MemKeyStore{}, sealer)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Deps{DB: db, Hasher: h, Policy: password.DefaultPolicy(), Tokens: ring, Clock: clock}, Config{})
	const right = "amber falcon meadow 93 tidewater"
	hash, err := h.Hash(ctx, right)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		tn := &tutela.Tenant{Slug: "acme", Name: "acme", Region: "eu"}
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		u := &tutela.User{Email: "ana@example.org"}
		if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
			return err
		}
		return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, hash)
	})
	if err != nil {
		t.Fatal(err)
	}
	login := func(ip, pw string) error {
		_, err := s.Login(ctx, LoginRequest{Tenant: "acme", Email: "ana@example.org", Password: tutela.NewSecret(pw), IP: ip})
		return err
	}
	const attacker, user = "203.0.113.66", "192.0.2.10"
	steps := []struct {
		after time.Duration
		ip    string
		pw    string
		n     int
	}{
		{0, attacker, "guess", 1},
		{14 * time.Minute, user, right, 1},
		{time.Second, attacker, "guess", 2},
		{61 * time.Second, attacker, "guess", 3},
	}
	for _, st := range steps {
		now = now.Add(st.after)
		for range st.n {
			err := login(st.ip, st.pw)
			if st.pw == right && err != nil {
				t.Fatalf("user sign-in at %v: %v", now.Sub(t0), err)
			}
			if st.pw != right && tutela.ErrorCode(err) != tutela.EINVALIDCREDENTIALS {
				t.Fatalf("attacker at %v: %v, want invalid_credentials", now.Sub(t0), err)
			}
		}
	}
	// The attacker's pair is locked now, as it should be; the user's own source must not be.
	if err := login(user, right); err != nil {
		t.Fatalf("one IP locked the user out: %v", err)
	}
}
