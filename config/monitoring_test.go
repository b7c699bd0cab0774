package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tutela/monitor/rules"
)

func TestMonitoring_OffByDefault(t *testing.T) {
	t.Parallel()
	cfg := Default()
	if cfg.MonitoringOn() || len(cfg.MonitoringRoutes()) != 0 {
		t.Fatal("monitoring on with no sink")
	}
	got, problems := cfg.MonitoringRules()
	if len(problems) != 0 || len(got) != len(rules.Defaults()) {
		t.Fatalf("rules %d, problems %v", len(got), problems)
	}
}

func TestMonitoring_SinksFromFileAndSecretFromEnv(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(secretFile, []byte("whsec_0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustLoad(t, `
smtp:
  addr: mail.example.org:587
  from: tutela@example.org
monitoring:
  rules:
    - name=export_burst action=subject.export_* threshold=5 window=10m severity=critical
  disable_rules: [key_retired]
  sinks:
    webhook:
      url: https://siem.example.org/tutela
      rules: [export_burst, lockout_burst]
    syslog:
      addr: siem.example.org
    email:
      to: [secops@example.org]
      rules: [audit_verify_failed]
`, "TUTELA_MONITORING_SINKS_WEBHOOK_SECRET_FILE="+secretFile)
	wantValid(t, cfg)
	if cfg.MonitoringWebhookSecret.Reveal() != "whsec_0123456789abcdef" {
		t.Fatal("webhook secret not read from its file")
	}
	routes := cfg.MonitoringRoutes()
	if len(routes) != 3 || routes[0].Sink != rules.SinkWebhook || !slices.Equal(routes[0].Rules, []string{"export_burst", "lockout_burst"}) ||
		routes[1].Sink != rules.SinkSyslog || len(routes[1].Rules) != 0 || routes[2].Sink != rules.SinkEmail {
		t.Fatalf("routes %+v", routes)
	}
	if strings.Contains(cfg.String(), "whsec_") {
		t.Fatal("the printed configuration shows the webhook secret")
	}
}

func TestMonitoring_WebhookSecretNeverInTheFile(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `
monitoring:
  sinks:
    webhook:
      url: https://siem.example.org/tutela
      secret: whsec_in_the_file_0123456789
`)
	list := problemList(t, cfg.Validate())
	if !slices.ContainsFunc(list, func(s string) bool {
		return strings.Contains(s, "secret in config file (monitoring.sinks.webhook.secret)")
	}) {
		t.Fatalf("problems %q", list)
	}
	if !cfg.MonitoringWebhookSecret.IsZero() {
		t.Fatal("a secret from the file was kept")
	}
}

func TestMonitoring_EveryProblemReported(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `
monitoring:
  interval: 1h
  rules: ["name=x action=a threshold=5", "name=y action=b"]
  disable_rules: [no_such_rule]
  sinks:
    webhook:
      url: http://siem.example.org/tutela
      rules: [nope]
    syslog:
      cert_file: /etc/c.pem
    email:
      to: [not-an-address]
`)
	list := problemList(t, cfg.Validate())
	for _, want := range []string{
		"monitoring.interval",
		"monitoring.rules: rule x: a threshold needs a window",
		`monitoring.disable_rules: "no_such_rule"`,
		"monitoring.sinks.webhook.url: must be an https URL",
		`monitoring.sinks.webhook.rules: "nope" is not a rule`,
		"cert_file and key_file go together",
		"TLS settings without monitoring.sinks.syslog.addr",
		`monitoring.sinks.email.to: "not-an-address"`,
		"e-mail alerts need smtp.addr",
	} {
		if !slices.ContainsFunc(list, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no problem containing %q in %q", want, list)
		}
	}
	// A webhook URL without its secret, and a secret without a URL.
	cfg = mustLoad(t, "", "TUTELA_MONITORING_SINKS_WEBHOOK_URL=https://siem.example.org/x")
	wantOneProblem(t, cfg, "set TUTELA_MONITORING_SINKS_WEBHOOK_SECRET")
	cfg = mustLoad(t, "", "TUTELA_MONITORING_SINKS_WEBHOOK_SECRET=whsec_0123456789abcdef")
	wantOneProblem(t, cfg, "monitoring.sinks.webhook.url is not")
	cfg = mustLoad(t, "", "TUTELA_MONITORING_SINKS_SYSLOG_RULES=lockout_burst")
	wantOneProblem(t, cfg, "the syslog sink is not configured")
}
