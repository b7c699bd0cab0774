package main

import (
	"strings"
	"testing"
)

// `tutela health` is the container health check: it reaches the node's own listener on loopback
// with the same configuration as serve, accepts only the configured certificate over TLS, and
// fails once the node is gone.
func TestHealth_ProbesOwnListenerPinnedToTheConfiguredCertificate(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t, t.TempDir())
	env := append(baseEnv(t), "TUTELA_TLS_CERT_FILE="+cert, "TUTELA_TLS_KEY_FILE="+key)
	addr, _, stop := startServe(t, env)
	// serve bound port 0; the probe gets the real port the way an operator configures it.
	probeEnv := append(append([]string(nil), env...), "TUTELA_HTTP_ADDR="+addr)
	if code, out, errb := runCmd(t, probeEnv, "health"); code != 0 || !strings.Contains(out, "/healthz ok") {
		t.Fatalf("health = %d %q %q", code, out, errb)
	}
	if code, out, errb := runCmd(t, probeEnv, "health", "--path", "/readyz"); code != 0 || !strings.Contains(out, "/readyz ok") {
		t.Fatalf("health --path /readyz = %d %q %q", code, out, errb)
	}
	// Another certificate configured than the one served: refused, not trusted by name or skipped.
	other, otherKey := selfSigned(t, t.TempDir())
	wrong := append(append([]string(nil), probeEnv...), "TUTELA_TLS_CERT_FILE="+other, "TUTELA_TLS_KEY_FILE="+otherKey)
	if code, _, errb := runCmd(t, wrong, "health"); code == 0 || !strings.Contains(errb, "does not serve tls.cert_file's certificate") {
		t.Fatalf("health against another certificate = %d %q, want refused", code, errb)
	}
	if code, _, _ := runCmd(t, probeEnv, "health", "--path", "/metrics"); code == 0 {
		t.Fatal("health accepted a path other than /healthz and /readyz")
	}
	stop()
	if code, _, _ := runCmd(t, probeEnv, "health"); code == 0 {
		t.Fatal("health succeeded with the node stopped")
	}
}

func TestHealth_PlaintextLoopback(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	addr, _, _ := startServe(t, env)
	if code, out, errb := runCmd(t, append(env, "TUTELA_HTTP_ADDR="+addr), "health"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("health = %d %q %q", code, out, errb)
	}
}
