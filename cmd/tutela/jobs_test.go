package main

import (
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
