package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tutela/audit"
	"tutela/audit/receiver"
	"tutela/auditship"
	"tutela/syslog"
	"tutela/syslog/syslogtest"
)

// serve ships its audit log to a receiver as it is sequenced; what the receiver holds verifies
// from scratch against the log's key.
func TestServe_ShipsAuditLogToReceiver(t *testing.T) {
	t.Parallel()
	env := append(baseEnv(t), "TUTELA_AUDIT_CHECKPOINT_INTERVAL=100ms")
	if code, _, errOut := runCmd(t, env, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %d %s", code, errOut)
	}
	code, out, errOut := runCmd(t, env, "audit", "key")
	if code != 0 {
		t.Fatalf("audit key: %d %s", code, errOut)
	}
	vkey := strings.TrimSpace(out)
	store, err := receiver.Open(t.TempDir(), vkey, AuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const secret = "whsec_shared_between_both_ends"
	recv := httptest.NewServer(&receiver.Handler{Store: store, Secret: secret})
	defer recv.Close()

	env = append(env, "TUTELA_AUDIT_SHIP=archive="+recv.URL+"/batches", "TUTELA_AUDIT_SHIP_SECRET_ARCHIVE="+secret)
	addr, logs, stop := startServe(t, env)
	res, err := http.Get("http://" + addr + "/v1/openapi.json") // an audited /v1 call
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	deadline := time.Now().Add(15 * time.Second)
	for store.State().Size < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("receiver holds %+v; logs: %s", store.State(), logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	rep, err := audit.Verify(context.Background(), store.Source(), vkey, AuditOrigin, nil)
	if err != nil || !rep.OK || rep.Checkpoints == 0 {
		t.Fatalf("received copy: %v %+v", err, rep)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the shipping secret reached the logs")
	}
	code, out, errOut = runCmd(t, env, "audit", "shipping")
	fields := strings.Fields(strings.Split(out, "\n")[1])
	// SHIPPED may trail what the receiver holds: serve can stop between the receiver's answer
	// and the cursor's update, and the next start sends that batch again (dropped by index).
	if code != 0 || len(fields) < 6 || fields[0] != "archive" || fields[5] != "0" {
		t.Fatalf("audit shipping: %d %q %s", code, out, errOut)
	}
}

func TestAuditReceive_RefusesPlaintextOffLoopbackAndMissingSecret(t *testing.T) {
	t.Parallel()
	_, vkey, err := audit.GenerateKey(AuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	code, _, errOut := runCmd(t, nil, "audit", "receive", "--listen", "127.0.0.1:0", "--dir", dir, "--key", vkey)
	if code == 0 || !strings.Contains(errOut, "TUTELA_AUDIT_RECEIVE_SECRET") {
		t.Fatalf("no secret: %d %s", code, errOut)
	}
	code, _, errOut = runCmd(t, []string{"TUTELA_AUDIT_RECEIVE_SECRET=x"}, "audit", "receive", "--listen", "0.0.0.0:0",
		"--dir", dir, "--key", vkey)
	if code == 0 || !strings.Contains(errOut, "needs --tls-cert") {
		t.Fatalf("plaintext off loopback: %d %s", code, errOut)
	}
	code, _, errOut = runCmd(t, []string{"TUTELA_AUDIT_RECEIVE_SECRET=x"}, "audit", "receive", "--listen", "127.0.0.1:0",
		"--dir", dir, "--key", "not-a-key")
	if code == 0 || !strings.Contains(errOut, "malformed note key") {
		t.Fatalf("bad key: %d %s", code, errOut)
	}
}

// The receive command serves until stopped, answering batches with the receiver's state.
func TestAuditReceive_Serves(t *testing.T) {
	t.Parallel()
	_, vkey, err := audit.GenerateKey(AuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"audit", "receive", "--listen", addr, "--dir", t.TempDir(), "--key", vkey},
			[]string{"TUTELA_AUDIT_RECEIVE_SECRET=x"}, io.Discard, io.Discard)
	}()
	var res *http.Response
	for range 200 {
		if res, err = http.Post("http://"+addr+"/", "application/json", strings.NewReader("{}")); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned batch: %d, want 401", res.StatusCode)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("receive exited %d", code)
	}
}

// serve ships to a syslog collector over TLS; the batches rebuilt from what it kept verify.
func TestServe_ShipsAuditLogToSyslog(t *testing.T) {
	t.Parallel()
	collector := syslogtest.NewServer(t)
	ca := collector.WriteCAFile(t.TempDir())
	env := append(baseEnv(t), "TUTELA_AUDIT_CHECKPOINT_INTERVAL=100ms",
		"TUTELA_AUDIT_SHIP=siem=syslog+tls://"+collector.Addr()+"?ca_file="+ca)
	addr, logs, stop := startServe(t, env)
	res, err := http.Get("http://" + addr + "/v1/audit/public-key")
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := io.ReadAll(res.Body)
	res.Body.Close()
	// Wait for the first message closing a batch (a batch's entries come before it).
	var got []syslogtest.Received
	for n := 1; ; n++ {
		got = collector.WaitForMessages(n, 15*time.Second)
		if got[n-1].Msg.MsgID == auditship.SyslogMsgIDCheckpoint {
			break
		}
	}
	stop()
	var msgs []syslog.Message
	for _, r := range got {
		msgs = append(msgs, r.Msg)
	}
	batches, err := auditship.BatchesFromSyslog(msgs)
	if err != nil || len(batches) == 0 {
		t.Fatalf("rebuilt %d batches: %v; logs: %s", len(batches), err, logs)
	}
	store, err := receiver.Open(t.TempDir(), strings.TrimSpace(string(vkey)), AuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, b := range batches {
		if _, err := store.Apply(context.Background(), b); err != nil {
			var be *audit.BatchError
			if errors.As(err, &be) && be.Kind == audit.KindReplayed {
				continue
			}
			t.Fatalf("batch from %d: %v", b.From, err)
		}
	}
	if rep, err := audit.Verify(context.Background(), store.Source(), strings.TrimSpace(string(vkey)), AuditOrigin, nil); err != nil || !rep.OK || rep.Size == 0 {
		t.Fatalf("collector's copy: %v %+v", err, rep)
	}
}
