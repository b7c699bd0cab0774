package oidc

import (
	"math"
	"testing"
	"time"
)

// A max_age too large for a time.Duration must not wrap to a small or negative bound (which
// would, for example, make every session look too old, or shorten what the client asked for).
func TestMaxAgeDuration_NoOverflow(t *testing.T) {
	t.Parallel()
	limit := uint(math.MaxInt64 / int64(time.Second))
	for _, tc := range []struct {
		sec  uint
		want time.Duration
	}{
		{0, 0},
		{300, 5 * time.Minute},
		{limit, time.Duration(limit) * time.Second},
		{limit + 1, time.Duration(math.MaxInt64)},
		{18446744073, time.Duration(math.MaxInt64)}, // × 1e9 wraps to ~0.7 s in 64 bits
		{math.MaxUint, time.Duration(math.MaxInt64)},
	} {
		if got := maxAgeDuration(tc.sec); got != tc.want {
			t.Errorf("maxAgeDuration(%d) = %v, want %v", tc.sec, got, tc.want)
		}
	}
}
