package partners

import (
	"strings"
	"testing"
	"time"
)

func TestCheckExpiry_FutureAndWithinACalendarYear(t *testing.T) {
	now := time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		expires time.Time
		ok      bool
	}{
		{now.Add(-time.Nanosecond), false},
		{now, false},
		{now.Add(time.Microsecond), true},
		{now.AddDate(1, 0, 0), true},
		{now.AddDate(1, 0, 0).Add(time.Microsecond), false},
		{now.AddDate(10, 0, 0), false},
	} {
		if err := CheckExpiry(c.expires, now); (err == nil) != c.ok {
			t.Errorf("expiry %s: %v, want ok=%v", c.expires, err, c.ok)
		}
	}
}

func TestValidJustification_RequiredBoundedText(t *testing.T) {
	for _, c := range []struct {
		j  string
		ok bool
	}{
		{"", false}, {" \n\t", false}, {"a\x00b", false}, {"\xff", false},
		{strings.Repeat("é", MaxJustificationLen+1), false},
		{strings.Repeat("é", MaxJustificationLen), true},
		{"Referred for housing,\nsee case 2026-17", true},
	} {
		if err := ValidJustification(c.j); (err == nil) != c.ok {
			t.Errorf("%q: %v, want ok=%v", c.j, err, c.ok)
		}
	}
}

func TestShareActive_UntilExpiryUnlessRevoked(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := &Share{ExpiresAt: now.Add(time.Hour)}
	if !s.Active(now) || !s.Active(now.Add(time.Hour-time.Nanosecond)) || s.Active(now.Add(time.Hour)) {
		t.Fatal("a share is active strictly before its expiry")
	}
	s.RevokedAt = &now
	if s.Active(now) {
		t.Fatal("a revoked share is not active")
	}
}
