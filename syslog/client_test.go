package syslog_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"tutela/syslog"
	"tutela/syslog/syslogtest"
)

const wait = 10 * time.Second // only stops a broken test from hanging

func alert(msg string) syslog.Message {
	return syslog.Message{
		Facility: syslog.FacilityAuthPriv, Severity: syslog.SevAlert,
		Time:  time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC),
		MsgID: "alert", Data: []syslog.Element{{ID: "alert@32473", Params: []syslog.Param{{"rule", "lockouts"}}}},
		Msg: msg,
	}
}

func newClient(t *testing.T, cfg syslog.Config) *syslog.Client {
	t.Helper()
	c, err := syslog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClient_SendsOctetCountedRFC5424OverVerifiedTLS(t *testing.T) {
	t.Parallel()
	srv := syslogtest.NewServer(t)
	c := newClient(t, syslog.Config{Addr: srv.Addr(), CAFile: srv.WriteCAFile(t.TempDir()), ServerName: "localhost", Hostname: "node 1"})
	ctx := context.Background()
	for _, m := range []string{"first", "second ünïcode"} {
		if err := c.Send(ctx, alert(m)); err != nil {
			t.Fatal(err)
		}
	}
	got := srv.WaitForMessages(2, wait)
	for i, want := range []string{"first", "second ünïcode"} {
		r := got[i]
		if r.Msg.Msg != want || r.Conn != 1 {
			t.Fatalf("message %d: %+v", i, r)
		}
		if !bytes.Contains(r.Raw, []byte(" \xef\xbb\xbf"+want)) {
			t.Fatalf("MSG not sent after a BOM: %q", r.Raw)
		}
		// Filled in by the client: APP-NAME, a cleaned HOSTNAME and the process id.
		if r.Msg.AppName != "tutela" || r.Msg.Hostname != "node1" || r.Msg.ProcID == "" {
			t.Fatalf("header: %+v", r.Msg)
		}
		if r.Msg.Severity != syslog.SevAlert || r.Msg.Facility != syslog.FacilityAuthPriv || r.Msg.Data[0].Params[0].Value != "lockouts" {
			t.Fatalf("fields: %+v", r.Msg)
		}
	}
}

func TestClient_RefusesUnverifiedServer(t *testing.T) {
	t.Parallel()
	srv := syslogtest.NewServer(t)
	for name, cfg := range map[string]syslog.Config{
		"untrusted CA":                        {Addr: srv.Addr(), RootCAs: x509.NewCertPool()},
		"wrong name":                          {Addr: srv.Addr(), RootCAs: srv.RootCAs(), ServerName: "collector.example"},
		"system roots (ours are not in them)": {Addr: srv.Addr()},
	} {
		c := newClient(t, cfg)
		if err := c.Send(context.Background(), alert("x")); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: Send = %v, want a certificate error", name, err)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("server received %d messages", n)
	}
}

func TestClient_RefusesTLSBelow12(t *testing.T) {
	t.Parallel()
	srv := syslogtest.NewServer(t, syslogtest.WithMaxTLSVersion(tls.VersionTLS11))
	c := newClient(t, syslog.Config{Addr: srv.Addr(), RootCAs: srv.RootCAs()})
	if err := c.Send(context.Background(), alert("x")); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("Send over TLS 1.1 = %v, want a protocol version error", err)
	}
}

func TestClient_PresentsClientCertificate(t *testing.T) {
	t.Parallel()
	srv := syslogtest.NewServer(t, syslogtest.WithClientAuth())
	certFile, keyFile := srv.WriteClientCertFiles(t.TempDir(), "tutela-node")
	c := newClient(t, syslog.Config{Addr: srv.Addr(), RootCAs: srv.RootCAs(), CertFile: certFile, KeyFile: keyFile})
	if err := c.Send(context.Background(), alert("with cert")); err != nil {
		t.Fatal(err)
	}
	if got := srv.WaitForMessages(1, wait); got[0].PeerCert != "tutela-node" {
		t.Fatalf("peer certificate %q", got[0].PeerCert)
	}

	// Without a certificate the collector refuses the handshake and nothing arrives. (With
	// TLS 1.3 the client learns this only on its next read, so the server side is checked.)
	anon := newClient(t, syslog.Config{Addr: srv.Addr(), RootCAs: srv.RootCAs()})
	_ = anon.Send(context.Background(), alert("without cert"))
	srv.WaitForRefused(1, wait)
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d messages, want only the one sent with a certificate", n)
	}

	if _, err := syslog.New(syslog.Config{Addr: srv.Addr(), CertFile: certFile}); err == nil {
		t.Fatal("a cert file without its key was accepted")
	}
}

func TestClient_ReconnectsAfterCollectorHangsUp(t *testing.T) {
	t.Parallel()
	srv := syslogtest.NewServer(t)
	c := newClient(t, syslog.Config{Addr: srv.Addr(), RootCAs: srv.RootCAs()})
	ctx := context.Background()
	if err := c.Send(ctx, alert("one")); err != nil {
		t.Fatal(err)
	}
	srv.WaitForMessages(1, wait)
	srv.DropConnections()
	syslog.WaitDisconnected(c)
	if err := c.Send(ctx, alert("two")); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitForMessages(2, wait)
	if got[1].Msg.Msg != "two" || got[1].Conn != 2 {
		t.Fatalf("second message %+v, want it on a second connection", got[1])
	}
}

// Close reports how closing went (nil for a live connection, and when there is none) and leaves
// the Client usable: the next Send dials again.
func TestClient_CloseReportsAndRedials(t *testing.T) {
	t.Parallel()
	srv := syslogtest.NewServer(t)
	c := newClient(t, syslog.Config{Addr: srv.Addr(), RootCAs: srv.RootCAs()})
	ctx := context.Background()
	if err := c.Send(ctx, alert("one")); err != nil {
		t.Fatal(err)
	}
	srv.WaitForMessages(1, wait)
	if err := c.Close(); err != nil {
		t.Fatalf("Close of a live connection: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close without a connection: %v", err)
	}
	if err := c.Send(ctx, alert("two")); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitForMessages(2, wait)
	if got[1].Msg.Msg != "two" || got[1].Conn != 2 {
		t.Fatalf("second message %+v, want it on a second connection", got[1])
	}
}

func TestClient_FailsWhileCollectorIsDownAndRecovers(t *testing.T) {
	t.Parallel()
	srv := syslogtest.NewServer(t)
	c := newClient(t, syslog.Config{Addr: srv.Addr(), RootCAs: srv.RootCAs()})
	ctx := context.Background()
	if err := c.Send(ctx, alert("one")); err != nil {
		t.Fatal(err)
	}
	srv.WaitForMessages(1, wait)
	srv.Stop()
	syslog.WaitDisconnected(c)
	if err := c.Send(ctx, alert("lost")); err == nil {
		t.Fatal("Send succeeded with the collector down; the caller's queue would not retry")
	}
	srv.Restart()
	if err := c.Send(ctx, alert("two")); err != nil {
		t.Fatal(err)
	}
	if got := srv.WaitForMessages(2, wait); got[1].Msg.Msg != "two" {
		t.Fatalf("%+v", got[1])
	}
}

func TestClient_RefusesOversizedMessage(t *testing.T) {
	t.Parallel()
	c := newClient(t, syslog.Config{Addr: "127.0.0.1:1", RootCAs: x509.NewCertPool()})
	if err := c.Send(context.Background(), alert(strings.Repeat("a", syslog.MaxMessageLen))); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("Send = %v", err)
	}
}
