package main

import (
	"net/http"
	"strings"
	"testing"
)

// serve with http.redirect_addr opens a plain-HTTP listener beside the TLS API that sends every
// request to https on auth.issuer's host, refuses other hosts, and answers /healthz itself.
func TestServe_RedirectListenerSendsToIssuerOverHTTPS(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t, t.TempDir())
	env := append(baseEnv(t), "TUTELA_TLS_CERT_FILE="+cert, "TUTELA_TLS_KEY_FILE="+key,
		"TUTELA_AUTH_ISSUER=https://localhost:8443", "TUTELA_HTTP_REDIRECT_ADDR=127.0.0.1:0")
	addr, logs, stop := startServe(t, env)
	raddr := readyField(t, logs, "redirect_addr")
	if raddr == "" || raddr == addr {
		t.Fatalf("redirect_addr %q (API %q)", raddr, addr)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(host, path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+raddr+path, strings.NewReader(`{"password":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		res, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := do("localhost", "/v1/login?next=%2Fhome"); res.StatusCode != http.StatusPermanentRedirect ||
		res.Header.Get("Location") != "https://localhost:8443/v1/login?next=%2Fhome" {
		t.Fatalf("redirect = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := do("evil.example", "/v1/login"); res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
		t.Fatalf("foreign host = %d Location %q, want 400 and none", res.StatusCode, res.Header.Get("Location"))
	}
	if code, body := get(t, http.DefaultClient, "http://"+raddr+"/healthz", ""); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz on the redirect listener = %d %s", code, body)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit code %d: %s", code, logs)
	}
	if _, err := http.Get("http://" + raddr + "/healthz"); err == nil {
		t.Fatal("the redirect listener still answers after shutdown")
	}
}
