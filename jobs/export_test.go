package jobs

// SetAfterGrace replaces the grace timer: after is called with the function that ends the grace,
// when the worker begins to stop.
func SetAfterGrace(q *Queue, after func(endGrace func())) { q.afterGrace = after }
