package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// loadgen refuses a run that is not aimed at this machine (unless --allow-remote) or not
// bounded, before it sends anything.
func TestLoadgen_RefusesRemoteAndUnboundedRuns(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	ok := []string{"loadgen", "--target", srv.URL, "--setup-token", "t", "--tenant", "acme", "--admin-email", "a@example.org"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"public address", []string{"--target", "http://192.0.2.10:8080", "--check", "10"}, "not a loopback address"},
		{"private address", []string{"--target", "http://10.1.2.3:8080", "--check", "10"}, "not a loopback address"},
		{"a name that could resolve anywhere", []string{"--target", "http://tutela.example.org", "--check", "10"}, "not a loopback address"},
		{"hydra admin elsewhere", []string{"--target-kind", "hydra", "--client-id", "x", "--hydra-admin", "http://192.0.2.10:4445", "--introspect", "1"}, "--hydra-admin is not a loopback"},
		{"no target scheme", []string{"--target", "127.0.0.1:8080", "--check", "10"}, "--target must be an http(s) URL"},
		{"no rate", nil, "no operation has a rate"},
		{"no end", []string{"--duration", "0s", "--check", "10"}, "--duration must be > 0"},
		{"too long", []string{"--duration", "11m", "--check", "10"}, "--duration must be > 0 and at most 10m0s"},
		{"too fast", []string{"--check", "20001"}, "--check must be 0-20000"},
		{"negative rate", []string{"--refresh=-1"}, "--refresh must be 0-20000"},
		{"unbounded in flight", []string{"--in-flight", "5000", "--check", "10"}, "--in-flight must be 1-1024"},
		{"too many users", []string{"--users", "5000", "--check", "10"}, "--users must be 0-2000"},
		{"no setup token", []string{"--setup-token", "", "--check", "10"}, "--setup-token, --tenant and --admin-email are required"},
		{"hydra without a client", []string{"--target-kind", "hydra", "--client-credentials", "10"}, "needs --client-id"},
		{"hydra sign-ins", []string{"--target-kind", "hydra", "--client-id", "x", "--signin-mfa", "1"}, "sends only --client-credentials and --introspect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, nil, append(append([]string{}, ok...), tc.args...)...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want a refusal saying %q: %s", code, tc.want, stderr)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("refused runs sent %d requests", n)
	}
	// The same remote address with --allow-remote passes validation.
	c := loadgenCmd{Target: "http://192.0.2.10:8080", AllowRemote: true, TargetKind: "tutela", Duration: 1e9, InFlight: 1,
		Check: 1, SetupToken: "t", Tenant: "acme", AdminEmail: "a@example.org", CeilingTime: 1e9}
	if err := c.validate(); err != nil {
		t.Fatalf("--allow-remote: %v", err)
	}
	for _, h := range []string{"127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST"} {
		if !isLoopbackHost(h) {
			t.Errorf("%s is loopback", h)
		}
	}
	for _, h := range []string{"127.0.0.1.example.org", "0.0.0.0", "::", "::ffff:10.0.0.1", "localhost.example.org"} {
		if isLoopbackHost(h) {
			t.Errorf("%s is not loopback", h)
		}
	}
}

// A short run of every operation against serve in-process (SQLite): set up through the API
// from a bootstrap token, every operation answered without an error, and the tables printed.
func TestLoadgen_ShortRunAgainstServe(t *testing.T) {
	t.Parallel()
	env := append(baseEnv(t), "TUTELA_HTTP_RATE_LIMIT_RPS=100000", "TUTELA_HTTP_RATE_LIMIT_BURST=100000")
	code, out, stderr := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "root@example.org")
	if code != 0 {
		t.Fatalf("bootstrap: %s", stderr)
	}
	tok := tokenRE.FindString(out)
	addr, logs, _ := startServe(t, env)
	code, out, stderr = runCmd(t, env, "loadgen", "--target", "http://"+addr, "--setup-token", tok, "--tenant", "acme",
		"--admin-email", "root@example.org", "--duration", "2s", "--users", "6", "--ceiling-time", "100ms",
		"--signin-mfa", "2", "--refresh", "10", "--introspect", "10", "--check", "10", "--audit-read", "5", "--client-credentials", "10")
	if code != 0 {
		t.Fatalf("loadgen exit %d: %s\n%s", code, stderr, logs)
	}
	if !strings.Contains(out, "| operation | offered/s | ok/s | p50 ms | p99 ms | p99.9 ms | errors | limit | ratio to limit |") {
		t.Fatalf("no markdown table:\n%s", out)
	}
	for _, op := range []string{"signin_mfa", "refresh", "introspect", "check", "audit_read", "client_credentials"} {
		var row []string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "| "+op+" |") {
				row = strings.Split(line, "|")
			}
		}
		if len(row) != 11 {
			t.Fatalf("no row for %s:\n%s", op, out)
		}
		if okps := strings.TrimSpace(row[3]); okps == "0.0" {
			t.Errorf("%s: nothing succeeded:\n%s", op, out)
		}
		if errs := strings.TrimSpace(row[7]); errs != "0" {
			t.Errorf("%s: errors %s:\n%s", op, errs, out)
		}
	}
}
