package sqlstore

import (
	"testing"
	"time"
)

// The usage windows are UTC minutes, days and calendar months, whatever zone the instant is in,
// across year ends and leap days.
func TestAIWindows_UTCMinuteDayMonth(t *testing.T) {
	zurich := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		at                 time.Time
		minute, day, month time.Time
		monthEnd           time.Time
	}{
		{time.Date(2026, 12, 31, 23, 59, 59, 999_999_000, time.UTC), time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC),
			time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC),
			time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC)},
		// 00:30 on 1 March in Zurich is still 28 February in UTC.
		{time.Date(2026, 3, 1, 0, 30, 0, 0, zurich), time.Date(2026, 2, 28, 23, 30, 0, 0, time.UTC),
			time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
	} {
		starts, ends := aiWindows(tc.at)
		if !starts[0].Equal(tc.minute) || !starts[1].Equal(tc.day) || !starts[2].Equal(tc.month) ||
			!ends[0].Equal(tc.minute.Add(time.Minute)) || !ends[1].Equal(tc.day.AddDate(0, 0, 1)) || !ends[2].Equal(tc.monthEnd) {
			t.Errorf("aiWindows(%v) = %v, %v", tc.at, starts, ends)
		}
		for _, s := range starts {
			if s.Location() != time.UTC {
				t.Errorf("window start %v not in UTC", s)
			}
		}
	}
}
