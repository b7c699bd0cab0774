package identity

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"tutela/mail"
)

// blockingMailer holds every Send until released, counting calls.
type blockingMailer struct {
	calls   atomic.Int32
	started chan struct{}
	release chan struct{}
}

func (m *blockingMailer) Send(ctx context.Context, _ mail.Message) error {
	m.calls.Add(1)
	m.started <- struct{}{}
	<-m.release
	return nil
}

// A flood of background e-mail work (forgot-password requests, notifications) runs at most
// MaxBackgroundJobs at once; the rest is dropped and logged, never queued without bound.
func TestBackgroundWork_Bounded(t *testing.T) {
	m := &blockingMailer{started: make(chan struct{}, 2*MaxBackgroundJobs), release: make(chan struct{})}
	var logs syncBuffer
	s := New(Deps{Mailer: m, Log: slog.New(slog.NewTextHandler(&logs, nil))}, Config{})
	for range MaxBackgroundJobs + 20 {
		s.NotifyEmailChanged(context.Background(), "old@example.org", "new@example.org")
	}
	for range MaxBackgroundJobs {
		<-m.started
	}
	if n := m.calls.Load(); n != MaxBackgroundJobs {
		t.Fatalf("%d sends running, want %d", n, MaxBackgroundJobs)
	}
	close(m.release)
	s.Close()
	if n := m.calls.Load(); n != MaxBackgroundJobs {
		t.Fatalf("%d sends in all, want %d (the rest dropped)", n, MaxBackgroundJobs)
	}
	if got := strings.Count(logs.String(), "background work dropped"); got != 20 {
		t.Fatalf("%d drops logged, want 20:\n%s", got, logs.String())
	}
	// Slots free again: new work runs.
	m.release = make(chan struct{})
	close(m.release)
	s.NotifyEmailChanged(context.Background(), "old@example.org", "new@example.org")
	<-m.started
	s.Close()
	if n := m.calls.Load(); n != MaxBackgroundJobs+1 {
		t.Fatalf("after the flood: %d sends, want %d", n, MaxBackgroundJobs+1)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }
