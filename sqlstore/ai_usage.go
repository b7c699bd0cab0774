package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
	"tutela/ai"
)

// Usage windows: UTC minutes for the request rate, UTC days and calendar months for the token
// budgets (and the request counts shown with them).
const (
	aiMinute = "minute"
	aiDay    = "day"
	aiMonth  = "month"
)

// maxTokensPerCall bounds what AddTokens accepts at once: far above any model's context, far
// below what could overflow a BIGINT counter.
const maxTokensPerCall = 1 << 40

// AIUsage is a tenant's usage in the windows that contain one instant.
type AIUsage struct {
	MinuteRequests int64     `json:"minute_requests"`
	DayRequests    int64     `json:"day_requests"`
	MonthRequests  int64     `json:"month_requests"`
	DayTokens      int64     `json:"day_tokens"`
	MonthTokens    int64     `json:"month_tokens"`
	MinuteStart    time.Time `json:"minute_start"`
	DayStart       time.Time `json:"day_start"`
	MonthStart     time.Time `json:"month_start"`
}

// AILimitError is Admit's refusal: rate_limited for the request rate, quota_exceeded for a
// token budget. RetryAfter is the time until the window that refused ends, for Retry-After.
type AILimitError struct {
	Code    string // tutela.ERATELIMITED or tutela.EQUOTAEXCEEDED
	Message string
	Wait    time.Duration
}

func (e *AILimitError) Error() string { return e.Message }

// RetryAfter implements middleware.RetryAfterError.
func (e *AILimitError) RetryAfter() time.Duration { return e.Wait }

// Unwrap makes tutela.ErrorCode and ErrorMessage see the code and message.
func (e *AILimitError) Unwrap() error { return tutela.Errorf(e.Code, "%s", e.Message) }

// aiWindows are the starts of the minute, day and month containing t, and their ends.
func aiWindows(t time.Time) (starts, ends [3]time.Time) {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	month := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	starts = [3]time.Time{t.Truncate(time.Minute), day, month}
	ends = [3]time.Time{starts[0].Add(time.Minute), day.AddDate(0, 0, 1), month.AddDate(0, 1, 0)}
	return starts, ends
}

var aiPeriods = [3]string{aiMinute, aiDay, aiMonth}

