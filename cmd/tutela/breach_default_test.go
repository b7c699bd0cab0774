package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// With the default configuration (no range API, no index file), a password from the built-in
// list of common breached passwords is refused even though it is long enough and zxcvbn scores
// it 3 ("q1w2e3r4t5y6u7", a keyboard walk found ~30,000th in the breach corpus); a strong
// password nobody has leaked is accepted. ASVS 6.2.12 / 2.1.7, NIST SP 800-63B §5.1.1.2.
func TestServe_DefaultConfigRejectsBreachedPassword(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	code, stdout, stderr := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "root@example.org")
	if code != 0 {
		t.Fatalf("bootstrap exit %d: %s", code, stderr)
	}
	token := tokenRE.FindString(stdout)
	addr, _, _ := startServe(t, env)

	setup := func(pw string) (int, string) {
		body, _ := json.Marshal(map[string]string{"token": token, "password": pw})
		res, err := http.Post("http://"+addr+"/v1/auth/setup", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(res.Body).Decode(&e)
		return res.StatusCode, e.Error.Code + ": " + e.Error.Message
	}
	if status, msg := setup("q1w2e3r4t5y6u7"); status/100 == 2 || !strings.Contains(msg, "breach") {
		t.Fatalf("breached password: status %d, %q; want it refused as breached", status, msg)
	}
	if status, msg := setup("bR4ve-new_wOrld:kiln 93"); status/100 != 2 {
		t.Fatalf("strong password: status %d, %q", status, msg)
	}
}

// Turning the built-in list off is allowed but `config check` warns, louder when no other
// source is left.
func TestConfigCheck_WarnsWhenBuiltinBreachListOff(t *testing.T) {
	t.Parallel()
	mail := []string{"TUTELA_SMTP_ADDR=smtp.example.org:587", "TUTELA_SMTP_FROM=tutela@example.org"}
	code, _, stderr := runCmd(t, append(baseEnv(t), mail...), "config", "check")
	if code != 0 || strings.Contains(stderr, "warning") {
		t.Fatalf("default config with mail: exit %d, stderr %q; want no warning", code, stderr)
	}
	code, stdout, stderr := runCmd(t, append(baseEnv(t), "TUTELA_AUTH_BREACH_BUILTIN_LIST=false"), "config", "check")
	if code != 0 || !strings.Contains(stdout, "configuration OK") {
		t.Fatalf("builtin list off: exit %d", code)
	}
	if !strings.Contains(stderr, "warning: auth.breach.builtin_list is off") || !strings.Contains(stderr, "no breached-password check at all") {
		t.Fatalf("builtin list off: stderr %q, want a warning", stderr)
	}
	_, _, stderr = runCmd(t, append(baseEnv(t), "TUTELA_AUTH_BREACH_BUILTIN_LIST=false",
		"TUTELA_AUTH_BREACH_RANGE_URL=https://api.pwnedpasswords.com"), "config", "check")
	if !strings.Contains(stderr, "builtin_list is off") || strings.Contains(stderr, "at all") {
		t.Fatalf("builtin list off, range API on: stderr %q", stderr)
	}
}

// Without smtp.addr `config check` warns that breach-clock reminders are not e-mailed (and e-mail
// alerts cannot be used); with it, no such warning.
func TestConfigCheck_WarnsWhenNoSMTP(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCmd(t, baseEnv(t), "config", "check")
	if code != 0 || !strings.Contains(stderr, "warning: smtp.addr is not set") || !strings.Contains(stderr, "breach-clock reminders") {
		t.Fatalf("no SMTP: exit %d, stderr %q; want the mail warning", code, stderr)
	}
	code, _, stderr = runCmd(t, append(baseEnv(t), "TUTELA_SMTP_ADDR=smtp.example.org:587", "TUTELA_SMTP_FROM=tutela@example.org"),
		"config", "check")
	if code != 0 || strings.Contains(stderr, "smtp.addr is not set") {
		t.Fatalf("SMTP set: exit %d, stderr %q", code, stderr)
	}
}
