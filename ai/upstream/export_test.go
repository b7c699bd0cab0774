package upstream

import "time"

// SetSecond shortens the unit of Provider.TimeoutSeconds so an idle-stream timeout is tested
// without waiting whole seconds.
func SetSecond(c *Client, d time.Duration) { c.second = d }

// Backoff exposes the retry delay for the cap test.
func Backoff(c *Client, n int) time.Duration { return c.backoff(n) }
