package config

import (
	"slices"
	"testing"
)

// The lists the packaging checks rely on: every secret (with the HSM PIN's rule name) and no
// setting among them, so a chart that refuses the first never refuses the second.
func TestVariables_SecretsAndSettingsApart(t *testing.T) {
	t.Parallel()
	secrets, settings := SecretVariables(), SettingVariables()
	for _, want := range []string{"TUTELA_SMTP_PASSWORD", "TUTELA_HSM_PIN", "TUTELA_VAULT_HSM_PIN", "TUTELA_TRACING_HEADERS",
		"TUTELA_MONITORING_SINKS_WEBHOOK_SECRET", "TUTELA_FILES_S3_SECRET_ACCESS_KEY", "TUTELA_VAULT_TOKEN"} {
		if !slices.Contains(secrets, want) {
			t.Errorf("SecretVariables lacks %s: %q", want, secrets)
		}
	}
	for _, s := range secrets {
		if slices.Contains(settings, s) {
			t.Errorf("%s is both a secret and a setting", s)
		}
		if _, ok := secretByRule(s); !ok && !slices.ContainsFunc(secretVars, func(v secretVar) bool { return v.name == s }) {
			t.Errorf("%s is listed but is not read as a secret", s)
		}
	}
	if !slices.Contains(settings, "TUTELA_AUTH_PASSWORD_MIN_LENGTH") || !slices.IsSorted(settings) || !slices.IsSorted(secrets) {
		t.Errorf("SettingVariables = %q", settings)
	}
}
