package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
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
// the account, pair or IP counter is locked, count failures as Service.failed does, and reset
// the account and pair counters on success, as signInAttempt.succeeded does.
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
	// Goroutine-safe: the store's background epoch poller reads the clock too.
	clock := clocktest.New(t0)
	s, _ := newTestService(t, sqlstore.SQLite, clock.Now, Config{}, "ana@example.org")
	const right = rightPassword
	login := func(ip, pw string) error { return signInAs(s, "ana@example.org", ip, pw) }
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
		clock.Add(st.after)
		for range st.n {
			err := login(st.ip, st.pw)
			if st.pw == right && err != nil {
				t.Fatalf("user sign-in at %v: %v", clock.Now().Sub(t0), err)
			}
			if st.pw != right && tutela.ErrorCode(err) != tutela.EINVALIDCREDENTIALS {
				t.Fatalf("attacker at %v: %v, want invalid_credentials", clock.Now().Sub(t0), err)
			}
		}
	}
	// The attacker's pair is locked now, as it should be; the user's own source must not be.
	if err := login(user, right); err != nil {
		t.Fatalf("one IP locked the user out: %v", err)
	}
}

const rightPassword = "amber falcon meadow 93 tidewater"

// newTestService is the service on a fresh store of dialect d reading clock, with tenant "acme"
// whose users emails all have the password rightPassword.
func newTestService(t *testing.T, d sqlstore.Dialect, clock tutela.Clock, cfg Config, emails ...string) (*Service, *sqlstore.DB) {
	t.Helper()
	ctx := context.Background()
	db := sqltest.Open(t, d, sqlstore.Options{Clock: clock})
	p := password.DefaultParams()
	p.Memory, p.Time = 64, 1
	h, err := password.NewHasher(p, testHasherSlots, 10*time.Second)
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
	s := New(Deps{DB: db, Hasher: h, Policy: password.DefaultPolicy(), Tokens: ring, Clock: clock}, cfg)
	hash, err := h.Hash(ctx, rightPassword)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		tn := &tutela.Tenant{Slug: "acme", Name: "acme", Region: "eu"}
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		for _, e := range emails {
			u := &tutela.User{Email: e}
			if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
				return err
			}
			if err := tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, hash); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func signInAs(s *Service, email, ip, pw string) error {
	_, err := s.Login(context.Background(), LoginRequest{Tenant: "acme", Email: email, Password: tutela.NewSecret(pw), IP: ip})
	return err
}

