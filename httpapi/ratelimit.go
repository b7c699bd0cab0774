package httpapi

import (
	"context"

	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// ShareRateLimit shares the per-client rate limit with the other nodes on the database until
// ctx ends (Deps.RateShareEvery on PostgreSQL); otherwise it returns at once. A database that
// cannot be reached is logged when flushing starts failing and when it recovers; meanwhile the
// node limits on what it knows (middleware/ratelimit_shared.go).
func (s *Server) ShareRateLimit(ctx context.Context) {
	s.limiter.Run(ctx, s.d.RateShareEvery, func(err error) {
		if err != nil {
			s.d.Logger.Warn("rate limit: cannot share counts with the other nodes; limiting on this node's counts", "err", err)
			return
		}
		s.d.Logger.Info("rate limit: sharing counts with the other nodes again")
	})
}

// rateCounts shares the limiter's counts through the store's rate_windows table.
type rateCounts struct{ db *sqlstore.DB }

func (r rateCounts) AddRateCounts(ctx context.Context, deltas []middleware.WindowCount, keys [][]byte, since int64) ([]middleware.WindowCount, error) {
	in := make([]sqlstore.RateCount, len(deltas))
	for i, d := range deltas {
		in[i] = sqlstore.RateCount(d)
	}
	got, err := r.db.AddRateCounts(ctx, in, keys, since)
	out := make([]middleware.WindowCount, len(got))
	for i, c := range got {
		out[i] = middleware.WindowCount(c)
	}
	return out, err
}

func (r rateCounts) PruneRateCounts(ctx context.Context, before int64) (int64, error) {
	return r.db.PruneRateCounts(ctx, before)
}
