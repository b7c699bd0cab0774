package main

import (
	"strings"
	"testing"
	"time"

	"tutela/syslog/syslogtest"
)

// A node with a syslog sink alerts on what happens after it starts: bootstrap grants the first
// user super_admin (audit user.role_grant), the built-in rule admin_role_granted fires, and the
// collector receives the alert over verified TLS.
func TestServe_MonitoringAlertsToSyslog(t *testing.T) {
	t.Parallel()
	srv := syslogtest.NewServer(t)
	env := append(baseEnv(t), "TUTELA_MONITORING_SINKS_SYSLOG_ADDR="+srv.Addr(),
		"TUTELA_MONITORING_SINKS_SYSLOG_CA_FILE="+srv.WriteCAFile(t.TempDir()),
		"TUTELA_MONITORING_SINKS_SYSLOG_SERVER_NAME=localhost", "TUTELA_MONITORING_INTERVAL=100ms")
	_, logs, stop := startServe(t, env)
	if !strings.Contains(logs.String(), "security monitoring on") {
		t.Fatalf("monitoring not started: %s", logs)
	}
	if code, _, stderr := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatalf("bootstrap: %s", stderr)
	}
	got := srv.WaitForMessages(1, 60*time.Second)
	var rules []string
	for _, r := range got {
		for _, p := range r.Msg.Data[0].Params {
			if p.Name == "rule" {
				rules = append(rules, p.Value)
			}
		}
	}
	if len(rules) == 0 || rules[0] != "admin_role_granted" || strings.Contains(string(got[0].Raw), "root@example.org") {
		t.Fatalf("alerts %v: %q", rules, got[0].Raw)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, logs)
	}
}

func TestServe_MonitoringOffWithoutSink(t *testing.T) {
	t.Parallel()
	_, logs, stop := startServe(t, baseEnv(t))
	if !strings.Contains(logs.String(), "security monitoring is off") {
		t.Fatalf("no notice that monitoring is off: %s", logs)
	}
	stop()
}
