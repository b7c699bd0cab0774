package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"tutela/mail/mailtest"
)

// `serve` runs the job worker: a forgot-password request queued through the API comes out of the
// SMTP relay as the reset-code e-mail, with no request waiting on it.
func TestServe_WorkerDeliversQueuedMail(t *testing.T) {
	t.Parallel()
	sink := mailtest.NewServer(t)
	env := append(baseEnv(t), "TUTELA_SMTP_ADDR="+sink.Addr(), "TUTELA_SMTP_FROM=noreply@tutela.test", "TUTELA_SMTP_TLS=none")
	if code, _, stderr := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatalf("bootstrap exit %d: %s", code, stderr)
	}
	addr, logs, _ := startServe(t, env)
	res, err := http.Post("http://"+addr+"/v1/auth/password/forgot", "application/json",
		strings.NewReader(`{"tenant":"acme","email":"root@example.org"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("forgot: %d", res.StatusCode)
	}
	// The worker polls every 2 s; wait for the event, not for a time.
	deadline := time.After(30 * time.Second)
	for len(sink.Messages()) == 0 {
		select {
		case <-deadline:
			t.Fatalf("no e-mail from the worker: %s", logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	m := sink.Messages()[0]
	if len(m.To) != 1 || m.To[0] != "root@example.org" || !strings.Contains(string(m.Data), "Subject: Reset your password") {
		t.Fatalf("e-mail = %+v", m)
	}
}

// If the HTTP listener fails, Serve returns its error: the job worker and the audit sequencer
// are stopped and waited for, rather than waited for on a context nobody cancels (a hang).
func TestServe_ListenerFailureReturns(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := &env{ctx: context.Background(), environ: baseEnv(t), stdout: io.Discard, stderr: &logs}
	m, err := open(e, true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.vault, err = m.openVault(e); err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(e.ctx); err != nil {
		t.Fatal(err)
	}
	m.ln.Close() // the listener fails at its first Accept
	done := make(chan error, 1)
	go func() { done <- m.Serve(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve = %v, want the listener's error", err)
		}
	case <-time.After(time.Minute): // generous: only a hang gets here
		t.Fatalf("Serve did not return after its listener failed:\n%s", logs.String())
	}
}