func TestThrottleKeys_IPv6BySlash64IPv4Whole(t *testing.T) {
	t.Parallel()
	acct := accountKey("acme", "ana@example.org")
	cases := []struct {
		a, b string
		same bool
	}{
		{"2001:db8::1", "2001:db8::c", true},
		{"2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", true},
		{"2001:db8::1", "2001:db8:0:1::1", false}, // the next /64
		{"192.0.2.1", "::ffff:192.0.2.1", true},   // IPv4-mapped IPv6 is IPv4
		{"192.0.2.1", "192.0.2.2", false},         // IPv4 stays the full address
		{"unknown", "unknown", true},              // no resolved address: one source
		{"unknown", "192.0.2.1", false},
	}
	for _, c := range cases {
		if got := bytes.Equal(ipKey(c.a), ipKey(c.b)); got != c.same {
			t.Errorf("ipKey(%s) == ipKey(%s): %v, want %v", c.a, c.b, got, c.same)
		}
		if got := bytes.Equal(pairKey(c.a, acct), pairKey(c.b, acct)); got != c.same {
			t.Errorf("pairKey(%s) == pairKey(%s): %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// One IPv6 host rotating addresses inside its /64 is one source: it can neither lock the
// account (the reviewer's reproduction: 12 wrong guesses from 2001:db8::1 … 2001:db8::c) nor
// pass the per-IP limit. Two /64s are two sources, as two IPv4 addresses are.
func TestLogin_IPv6AddressesInOneSlash64AreOneSource(t *testing.T) {
	t.Parallel()
	pol := DefaultThrottlePolicy()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			clock := clocktest.New(t0)
			s, _ := newTestService(t, d, clock.Now, Config{}, "ana@example.org", "bob@example.org")
			wrong := 0
			for round := range 5 {
				for i := 1; i <= 12; i++ {
					err := signInAs(s, "ana@example.org", fmt.Sprintf("2001:db8::%x", i+12*round), "guess")
					switch tutela.ErrorCode(err) {
					case tutela.EINVALIDCREDENTIALS:
						wrong++
					case tutela.ETOOMANYATTEMPTS:
					default:
						t.Fatalf("guess %d: %v", i, err)
					}
				}
				if round == 0 && wrong != pol.Pair.MaxFailures {
					t.Fatalf("one /64 had %d guesses checked, want the pair limit %d", wrong, pol.Pair.MaxFailures)
				}
				clock.Add(61 * time.Second)
			}
			if err := signInAs(s, "ana@example.org", "192.0.2.10", rightPassword); err != nil {
				t.Fatalf("one /64 locked the user out: %v", err)
			}

			// Credential stuffing across accounts, every attempt from a new address in one /64.
			var last error
			for i := range pol.IP.MaxFailures + 10 {
				last = signInAs(s, fmt.Sprintf("user%d@example.org", i), fmt.Sprintf("2001:db8:0:5:%x::1", i+1), "Password1!")
			}
			if tutela.ErrorCode(last) != tutela.ETOOMANYATTEMPTS {
				t.Fatalf("after %d accounts from one /64: %v, want too_many_attempts", pol.IP.MaxFailures+10, last)
			}
			if err := signInAs(s, "bob@example.org", "2001:db8:0:5:abcd::1", rightPassword); tutela.ErrorCode(err) != tutela.ETOOMANYATTEMPTS {
				t.Fatalf("the locked /64 signed in from a new address: %v", err)
			}
			if err := signInAs(s, "bob@example.org", "2001:db8:0:6::1", rightPassword); err != nil {
				t.Fatalf("the next /64 is refused: %v", err)
			}

			// Two /64s are two sources, and two sources can lock the account: three guesses from
			// one and two from the other are the account's five.
			for net, n := range map[string]int{"2001:db8:0:a": 3, "2001:db8:0:b": 2} {
				for i := 1; i <= n; i++ {
					if err := signInAs(s, "bob@example.org", fmt.Sprintf("%s::%x", net, i), "guess"); tutela.ErrorCode(err) != tutela.EINVALIDCREDENTIALS {
						t.Fatalf("guess from %s: %v", net, err)
					}
				}
			}
			if err := signInAs(s, "bob@example.org", "192.0.2.10", rightPassword); tutela.ErrorCode(err) != tutela.ETOOMANYATTEMPTS {
				t.Fatalf("two /64s did not lock the account: %v", err)
			}
		})
	}
}

// Concurrent wrong guesses cannot all be answered before the lock: however many arrive at once,
// exactly the limit's worth are answered "wrong" (and counted), the rest too_many_attempts, and
// the counter stops at the limit, locked. For one account from many sources (the account
// limit), from one source (the pair limit), and across accounts from one source (the IP limit).
func TestLogin_ConcurrentWrongPasswordsAnsweredAtMostMaxFailuresTimes(t *testing.T) {
	t.Parallel()
	pol := DefaultThrottlePolicy()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			clock := clocktest.New(t0)
			s, db := newTestService(t, d, clock.Now, Config{}, "ana@example.org", "bob@example.org")
			cases := []struct {
				name    string
				email   func(i int) string
				ip      func(i int) string
				n, want int
				counter []byte // ends at want failures, locked
			}{
				{"many sources", func(int) string { return "ana@example.org" }, func(i int) string { return fmt.Sprintf("203.0.113.%d", i+1) },
					30, pol.Account.MaxFailures, accountKey("acme", "ana@example.org")},
				{"one source", func(int) string { return "bob@example.org" }, func(int) string { return "198.51.100.66" },
					30, pol.Pair.MaxFailures, pairKey("198.51.100.66", accountKey("acme", "bob@example.org"))},
				{"one source, many accounts", func(i int) string { return fmt.Sprintf("user%d@example.org", i) },
					func(int) string { return "198.51.100.77" }, pol.IP.MaxFailures + 30, pol.IP.MaxFailures, ipKey("198.51.100.77")},
			}
			for _, c := range cases {
				n := c.n
				errs := make([]error, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						<-start
						errs[i] = signInAs(s, c.email(i), c.ip(i), "wrong guess")
					})
				}
				close(start)
				wg.Wait()
				verified, refused := 0, 0
				for _, err := range errs {
					switch tutela.ErrorCode(err) {
					case tutela.EINVALIDCREDENTIALS:
						verified++
					case tutela.ETOOMANYATTEMPTS:
						refused++
					default:
						t.Fatalf("%s: %v", c.name, err)
					}
				}
				if verified != c.want || refused != n-c.want {
					t.Fatalf("%s: %d guesses answered wrong and %d refused of %d concurrent, want %d answered",
						c.name, verified, refused, n, c.want)
				}
				if rows := throttles(t, db, c.counter); len(rows) != 1 || rows[0].Failures != c.want || !rows[0].LockedUntil.After(t0) {
					t.Fatalf("%s: counter %+v, want %d failures and locked", c.name, rows, c.want)
				}
			}
			// The many sources locked ana's account; the one source locked only itself.
			if err := signInAs(s, "ana@example.org", "192.0.2.10", rightPassword); tutela.ErrorCode(err) != tutela.ETOOMANYATTEMPTS {
				t.Fatalf("ana after 30 concurrent guesses: %v, want too_many_attempts", err)
			}
			if err := signInAs(s, "bob@example.org", "192.0.2.10", rightPassword); err != nil {
				t.Fatalf("bob from his own address: %v", err)
			}
		})
	}
}

// A success never writes the per-source counter: signing in many times from one address (an
// office behind NAT) never reaches the IP limit, and leaves no counter behind.
func TestLogin_SuccessesDoNotCountTowardsTheIPLimit(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	s, db := newTestService(t, sqlstore.SQLite, clock.Now, Config{}, "ana@example.org")
	const office = "192.0.2.80"
	for i := range DefaultThrottlePolicy().IP.MaxFailures + 10 {
		if err := signInAs(s, "ana@example.org", office, rightPassword); err != nil {
			t.Fatalf("sign-in %d: %v", i+1, err)
		}
	}
	rows := throttles(t, db, ipKey(office), accountKey("acme", "ana@example.org"), pairKey(office, accountKey("acme", "ana@example.org")))
	if len(rows) != 0 {
		t.Fatalf("counters after successes only: %+v, want none", rows)
	}
}

func throttles(t *testing.T, db *sqlstore.DB, keys ...[]byte) []*sqlstore.Throttle {
	t.Helper()
	var rows []*sqlstore.Throttle
	err := db.View(context.Background(), func(tx *sqlstore.Tx) (err error) { rows, err = tx.Throttles(context.Background(), keys...); return err })
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A key locked between an attempt's check and its answer (guesses from the same source
// answered meanwhile) refuses the answer, wrong or right, and changes no counter: the
// transaction that would have counted the failure or cleared the counters rolls back.
func TestSignInAttempt_LockedAfterTheCheckRefusesTheAnswer(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := clocktest.New(t0)
			pol := DefaultThrottlePolicy()
			s, db := newTestService(t, d, clock.Now, Config{}, "ana@example.org")
			const src = "203.0.113.1"
			acct := accountKey("acme", "ana@example.org")
			keys := [][]byte{pairKey(src, acct), acct, ipKey(src)}
			var wrong, right *signInAttempt
			err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
				if wrong, err = checkSignIn(ctx, tx, keys[1], keys[0], keys[2]); err != nil {
					return err
				}
				right, err = checkSignIn(ctx, tx, keys[1], keys[0], keys[2])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for range pol.Pair.MaxFailures {
				if err := signInAs(s, "ana@example.org", src, "guess"); tutela.ErrorCode(err) != tutela.EINVALIDCREDENTIALS {
					t.Fatal(err)
				}
			}
			before := throttles(t, db, keys...)
			if len(before) != 3 || before[0].LockedUntil.IsZero() {
				t.Fatalf("the pair should be locked now: %+v", before)
			}
			var throttled *ThrottledError
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return s.failed(ctx, tx, wrong) }); !errors.As(err, &throttled) {
				t.Fatalf("a wrong guess answered after the lock: %v, want ThrottledError", err)
			}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return right.succeeded(ctx, tx) }); !errors.As(err, &throttled) {
				t.Fatalf("a right password answered after the lock: %v, want ThrottledError", err)
			}
			after := throttles(t, db, keys...)
			if len(after) != len(before) {
				t.Fatalf("%d counters after, %d before", len(after), len(before))
			}
			for i := range before {
				x, y := before[i], after[i]
				if x.Failures != y.Failures || x.Locks != y.Locks || !x.LockedUntil.Equal(y.LockedUntil) ||
					!x.WindowStart.Equal(y.WindowStart) || x.Contrib != y.Contrib {
					t.Errorf("%s counter changed to %+v, was %+v", x.Kind, y, x)
				}
			}
		})
	}
}

// 32 people behind one address (a clinic's NAT) signing in to one shared account at once all
// get in: nothing is reserved against the pair limit while a password is being verified, so
// concurrent right passwords never see too_many_attempts.
func TestLogin_ConcurrentRightPasswordsFromOneAddressAllSucceed(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			clock := clocktest.New(t0)
			s, db := newTestService(t, d, clock.Now, Config{}, "ana@example.org", "bob@example.org")
			const clinic, n = "192.0.2.80", 32
			for round, email := range []string{"ana@example.org", "bob@example.org"} {
				if round == 1 {
					// bob's account already has failures from this address: the successes
					// clear them without tripping over them.
					for range DefaultThrottlePolicy().Pair.MaxFailures - 1 {
						if err := signInAs(s, email, clinic, "guess"); tutela.ErrorCode(err) != tutela.EINVALIDCREDENTIALS {
							t.Fatal(err)
						}
					}
				}
				errs := make([]error, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						<-start
						errs[i] = signInAs(s, email, clinic, rightPassword)
					})
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("%s sign-in %d of %d concurrent: %v", email, i+1, n, err)
					}
				}
				acct := accountKey("acme", email)
				if rows := throttles(t, db, acct, pairKey(clinic, acct)); len(rows) != 0 {
					t.Errorf("%s: counters left after the successes: %+v", email, rows)
				}
			}
		})
	}
}
