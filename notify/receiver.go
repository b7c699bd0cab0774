package notify

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// ErrReplay is a delivery whose event ID the receiver has already accepted.
var ErrReplay = errors.New("notify: webhook delivery already received (replay or duplicate)")

// maxRemembered bounds the IDs a Receiver keeps. A flood of distinct validly signed deliveries
// can only come from the sender; past the bound the receiver refuses rather than forgets
// (forgetting early would let a captured delivery be replayed).
const maxRemembered = 1 << 20

// Receiver is the receiving side of Tutela's signed webhooks, for a receiver written in Go (and
// Tutela's tests): Verify checks the timestamp and the signature (Verify above), then refuses a
// delivery whose event ID it accepted before. An ID is remembered for twice Tolerance: a
// delivery older than Tolerance is refused by its timestamp anyway, so together they refuse
// every replay, and a legitimate retry (same ID, new timestamp) of an event already accepted is
// refused as a duplicate, which is what at-least-once delivery asks of a receiver. Both edges
// are inclusive: Verify accepts a timestamp exactly Tolerance away, and an ID accepted at a is
// kept through a+2*Tolerance itself, which is never before the last instant (timestamp plus
// Tolerance) the same signed bytes are timely again.
//
// The ID is read from the signed body's "id" member, not only the Tutela-Webhook-Id header,
// which the signature does not cover: a replay with a fresh header ID is still caught.
type Receiver struct {
	secret string

	mu   sync.Mutex
	seen map[string]time.Time // event ID -> the last instant it is remembered
	// nextSweep is when expired IDs are next removed from seen.
	nextSweep time.Time
}

// NewReceiver returns a Receiver for deliveries signed with secret.
func NewReceiver(secret string) *Receiver {
	return &Receiver{secret: secret, seen: map[string]time.Time{}}
}

// Verify accepts a delivery once: nil the first time a correctly signed, timely delivery of an
// event arrives, ErrTimestamp, ErrSignature or ErrReplay otherwise. A receiver that then fails
// to process the event should call Forget, so that the sender's retry is accepted.
func (r *Receiver) Verify(h http.Header, body []byte, now time.Time) error {
	if err := Verify(r.secret, h, body, now); err != nil {
		return err
	}
	var b struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ID == "" || (h.Get(HeaderID) != "" && h.Get(HeaderID) != b.ID) {
		return ErrSignature
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Expired IDs are swept at most once a Tolerance, not on every delivery: a sweep walks
	// every remembered ID. An expired ID still remembered is judged by its time below.
	if !now.Before(r.nextSweep) {
		for id, until := range r.seen {
			if now.After(until) {
				delete(r.seen, id)
			}
		}
		r.nextSweep = now.Add(Tolerance)
	}
	// Strictly after: a delivery accepted at timestamp-Tolerance is still timely at
	// timestamp+Tolerance, exactly until.
	if until, ok := r.seen[b.ID]; ok && !now.After(until) {
		return ErrReplay
	}
	if len(r.seen) >= maxRemembered {
		return ErrReplay
	}
	r.seen[b.ID] = now.Add(2 * Tolerance)
	return nil
}

// Forget lets the event with id be accepted again (its processing failed).
func (r *Receiver) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, id)
}
