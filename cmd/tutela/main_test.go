package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"tutela/audit"
	"tutela/config"

	"tutela/sqlstore/sqltest"
)

// syncBuffer is an io.Writer safe for the server goroutine and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func baseEnv(t *testing.T) []string {
	return []string{"TUTELA_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "TUTELA_HTTP_ADDR=127.0.0.1:0",
		"TUTELA_METRICS_ADDR=127.0.0.1:0"}
}

func runCmd(t *testing.T, environ []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, environ, &out, &errb)
	return code, out.String(), errb.String()
}

// startServe runs `tutela serve` in-process and returns its address once the "ready" log line
// appears, plus a stop function that sends the shutdown signal and returns the exit code.
func startServe(t *testing.T, environ []string) (addr string, logs *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve"}, environ, io.Discard, logs) }()
	deadline := time.After(20 * time.Second)
	for addr == "" {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited %d before ready: %s", code, logs)
		case <-deadline:
			cancel()
			t.Fatalf("serve not ready: %s", logs)
		case <-time.After(10 * time.Millisecond):
		}
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "tutela ready" {
				addr = line.Addr
			}
		}
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return addr, logs, stop
}

func TestServe_FreshDataDirReadyThenGracefulStop(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	addr, logs, stop := startServe(t, env)
	res, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("readyz = %d", res.StatusCode)
	}
	dataDir := strings.TrimPrefix(env[0], "TUTELA_DATA_DIR=")
	for name, mode := range map[string]os.FileMode{"master.key": 0o600, "tutela.db": 0o600, ".": 0o700} {
		fi, err := os.Stat(filepath.Join(dataDir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v err %v, want %04o", name, fi.Mode().Perm(), err, mode)
		}
	}
	if !strings.Contains(logs.String(), "KMS or HSM") {
		t.Error("no warning about keeping the master key in a KMS/HSM")
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit code %d after shutdown signal: %s", code, logs)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop logged: %s", logs)
	}
}

func TestServe_GracefulShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	addr, _, stop := startServe(t, baseEnv(t))
	// A connection with a request in progress: the body is still being sent when the shutdown
	// signal arrives, and the request must still complete.
	pr, pw := io.Pipe()
	resc := make(chan *http.Response, 1)
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/auth/setup", pr)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			errc <- err
			return
		}
		resc <- res
	}()
	if _, err := pw.Write([]byte(`{"token":"`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the request reach the handler before the signal
	stopped := make(chan int, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond)
	_, _ = pw.Write([]byte(strings.Repeat("a", 64) + `","password":"x"}`))
	pw.Close()
	select {
	case res := <-resc:
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("in-flight request got %d, want its real answer 401", res.StatusCode)
		}
	case err := <-errc:
		t.Fatalf("in-flight request cut off: %v", err)
	}
	if code := <-stopped; code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestServe_Postgres(t *testing.T) {
	t.Parallel()
	env := append(baseEnv(t), "TUTELA_DATABASE_URL="+sqltest.PostgresURL(t))
	addr, logs, stop := startServe(t, env)
	res, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(logs.String(), `"store":"postgres"`) {
		t.Fatalf("readyz = %d, logs %s", res.StatusCode, logs)
	}
	// The test connects as the superuser, which bypasses row-level security: serve says so.
	if !strings.Contains(logs.String(), "BYPASSRLS") {
		t.Fatalf("no warning about a role that bypasses row-level security: %s", logs)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestServe_RefusesKeyFileReadableByOthers(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	dataDir := strings.TrimPrefix(env[0], "TUTELA_DATA_DIR=")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dataDir, "master.key")
	if err := os.WriteFile(keyPath, []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, env, "serve")
	if code != 1 || !strings.Contains(stderr, "readable by group or others") {
		t.Fatalf("serve with 0644 key: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "tutela.db")); err == nil {
		t.Error("serve opened the database before refusing the key")
	}
}

func TestServe_NonLoopbackPlaintextRefused(t *testing.T) {
	t.Parallel()
	env := append(baseEnv(t), "TUTELA_HTTP_ADDR=0.0.0.0:0")
	code, _, stderr := runCmd(t, env, "serve")
	if code != 1 || !strings.Contains(stderr, "allow_plaintext") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestServe_TLS13MinimumAndHSTS(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t, t.TempDir())
	env := append(baseEnv(t), "TUTELA_TLS_CERT_FILE="+cert, "TUTELA_TLS_KEY_FILE="+key)
	addr, _, _ := startServe(t, env)

	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}}} // #nosec G402 -- test client
	if res, err := old.Get("https://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		t.Fatal("TLS 1.2 client was served; minimum must be 1.3")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402 -- test client
	res, err := c.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.TLS.Version != tls.VersionTLS13 || !strings.Contains(res.Header.Get("Strict-Transport-Security"), "max-age") {
		t.Fatalf("TLS version %x, HSTS %q", res.TLS.Version, res.Header.Get("Strict-Transport-Security"))
	}
}

// readyField returns a field of the "tutela ready" log line.
func readyField(t *testing.T, logs *syncBuffer, key string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "tutela ready" {
			v, _ := line[key].(string)
			return v
		}
	}
	t.Fatalf("no ready line: %s", logs)
	return ""
}

