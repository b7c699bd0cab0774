package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"tutela/audit"
	"tutela/sqlstore/sqltest"
)

// Two `tutela serve` nodes on one PostgreSQL share the per-client request limit: a client that
// spent the limit on node A is refused by node B too, after at most what B allows before its
// next flush reads A's count, where two nodes limiting alone would let it spend the limit again.
// (rps 4 and burst 40 are 40 requests per client per 10 s window across the nodes.)
func TestServe_TwoNodesShareTheRequestRateLimit(t *testing.T) {
	t.Parallel()
	dsn := sqltest.PostgresURL(t)
	const limit = 40
	node := func() []string {
		return append(baseEnv(t), "TUTELA_DATABASE_URL="+dsn, "TUTELA_AUTH_ISSUER=https://id.example.org",
			"TUTELA_MASTER_KEY=q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",
			"TUTELA_HTTP_RATE_LIMIT_RPS=4", "TUTELA_HTTP_RATE_LIMIT_BURST=40", "TUTELA_HTTP_RATE_LIMIT_SHARE_EVERY=200ms")
	}
	a, b := node(), node()
	addrA, logsA, stopA := startServe(t, a)
	if err := os.MkdirAll(dataDirOf(b), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDirOf(b), audit.KeyFile), fileBytes(t, filepath.Join(dataDirOf(a), audit.KeyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	addrB, logsB, stopB := startServe(t, b)

	get := func(addr string) *http.Response {
		res, err := http.Get("http://" + addr + "/v1/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for i := range limit {
		if res := get(addrA); res.StatusCode != http.StatusOK {
			t.Fatalf("node A, request %d: %d", i+1, res.StatusCode)
		}
	}
	allowedB := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := get(addrB)
		if res.StatusCode == http.StatusTooManyRequests {
			if res.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			break
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("node B: %d", res.StatusCode)
		}
		allowedB++
		if allowedB >= limit || time.Now().After(deadline) {
			t.Fatalf("node B allowed %d more requests after A allowed the limit: the limit is not shared", allowedB)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("node B allowed %d before refusing", allowedB)
	if code := stopB(); code != 0 {
		t.Fatalf("node B exit %d: %s", code, logsB)
	}
	if code := stopA(); code != 0 {
		t.Fatalf("node A exit %d: %s", code, logsA)
	}
}
