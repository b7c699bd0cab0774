package password

import (
	"context"
	"errors"
	"sync"
)

// Slot is one of a Hasher's hashing slots, held by a caller across several steps: take it
// (Hasher.Acquire), check whatever must still hold once the wait for a slot is over, then verify
// in it (Slot.Verify, Slot.DummyVerify), and release it. Sign-in uses it to re-check its
// throttles after queueing for a slot and before hashing, and to keep the slot until the
// failure is counted, so that guesses queued when a key locks are refused without being hashed
// (identity/throttle.go).
//
// Unlike Verify and DummyVerify, which take a slot only after the pepper has answered, a
// Slot's Verify and DummyVerify ask the pepper while the slot is held: a vault cache miss then
// holds the slot for a KMS round trip.
type Slot struct {
	h    *Hasher
	once sync.Once
	done chan struct{}
}

// errSlotReleased is returned by a Slot's Verify and DummyVerify after Release.
var errSlotReleased = errors.New("password: hashing slot already released")

// Acquire takes a hashing slot, waiting as Verify does (ErrBusy when none comes free in time).
// The caller must Release it.
func (h *Hasher) Acquire(ctx context.Context) (*Slot, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	return &Slot{h: h, done: make(chan struct{})}, nil
}

// Release frees the slot. Later calls do nothing, so it can be deferred and also called early.
func (s *Slot) Release() {
	s.once.Do(func() {
		close(s.done)
		s.h.release()
	})
}

// usable reports whether slot (nil: none) can run a computation for h.
func (s *Slot) usable(h *Hasher) error {
	if s == nil {
		return nil
	}
	if s.h != h {
		return errors.New("password: hashing slot of another Hasher")
	}
	select {
	case <-s.done:
		return errSlotReleased
	default:
		return nil
	}
}

// Verify is Hasher.Verify in the held slot. The caller must not use the slot concurrently.
func (s *Slot) Verify(ctx context.Context, pw, encoded string) (ok, needsRehash bool, err error) {
	return s.h.verify(ctx, s, pw, encoded)
}

// DummyVerify is Hasher.DummyVerify in the held slot.
func (s *Slot) DummyVerify(ctx context.Context, pw string) error {
	return s.h.dummyVerify(ctx, s, pw)
}