func get(t *testing.T, c *http.Client, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// ASVS 13.4.6, 14.3.3: serve answers /metrics only on the metrics listener; the API listener
// says 404. With TUTELA_METRICS_TOKEN a scrape needs the bearer token.
func TestServe_MetricsOnTheirOwnListener(t *testing.T) {
	t.Parallel()
	token := strings.Repeat("s3cr3t", 6)
	addr, logs, _ := startServe(t, append(baseEnv(t), "TUTELA_METRICS_TOKEN="+token))
	maddr := readyField(t, logs, "metrics_addr")
	if maddr == "" || maddr == addr {
		t.Fatalf("metrics_addr %q (API %q)", maddr, addr)
	}
	c := http.DefaultClient
	if code, body := get(t, c, "http://"+addr+"/metrics", ""); code != 404 || strings.Contains(body, "tutela_build_info") {
		t.Fatalf("API listener /metrics = %d %.100s", code, body)
	}
	if code, body := get(t, c, "http://"+maddr+"/metrics", ""); code != 401 || strings.Contains(body, "tutela_build_info") {
		t.Fatalf("metrics without token = %d %.100s", code, body)
	}
	if code, body := get(t, c, "http://"+maddr+"/metrics", "Bearer "+token); code != 200 || !strings.Contains(body, "tutela_build_info") {
		t.Fatalf("metrics with token = %d %.100s", code, body)
	}
	if code, _ := get(t, c, "http://"+maddr+"/readyz", "Bearer "+token); code != 404 {
		t.Fatalf("metrics listener serves the API: /readyz = %d", code)
	}
	if strings.Contains(logs.String(), token) {
		t.Fatal("the metrics token reached the log")
	}
}

// With metrics.addr off no metrics listener is opened.
func TestServe_MetricsOff(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	env[2] = "TUTELA_METRICS_ADDR=off"
	addr, logs, _ := startServe(t, env)
	if m := readyField(t, logs, "metrics_addr"); m != "" {
		t.Fatalf("metrics_addr %q with metrics off", m)
	}
	if code, _ := get(t, http.DefaultClient, "http://"+addr+"/metrics", ""); code != 404 {
		t.Fatalf("API /metrics = %d", code)
	}
}

func TestConfigCheck_ReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	env := []string{
		"TUTELA_HTTP_ADDR=not-an-address",
		"TUTELA_LOG_LEVEL=loud",
		"TUTELA_DATABASE_URL=mysql://x",
		"TUTELA_HTTP_TRUSTED_PROXIES=banana",
	}
	code, _, stderr := runCmd(t, env, "config", "check")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	problems := 0
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "  - ") {
			problems++
		}
	}
	if problems < 4 {
		t.Fatalf("reported %d problems, want all 4:\n%s", problems, stderr)
	}
	code, stdout, _ := runCmd(t, append(baseEnv(t), "TUTELA_DATABASE_PASSWORD=hunter2-very-secret"), "config", "check")
	if code != 0 || !strings.Contains(stdout, "configuration OK") || strings.Contains(stdout, "hunter2") {
		t.Fatalf("valid config: exit %d, stdout %q", code, stdout)
	}
}

