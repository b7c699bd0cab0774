package main

import (
	"context"
	"strings"
	"testing"

	"tutela/sqlstore"
)

// testOnlyEnv are the test-only settings config.TestOnly knows, all at once.
var testOnlyEnv = []string{"TUTELA_AUTH_HASH_MEMORY_KIB=8192", "TUTELA_AUTH_HASH_TIME=1", "TUTELA_LOG_LEVEL=debug",
	"TUTELA_SMTP_ADDR=127.0.0.1:2525", "TUTELA_SMTP_FROM=tutela@example.org", "TUTELA_SMTP_TLS=none"}

// Without the marker, test-only settings serve; once the database is marked production, serve
// (and the other commands that open the server) refuses each of them, naming all at once.
func TestMarkProduction_RefusesTestOnlySettings(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	servedOnce(t, append(append([]string{}, env...), testOnlyEnv...))

	code, out, errOut := runCmd(t, env, "deployment", "mark-production")
	if code != 0 || !strings.Contains(out, "marked this database production") {
		t.Fatalf("mark-production: %d %s %s", code, out, errOut)
	}
	code, out, _ = runCmd(t, env, "deployment", "mark-production")
	if code != 0 || !strings.Contains(out, "already marked production") {
		t.Fatalf("second mark-production: %d %s", code, out)
	}
	all := mustRefuse(t, append(append([]string{}, env...), testOnlyEnv...), "marked production",
		"auth.hash: memory_kib=8192 with time=1", "smtp.tls: none", "log.level: debug")
	if strings.Contains(all, "tutela ready") {
		t.Fatal("a refused node got ready")
	}
	for _, one := range []struct {
		env  []string
		says string
	}{
		{[]string{"TUTELA_LOG_LEVEL=debug"}, "log.level: debug"},
		{[]string{"TUTELA_AUTH_HASH_TIME=1"}, "auth.hash: memory_kib=19456 with time=1"},
		{[]string{"TUTELA_AUTH_HASH_MEMORY_KIB=16384"}, "auth.hash: memory_kib=16384 with time=2"},
		{[]string{"TUTELA_SMTP_ADDR=127.0.0.1:2525", "TUTELA_SMTP_FROM=tutela@example.org", "TUTELA_SMTP_TLS=none"}, "smtp.tls: none"},
	} {
		mustRefuse(t, append(append([]string{}, env...), one.env...), "marked production", one.says)
	}
	// Other commands that open the server too.
	code, _, errOut = runCmd(t, append(append([]string{}, env...), "TUTELA_LOG_LEVEL=debug"), "bootstrap", "--tenant", "acme", "--email", "ana@example.org")
	if code != 1 || !strings.Contains(errOut, "log.level: debug") {
		t.Fatalf("bootstrap on a production database with log.level=debug: %d %s", code, errOut)
	}
	// Deviations a real deployment may choose still serve, with a warning.
	_, logs, stop := startServe(t, append(append([]string{}, env...), "TUTELA_AUTH_BREACH_FAIL_OPEN=true"))
	if code := stop(); code != 0 || !strings.Contains(logs.String(), "auth.breach.fail_open") {
		t.Fatalf("deviation on a production database: exit %d, logs %s", code, logs)
	}
	servedOnce(t, env)

	db, err := sqlstore.Open(context.Background(), dataDirOf(env)+"/tutela.db", sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Setting(context.Background(), sqlstore.SettingEnvironment); v != sqlstore.EnvironmentProduction {
		t.Fatalf("deployment.environment = %q", v)
	}
	recs, _, err := db.AuditEvents(context.Background(), sqlstore.AuditFilter{Action: "deployment.mark_production"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("mark_production events = %d, %v; want exactly one", len(recs), err)
	}
}

func TestMarkProduction_RefusedWithTestOnlySettingsOrOnStaging(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	servedOnce(t, env)
	code, _, errOut := runCmd(t, append(append([]string{}, env...), testOnlyEnv...), "deployment", "mark-production")
	if code != 1 || !strings.Contains(errOut, "test-only settings") || !strings.Contains(errOut, "log.level: debug") ||
		!strings.Contains(errOut, "smtp.tls: none") {
		t.Fatalf("mark-production with test-only settings: %d %s", code, errOut)
	}
	db, err := sqlstore.Open(context.Background(), dataDirOf(env)+"/tutela.db", sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Setting(context.Background(), sqlstore.SettingEnvironment); v != "" {
		t.Fatalf("a refused mark-production recorded %q", v)
	}
	// The anonymized copy (`tutela export --anonymize`) is marked staging: never production.
	if err := db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.ReplaceSetting(context.Background(), sqlstore.SettingEnvironment, sqlstore.EnvironmentStaging)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, _, errOut = runCmd(t, env, "deployment", "mark-production")
	if code != 1 || !strings.Contains(errOut, "marked staging") || !strings.Contains(errOut, "can never be marked production") {
		t.Fatalf("mark-production on staging: %d %s", code, errOut)
	}
	db, err = sqlstore.Open(context.Background(), dataDirOf(env)+"/tutela.db", sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Setting(context.Background(), sqlstore.SettingEnvironment); v != sqlstore.EnvironmentStaging {
		t.Fatalf("staging marker became %q", v)
	}
	// A staging database is not production: test-only settings serve there.
	servedOnce(t, append(append([]string{}, env...), "TUTELA_LOG_LEVEL=debug"))
}

func TestConfigCheck_PrintsTestOnlySettingsAndDeviations(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCmd(t, append(append(baseEnv(t), testOnlyEnv...), "TUTELA_HTTP_ALLOW_PLAINTEXT=true"), "config", "check")
	if code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("config check: %d %s %s", code, out, errOut)
	}
	for _, want := range []string{"test-only setting", "auth.hash: memory_kib=8192", "smtp.tls: none", "log.level: debug",
		"deviation from a default protection: http.allow_plaintext"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("config check does not print %q:\n%s", want, errOut)
		}
	}
}
