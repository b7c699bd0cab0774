package mail_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"tutela"
	"tutela/mail"
)

func TestRecorder_RecordsValidMessages(t *testing.T) {
	t.Parallel()
	var r mail.Recorder
	var s mail.Sender = &r
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "x"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(r.Messages()); n != 10 {
		t.Fatalf("recorded %d messages, want 10", n)
	}
	r.Reset()
	if n := len(r.Messages()); n != 0 {
		t.Fatalf("after Reset: %d messages", n)
	}
}

func TestRecorder_RejectsWhatSMTPSenderRejects(t *testing.T) {
	t.Parallel()
	var r mail.Recorder
	err := r.Send(context.Background(), mail.Message{To: "ada@example.com\r\nBcc: eve@evil.example", Subject: "Hi"})
	if tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("err = %v, want EINVALID", err)
	}
	if len(r.Messages()) != 0 {
		t.Fatal("recorded an invalid message")
	}
}

func TestRecorder_FailWith(t *testing.T) {
	t.Parallel()
	var r mail.Recorder
	down := errors.New("relay down")
	r.FailWith(down)
	m := mail.Message{To: "ada@example.com", Subject: "Hi", Text: "x"}
	if err := r.Send(context.Background(), m); !errors.Is(err, down) {
		t.Fatalf("err = %v, want %v", err, down)
	}
	r.FailWith(nil)
	if err := r.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := r.Messages(); len(got) != 1 || got[0] != m {
		t.Fatalf("Messages = %+v", got)
	}
}
