package httpapi_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"tutela/sqlstore/sqltest"
)

// perUserLimit is the number of wrong second factors, and of wrong re-entered passwords, that
// lock a user's counter (identity's mfaLimit and passwordLimit: 5 in 15 minutes).
const perUserLimit = 5

// concurrently sends n requests at once, built by send(i), and counts the answers by status.
func concurrently(n int, send func(i int) int) map[int]int {
	statuses := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			statuses[i] = send(i)
		})
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	return count
}

// wrongTOTP is a code that no time step near now accepts.
func (e *env) wrongTOTP(t *testing.T, secret string) string {
	t.Helper()
	var near []string
	for _, d := range []time.Duration{-time.Minute, -30 * time.Second, 0, 30 * time.Second, time.Minute} {
		c, err := totp.GenerateCode(secret, e.clock.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		near = append(near, c)
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i); !slices.Contains(near, c) {
			return c
		}
	}
}

// Concurrent wrong codes cannot all pass the lock check before any is counted: of 30 sent at
// once, at most the limit's worth are checked (401); the rest are refused unchecked (429).
func TestMFA_ConcurrentWrongCodesCheckedAtMostLimitTimes(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			e.seed(t, "acme", "ana@example.org", pw)
			first := e.login(t, "acme", "ana@example.org", pw, "")
			secret := e.enrolTOTP(t, first.AccessToken)
			ch := e.passwordStep(t, "acme", "ana@example.org", "")
			body := `{"challenge":"` + ch.MFA.Challenge + `","code":"` + e.wrongTOTP(t, secret) + `"}`
			got := concurrently(30, func(i int) int {
				res, _ := e.req(t, "POST", "/v1/auth/mfa", body, fmt.Sprintf("203.0.113.%d", i+1), nil)
				return res.StatusCode
			})
			if got[401] != perUserLimit || got[429] != 30-perUserLimit {
				t.Fatalf("answers %v: want %d codes checked (401) and the rest refused (429)", got, perUserLimit)
			}
			if code, _, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`); code != 429 {
				t.Fatalf("the right code while locked: %d %s", code, b)
			}
		})
	}
}

// The same for re-entered passwords: a stolen session firing guesses in parallel gets at most
// the limit's worth of password checks.
func TestReauthenticate_ConcurrentWrongPasswordsCheckedAtMostLimitTimes(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			e.seed(t, "acme", "ana@example.org", pw)
			a := e.login(t, "acme", "ana@example.org", pw, "")
			got := concurrently(30, func(i int) int {
				res, _ := e.req(t, "POST", "/v1/auth/reauthenticate", fmt.Sprintf(`{"password":"guess number %d"}`, i), "", a.cookie)
				return res.StatusCode
			})
			if got[401] != perUserLimit || got[429] != 30-perUserLimit {
				t.Fatalf("answers %v: want %d passwords checked (401) and the rest refused (429)", got, perUserLimit)
			}
			if res, _ := e.req(t, "POST", "/v1/auth/reauthenticate", `{"password":"`+pw+`"}`, "", a.cookie); res.StatusCode != 429 {
				t.Fatalf("the right password while locked: %d", res.StatusCode)
			}
		})
	}
}
