package storetest

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/sqlstore"
)

func (k *aiKit) usage(t *testing.T, tenantID string) *sqlstore.AIUsage {
	t.Helper()
	var u *sqlstore.AIUsage
	k.must(t, tenantID, func(s sqlstore.AI) (err error) { u, err = s.Usage(ctx); return err })
	return u
}

func (k *aiKit) admit(tenantID string, st *ai.Settings) error {
	return k.do(tenantID, func(s sqlstore.AI) error { return s.Admit(ctx, st) })
}

// mustLimit checks err is Admit's refusal with code and a Retry-After of wait.
func mustLimit(t *testing.T, err error, code string, wait time.Duration, word string) {
	t.Helper()
	mustCode(t, err, code)
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ra.RetryAfter() != wait {
		t.Fatalf("%v: retry after %v, want %v", err, ra, wait)
	}
	if !strings.Contains(tutela.ErrorMessage(err), word) {
		t.Fatalf("message %q does not say %q", tutela.ErrorMessage(err), word)
	}
}

func testAIAdmit(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiadm")
	start := time.Date(2026, 3, 31, 23, 58, 30, 0, time.UTC)
	k.clock.Set(start)
	st := &ai.Settings{RequestsPerMinute: 3, TokensPerDay: 100, TokensPerMonth: 150}
	for range 3 {
		if err := k.admit(k.a, st); err != nil {
			t.Fatal(err)
		}
	}
	mustLimit(t, k.admit(k.a, st), tutela.ERATELIMITED, 30*time.Second, "minute")
	if u := k.usage(t, k.a); u.MinuteRequests != 3 || u.DayRequests != 3 || u.MonthRequests != 3 ||
		!u.MinuteStart.Equal(start.Truncate(time.Minute)) {
		t.Fatalf("usage after a refusal: %+v", u)
	}
	// The next minute admits again; the day and month keep counting.
	k.clock.Add(30 * time.Second)
	if err := k.admit(k.a, st); err != nil {
		t.Fatal(err)
	}
	if u := k.usage(t, k.a); u.MinuteRequests != 1 || u.DayRequests != 4 {
		t.Fatalf("usage in the next minute: %+v", u)
	}
	// The day's budget: spent at exactly 100 tokens; refused until midnight.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.AddTokens(ctx, 99) })
	if err := k.admit(k.a, st); err != nil {
		t.Fatalf("99 of 100 tokens spent: %v", err)
	}
	k.must(t, k.a, func(s sqlstore.AI) error { return s.AddTokens(ctx, 1) })
	mustLimit(t, k.admit(k.a, st), tutela.EQUOTAEXCEEDED, time.Minute, "day")
	// Past midnight (also a new month): admitted again.
	k.clock.Add(time.Minute) // 2026-04-01 00:00:00
	if err := k.admit(k.a, st); err != nil {
		t.Fatalf("new day: %v", err)
	}
	u := k.usage(t, k.a)
	if u.DayTokens != 0 || u.MonthTokens != 0 || u.DayRequests != 1 || u.MonthRequests != 1 ||
		!u.DayStart.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) || !u.MonthStart.Equal(u.DayStart) {
		t.Fatalf("usage in the new month: %+v", u)
	}
	// The month's budget across days: 90 today, 60 tomorrow reaches 150; refused until May,
	// though the day's budget alone would allow it.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.AddTokens(ctx, 90) })
	k.clock.Add(24 * time.Hour)
	k.must(t, k.a, func(s sqlstore.AI) error { return s.AddTokens(ctx, 60) })
	mustLimit(t, k.admit(k.a, st), tutela.EQUOTAEXCEEDED, 29*24*time.Hour, "month")
	// Raising the budget (the limits come from the caller's settings) admits at once.
	if err := k.admit(k.a, &ai.Settings{TokensPerMonth: 151}); err != nil {
		t.Fatal(err)
	}
	k.clock.Set(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	if err := k.admit(k.a, st); err != nil {
		t.Fatalf("new month: %v", err)
	}
	// Zero limits are unlimited; a nil settings reads the saved ones.
	for range 20 {
		if err := k.admit(k.a, &ai.Settings{}); err != nil {
			t.Fatal(err)
		}
	}
	k.must(t, k.a, func(s sqlstore.AI) error { return s.PutSettings(ctx, &ai.Settings{RequestsPerMinute: 21}) })
	if err := k.admit(k.a, nil); tutela.ErrorCode(err) != tutela.ERATELIMITED {
		t.Fatalf("Admit(nil) with 21 of 21 used: %v", err)
	}
	// Bad token counts are refused and add nothing.
	for _, n := range []int64{-1, 1 << 41} {
		mustField(t, k.do(k.a, func(s sqlstore.AI) error { return s.AddTokens(ctx, n) }), "tokens")
	}
	if u := k.usage(t, k.a); u.DayTokens != 0 {
		t.Fatalf("day tokens after refused adds: %d", u.DayTokens)
	}
	// Minute rows older than an hour are deleted by the next Admit (of that tenant only); the
	// day and month rows stay.
	if err := k.admit(k.b, st); err != nil {
		t.Fatal(err)
	}
	count := func(tenantID, period string) int {
		t.Helper()
		var n int
		if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM ai_usage WHERE tenant_id = $1 AND period = $2`,
			tenantID, period).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(k.a, "minute"); n != 1 {
		t.Fatalf("%d minute rows at 00:00, want 1 (older ones cleaned up)", n)
	}
	k.clock.Add(30 * time.Minute) // 00:30
	if err := k.admit(k.a, st); err != nil {
		t.Fatal(err)
	}
	k.clock.Add(32 * time.Minute) // 01:02: the 00:00 row is more than an hour old, the 00:30 one not
	if err := k.admit(k.a, st); err != nil {
		t.Fatal(err)
	}
	if n := count(k.a, "minute"); n != 2 {
		t.Fatalf("%d minute rows at 01:02, want 2 (00:30 and 01:02)", n)
	}
	if count(k.b, "minute") != 1 || count(k.a, "day") != 4 || count(k.a, "month") != 3 {
		t.Fatalf("clean-up removed tenant B's minute (%d) or day (%d) or month (%d) rows",
			count(k.b, "minute"), count(k.a, "day"), count(k.a, "month"))
	}
}

// A refusal counts nothing even when the caller commits its transaction anyway (to record the
// refusal, say).
func testAIAdmitRefusalCountsNothing(t *testing.T, open Opener) {
	k := newAIKit(t, open, "airef")
	st := &ai.Settings{RequestsPerMinute: 1, TokensPerDay: 10}
	if err := k.admit(k.a, st); err != nil {
		t.Fatal(err)
	}
	var refused error
	k.must(t, k.a, func(s sqlstore.AI) error {
		refused = s.Admit(ctx, st)
		return nil // commit
	})
	mustCode(t, refused, tutela.ERATELIMITED)
	k.clock.Add(time.Minute)
	k.must(t, k.a, func(s sqlstore.AI) error { return s.AddTokens(ctx, 10) })
	k.must(t, k.a, func(s sqlstore.AI) error {
		refused = s.Admit(ctx, st)
		return nil
	})
	mustCode(t, refused, tutela.EQUOTAEXCEEDED)
	if u := k.usage(t, k.a); u.MinuteRequests != 0 || u.DayRequests != 1 || u.MonthRequests != 1 || u.DayTokens != 10 {
		t.Fatalf("usage after committed refusals: %+v", u)
	}
}

// Parallel transactions (on PostgreSQL, truly concurrent) never admit more than the limit, and
// no increment is lost.
func testAIAdmitConcurrent(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aicon")
	const callers, limit = 40, 7
	st := &ai.Settings{RequestsPerMinute: limit}
	var admitted, limited atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
				s := tx.AI(k.a)
				if err := s.Admit(ctx, st); err != nil {
					return err
				}
				return s.AddTokens(ctx, 3)
			})
			switch tutela.ErrorCode(err) {
			case "":
				admitted.Add(1)
			case tutela.ERATELIMITED:
				limited.Add(1)
			default:
				t.Errorf("Admit: %v", err)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != limit || limited.Load() != callers-limit {
		t.Fatalf("admitted %d, rate limited %d; want %d and %d", admitted.Load(), limited.Load(), limit, callers-limit)
	}
	if u := k.usage(t, k.a); u.MinuteRequests != limit || u.DayRequests != limit || u.MonthRequests != limit || u.DayTokens != 3*limit ||
		u.MonthTokens != 3*limit {
		t.Fatalf("usage %+v; want %d requests and %d tokens", u, limit, 3*limit)
	}
	// Token additions alone, in parallel, lose nothing either.
	for range callers {
		wg.Go(func() {
			if err := k.do(k.a, func(s sqlstore.AI) error { return s.AddTokens(ctx, 5) }); err != nil {
				t.Errorf("AddTokens: %v", err)
			}
		})
	}
	wg.Wait()
	if u := k.usage(t, k.a); u.DayTokens != 3*limit+5*callers {
		t.Fatalf("day tokens %d, want %d", u.DayTokens, 3*limit+5*callers)
	}
}