func TestConfigCheck_SecretInFileRejected(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tutela.yaml")
	_ = os.WriteFile(path, []byte("database:\n  url: postgres://app:pa55word-in-file@db/tutela\n"), 0o600)
	code, stdout, stderr := runCmd(t, nil, "--config", path, "config", "check")
	if code != 1 || !strings.Contains(stderr, "secret") || strings.Contains(stderr+stdout, "pa55word-in-file") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

var tokenRE = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

func TestBootstrap_OnceOnlyAndTokenPrintedOnce(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	code, stdout, stderr := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "root@example.org")
	if code != 0 {
		t.Fatalf("bootstrap exit %d: %s", code, stderr)
	}
	if toks := tokenRE.FindAllString(stdout, -1); len(toks) != 1 {
		t.Fatalf("want exactly one token printed, got %v", toks)
	}
	if strings.Contains(stderr, tokenRE.FindString(stdout)) {
		t.Fatal("token written to the log stream")
	}
	code, _, stderr = runCmd(t, env, "bootstrap", "--tenant", "other", "--email", "second@example.org")
	if code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("second bootstrap: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCmd(t, env, "bootstrap", "--tenant", "Bad Slug!", "--email", "x@example.org")
	if code != 1 {
		t.Fatalf("bad slug accepted: %q", stderr)
	}
}

func TestMigrateUpAndStatus(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	code, stdout, _ := runCmd(t, env, "migrate", "status")
	// A migration's name may hold the word (00039_audit_pending.sql): look at the APPLIED column.
	anyPending := func(out string) bool {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "pending" {
				return true
			}
		}
		return false
	}
	if code != 0 || !anyPending(stdout) {
		t.Fatalf("status before up: %d %q", code, stdout)
	}
	if code, _, stderr := runCmd(t, env, "migrate", "up"); code != 0 {
		t.Fatalf("up: %s", stderr)
	}
	code, stdout, _ = runCmd(t, env, "migrate", "status")
	if code != 0 || anyPending(stdout) || !strings.Contains(stdout, "00001_foundation.sql") {
		t.Fatalf("status after up: %d %q", code, stdout)
	}
}

func TestVersionAndUsage(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runCmd(t, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "tutela ") {
		t.Fatalf("version: %d %q", code, stdout)
	}
	if code, _, _ := runCmd(t, nil, "no-such-command"); code != 2 {
		t.Fatalf("unknown command exit %d, want 2", code)
	}
}

func TestServe_PublishesSignedCheckpointsToURL(t *testing.T) {
	t.Parallel()
	got := make(chan []byte, 16)
	witness := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			got <- b
		}
	}))
	defer witness.Close()
	env := append(baseEnv(t), "TUTELA_AUDIT_CHECKPOINT_URL="+witness.URL, "TUTELA_AUDIT_CHECKPOINT_INTERVAL=100ms")
	addr, _, _ := startServe(t, env)
	res, err := http.Get("http://" + addr + "/v1/openapi.json") // an audited /v1 call
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = http.Get("http://" + addr + "/v1/audit/public-key")
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := io.ReadAll(res.Body)
	res.Body.Close()
	select {
	case cp := <-got:
		c, err := audit.OpenCheckpoint(cp, strings.TrimSpace(string(vkey)), AuditOrigin)
		if err != nil || c.Size < 1 {
			t.Fatalf("published checkpoint does not verify: %v %+v", err, c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no checkpoint published to the URL")
	}
}

func TestServe_LogsNeverContainKeys(t *testing.T) {
	t.Parallel()
	env := append(baseEnv(t), "TUTELA_LOG_LEVEL=debug")
	dataDir := strings.TrimPrefix(env[0], "TUTELA_DATA_DIR=")
	addr, logs, stop := startServe(t, env)
	for _, path := range []string{"/healthz", "/v1/openapi.json", "/.well-known/jwks.json", "/v1/audit/public-key"} {
		if res, err := http.Get("http://" + addr + path); err == nil {
			res.Body.Close()
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	master, err := os.ReadFile(filepath.Join(dataDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := os.ReadFile(filepath.Join(dataDir, "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	// The audit signing key is stored sealed by the vault: no private key in the clear.
	if strings.Contains(string(auditKey), "PRIVATE+KEY") || !strings.HasPrefix(string(auditKey), "sealed:") {
		t.Fatalf("audit.key holds a plaintext private key: %q", auditKey)
	}
	secrets := []string{strings.TrimSpace(string(master)), strings.Fields(string(auditKey))[0]}
	out := logs.String()
	if !strings.Contains(out, "tutela ready") {
		t.Fatal("no logs captured")
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatal("key material in the server log")
		}
	}
}

func TestLogger_TimesInUTC(t *testing.T) {
	old := time.Local
	time.Local = time.FixedZone("UTC+5", 5*3600)
	t.Cleanup(func() { time.Local = old })
	var buf bytes.Buffer
	newLogger(config.Default(), &buf).Info("hello")
	var rec struct{ Time string }
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || !strings.HasSuffix(rec.Time, "Z") {
		t.Fatalf("log time %q is not UTC (%v): %s", rec.Time, err, buf.String())
	}
}