// Admit counts one inference at the transaction's time against st's limits. It refuses with
// rate_limited when this minute already has st.RequestsPerMinute requests, and with
// quota_exceeded when the month's or the day's tokens have reached st.TokensPerMonth or
// st.TokensPerDay (the month is named first: waiting for the day's end would not help). A
// refused call counts nothing. An admitted one adds a request to the minute, day and month.
//
// The minute's counter goes up only by a conditional UPDATE (requests < limit), which
// PostgreSQL re-checks on the newest row version when a concurrent transaction changed it, so
// parallel calls on every node never admit more than the limit. The token budgets are checked,
// not reserved: a call's tokens are known only once it is answered (AddTokens), so the calls in
// flight when a budget runs out may overshoot it by their own tokens.
//
// Admit also deletes the tenant's minute rows more than an hour old. A nil st reads the
// tenant's saved settings.
func (s AI) Admit(ctx context.Context, st *ai.Settings) error {
	if !tutela.ValidID(s.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if st == nil {
		var err error
		if st, err = s.Settings(ctx); err != nil {
			return err
		}
	}
	now := s.tx.now
	starts, ends := aiWindows(now)
	for _, b := range []struct {
		i     int
		limit int64
		name  string
	}{{2, st.TokensPerMonth, "month"}, {1, st.TokensPerDay, "day"}} {
		if b.limit <= 0 {
			continue
		}
		u, err := s.window(ctx, aiPeriods[b.i], starts[b.i])
		if err != nil {
			return err
		}
		if u.tokens >= b.limit {
			return &AILimitError{Code: tutela.EQUOTAEXCEEDED, Wait: ends[b.i].Sub(now),
				Message: "the tenant's AI token budget for this " + b.name + " is spent"}
		}
	}
	if created, err := s.ensureWindow(ctx, aiMinute, starts[0]); err != nil {
		return err
	} else if created {
		// A new minute: the tenant's minute rows older than an hour go (once a minute, not
		// on every call).
		if _, err := s.tx.exec(ctx, `DELETE FROM ai_usage WHERE tenant_id = $1 AND period = $2 AND period_start < $3`,
			s.tenantID, aiMinute, starts[0].Add(-time.Hour)); err != nil {
			return err
		}
	}
	q := `UPDATE ai_usage SET requests = requests + 1 WHERE tenant_id = $1 AND period = $2 AND period_start = $3`
	args := []any{s.tenantID, aiMinute, starts[0]}
	if st.RequestsPerMinute > 0 {
		q += ` AND requests < $4`
		args = append(args, st.RequestsPerMinute)
	}
	res, err := s.tx.exec(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return &AILimitError{Code: tutela.ERATELIMITED, Wait: ends[0].Sub(now),
			Message: "the tenant's AI requests per minute are used up"}
	}
	for i := 1; i < 3; i++ {
		if err := s.add(ctx, aiPeriods[i], starts[i], 1, 0); err != nil {
			return err
		}
	}
	return nil
}

// AddTokens adds n tokens (prompt plus completion, as the provider reported them) to the day
// and month windows of the transaction's time. Admit counted the request itself.
func (s AI) AddTokens(ctx context.Context, n int64) error {
	if n < 0 || n > maxTokensPerCall {
		return tutela.FieldErrorf("tokens", "tokens must be between 0 and %d", int64(maxTokensPerCall))
	}
	if !tutela.ValidID(s.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if n == 0 {
		return nil
	}
	starts, _ := aiWindows(s.tx.now)
	for i := 1; i < 3; i++ {
		if err := s.add(ctx, aiPeriods[i], starts[i], 0, n); err != nil {
			return err
		}
	}
	return nil
}

// Usage returns the tenant's usage in the windows containing the transaction's time.
func (s AI) Usage(ctx context.Context) (*AIUsage, error) {
	if !tutela.ValidID(s.tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	starts, _ := aiWindows(s.tx.now)
	var w [3]aiWindow
	for i := range 3 {
		var err error
		if w[i], err = s.window(ctx, aiPeriods[i], starts[i]); err != nil {
			return nil, err
		}
	}
	return &AIUsage{MinuteRequests: w[0].requests, DayRequests: w[1].requests, MonthRequests: w[2].requests,
		DayTokens: w[1].tokens, MonthTokens: w[2].tokens, MinuteStart: starts[0], DayStart: starts[1], MonthStart: starts[2]}, nil
}

type aiWindow struct{ requests, tokens int64 }

func (s AI) window(ctx context.Context, period string, start time.Time) (aiWindow, error) {
	var w aiWindow
	err := s.tx.queryRow(ctx, `SELECT requests, tokens FROM ai_usage WHERE tenant_id = $1 AND period = $2 AND period_start = $3`,
		s.tenantID, period, start).Scan(&w.requests, &w.tokens)
	if errors.Is(err, sql.ErrNoRows) {
		return aiWindow{}, nil
	}
	return w, err
}

// ensureWindow makes the window's row if it is missing. A concurrent transaction inserting the
// same row makes this one wait for it, then do nothing.
func (s AI) ensureWindow(ctx context.Context, period string, start time.Time) (created bool, err error) {
	res, err := s.tx.exec(ctx, `INSERT INTO ai_usage (tenant_id, period, period_start, requests, tokens) VALUES ($1,$2,$3,0,0)
		ON CONFLICT (tenant_id, period, period_start) DO NOTHING`, s.tenantID, period, start)
	if isForeignKeyErr(err) {
		return false, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// add adds to a window's counters in one atomic upsert.
func (s AI) add(ctx context.Context, period string, start time.Time, requests, tokens int64) error {
	_, err := s.tx.exec(ctx, `INSERT INTO ai_usage (tenant_id, period, period_start, requests, tokens) VALUES ($1,$2,$3,$4,$5)
		ON CONFLICT (tenant_id, period, period_start) DO UPDATE SET requests = ai_usage.requests + excluded.requests,
		tokens = ai_usage.tokens + excluded.tokens`, s.tenantID, period, start, requests, tokens)
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return err
}
