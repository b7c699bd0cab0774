package mail

import (
	"context"
	"sync"
)

// Recorder is an in-memory Sender for other packages' tests. It validates each message like
// SMTPSender, so a test catches a bad address or subject, and keeps the accepted ones.
// The zero value is ready to use and safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	msgs []Message
	err  error
}

var _ Sender = (*Recorder)(nil)

// Send records m, or returns the validation error or the error set with FailWith.
func (r *Recorder) Send(ctx context.Context, m Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return errorf("mail: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.msgs = append(r.msgs, m)
	return nil
}

// FailWith makes every later Send return err (nil restores success), to test how callers
// handle a relay that is down.
func (r *Recorder) FailWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Messages returns a copy of the recorded messages, oldest first.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// Reset forgets the recorded messages.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = nil
}
