// Package clocktest is a clock for tests: time moves only when the test moves it, so lockouts,
// expiries, TOTP windows and timestamps are tested without sleeping. Safe for concurrent use.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a movable clock; its Now method is a tutela clock (func() time.Time).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock that reads t until moved.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d (backwards when d is negative).
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
