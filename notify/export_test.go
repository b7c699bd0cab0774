package notify

import "time"

// WithTimeout shortens the delivery timeout, so an endpoint that never answers is tested
// without waiting DeliveryTimeout.
func WithTimeout(o Options, d time.Duration) Options { o.timeout = d; return o }
