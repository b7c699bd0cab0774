package config

import (
	"slices"
	"strings"
	"testing"
)

func TestValidate_ResidencyRegion(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "eu", "eu-west", "ch-geneva-1"} {
		cfg := Default()
		cfg.Residency.Region = ok
		wantValid(t, cfg)
	}
	for _, bad := range []struct{ region, want string }{
		{"default", `"default" is not a data region`},
		{"EU", "is not a data region code"},
		{"europe", "is not a data region code"},
		{"eu-west-1-a", "is not a data region code"},
		{"eu west", "is not a data region code"},
	} {
		cfg := mustLoad(t, "", "TUTELA_RESIDENCY_REGION="+bad.region)
		wantOneProblem(t, cfg, "residency.region: ")
		if p := problemList(t, cfg.Validate()); !strings.Contains(p[0], bad.want) {
			t.Errorf("%q: problem %q, want it to say %q", bad.region, p[0], bad.want)
		}
	}
}

func TestTestOnly_DefaultsHaveNone(t *testing.T) {
	t.Parallel()
	if got := Default().TestOnly(); len(got) != 0 {
		t.Fatalf("TestOnly() of the defaults = %q, want none", got)
	}
	// OWASP's equivalent configurations are not test-only either.
	for _, p := range [][2]int{{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {65536, 3}} {
		cfg := Default()
		cfg.Auth.Hash.MemoryKiB, cfg.Auth.Hash.Time = p[0], p[1]
		if got := cfg.TestOnly(); len(got) != 0 {
			t.Errorf("m=%d t=%d: TestOnly() = %q, want none", p[0], p[1], got)
		}
	}
}

func TestTestOnly_ListsEverySettingAtOnce(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "", "TUTELA_AUTH_HASH_MEMORY_KIB=8192", "TUTELA_AUTH_HASH_TIME=1",
		"TUTELA_SMTP_ADDR=127.0.0.1:25", "TUTELA_SMTP_FROM=a@example.org", "TUTELA_SMTP_TLS=none", "TUTELA_LOG_LEVEL=debug")
	wantValid(t, cfg) // allowed for tests: only a production-marked database refuses them
	got := cfg.TestOnly()
	for _, want := range []string{"auth.hash: memory_kib=8192 with time=1", "smtp.tls: none", "log.level: debug"} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("TestOnly() = %q, want an entry starting %q", got, want)
		}
	}
	if len(got) != 3 {
		t.Errorf("TestOnly() has %d entries, want 3: %q", len(got), got)
	}
	// Just below the minimum on either axis is test-only.
	for _, p := range [][2]int{{19455, 2}, {19456, 1}, {47103, 1}} {
		c := Default()
		c.Auth.Hash.MemoryKiB, c.Auth.Hash.Time = p[0], p[1]
		if len(c.TestOnly()) != 1 {
			t.Errorf("m=%d t=%d: TestOnly() = %q, want the hash entry", p[0], p[1], c.TestOnly())
		}
	}
}

func TestDeviations_AreNotTestOnly(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "", "TUTELA_HTTP_ALLOW_PLAINTEXT=true", "TUTELA_AUTH_BREACH_FAIL_OPEN=true",
		"TUTELA_DATABASE_ALLOW_UNVERIFIED_TLS=true", "TUTELA_AUTH_MFA_ALL_USERS=false", "TUTELA_DATABASE_SQLITE_SYNCHRONOUS=normal")
	if got := cfg.TestOnly(); len(got) != 0 {
		t.Fatalf("TestOnly() = %q, want none: these are deployment choices", got)
	}
	got := cfg.Deviations()
	for _, want := range []string{"http.allow_plaintext", "auth.breach.fail_open", "database.allow_unverified_tls",
		"auth.mfa_all_users", "database.sqlite_synchronous"} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("Deviations() = %q, want an entry for %s", got, want)
		}
	}
	if got := Default().Deviations(); len(got) != 0 {
		t.Errorf("Deviations() of the defaults = %q, want none", got)
	}
}
