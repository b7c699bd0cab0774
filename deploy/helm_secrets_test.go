package deploy

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"tutela/config"
)

// volumeItems returns the pod's secrets volume items as key → path, failing on a repeated path.
func volumeItems(t *testing.T, dep manifest) map[string]string {
	t.Helper()
	items := map[string]string{}
	for _, v := range asList(at(dep, "spec", "template", "spec", "volumes")) {
		if at(v, "name") != "secrets" {
			continue
		}
		for _, it := range asList(at(v, "secret", "items")) {
			k, _ := at(it, "key").(string)
			p, _ := at(it, "path").(string)
			if _, dup := items[k]; dup {
				t.Errorf("secret key %s mounted twice", k)
			}
			items[k] = p
		}
	}
	return items
}

// Each feature's secret can come from the Secret: secretFiles mounts the key at
// /etc/tutela/secrets/<key> and sets <env>_FILE to it, for every secret the service reads that the
// chart does not set itself, including an audit ship destination's; a key also in extraKeys is
// mounted once; no secret value appears in the manifests.
func TestHelmChart_SecretFilesMountedAndPassedAsFile(t *testing.T) {
	t.Parallel()
	want := map[string]string{ // env → key
		"TUTELA_SMTP_PASSWORD":                   "smtp-password",
		"TUTELA_MONITORING_SINKS_WEBHOOK_SECRET": "monitoring-webhook-secret",
		"TUTELA_TRACING_HEADERS":                 "tracing-headers",
		"TUTELA_AUDIT_SHIP_SECRET_ARCHIVE":       "audit-ship-archive",
		"TUTELA_HSM_PIN":                         "hsm-pin",
		"TUTELA_VAULT_TOKEN":                     "vault-token",
		"TUTELA_FILES_S3_SECRET_ACCESS_KEY":      "s3-secret-access-key",
	}
	args := []string{"--set", "secrets.extraKeys={database-ca,smtp-password}"}
	envs := make([]string, 0, len(want))
	for env := range want {
		envs = append(envs, env)
	}
	slices.Sort(envs)
	for i, env := range envs {
		args = append(args, "--set", fmt.Sprintf("secretFiles[%d].key=%s", i, want[env]), "--set", fmt.Sprintf("secretFiles[%d].env=%s", i, env))
	}
	docs := mustTemplate(t, args...)
	dep := byKind(t, docs, "Deployment")
	env := envOf(container(dep, "tutela"))
	items := volumeItems(t, dep)
	for name, key := range want {
		if got := at(env[name+"_FILE"], "value"); got != "/etc/tutela/secrets/"+key {
			t.Errorf("%s_FILE = %v, want /etc/tutela/secrets/%s", name, got, key)
		}
		if env[name] != nil {
			t.Errorf("%s itself is set: %v", name, env[name])
		}
		if items[key] != key {
			t.Errorf("Secret key %s not mounted at its name (items %v)", key, items)
		}
	}
	for _, key := range []string{"master-key", "audit-key", "database-password", "metrics-token", "database-ca"} {
		if items[key] != key {
			t.Errorf("the chart's own key %s is no longer mounted (items %v)", key, items)
		}
	}
	if found := inlineSecrets(docs); len(found) > 0 {
		t.Errorf("secret values in the manifests: %q", found)
	}
	// Without secretFiles only the chart's own keys are mounted.
	if items := volumeItems(t, byKind(t, mustTemplate(t), "Deployment")); len(items) != 5 {
		t.Errorf("default mounts %v, want the five keys of secrets", items)
	}
}

// A secret given as a literal in env fails the render, naming the variable and the way to do it:
// every secret the service reads (config.SecretVariables), an audit ship secret, a secret-named
// variable added later, and a URL holding a password. Settings whose names merely contain such a
// word still render, as do _FILE paths.
func TestHelmChart_SecretInEnvRefused(t *testing.T) {
	t.Parallel()
	refused := append(config.SecretVariables(), "TUTELA_AUDIT_SHIP_SECRET_ARCHIVE", "TUTELA_FUTURE_API_TOKEN",
		"TUTELA_FUTURE_SIGNING_SECRET", "TUTELA_FUTURE_PASSWORD")
	for _, name := range refused {
		_, err := helmTemplate(t, "--set", "env."+name+"=abc")
		if err == nil || !strings.Contains(err.Error(), "env."+name+" is a secret") || !strings.Contains(err.Error(), "secretFiles") {
			t.Errorf("env.%s=abc: %v, want refused pointing at secretFiles", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "abc") {
			t.Errorf("env.%s: the refusal repeats the value: %v", name, err)
		}
	}
	if _, err := helmTemplate(t, "--set", "env.TUTELA_SMTP_URL=smtp://relay:hunter2@mail.example.org:587"); err == nil ||
		!strings.Contains(err.Error(), "URL with a password") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a URL with a password in env: %v, want refused without the password", err)
	}
	// Every non-secret setting renders, so the refusal cannot be dodged by naming and cannot
	// block a real setting (TUTELA_AUTH_PASSWORD_MIN_LENGTH, TUTELA_AUTH_ACCESS_TOKEN_TTL, ...).
	var args []string
	for _, name := range config.SettingVariables() {
		args = append(args, "--set-string", "env."+name+"=1")
	}
	args = append(args, "--set", "env.TUTELA_SMTP_PASSWORD_FILE=/etc/tutela/secrets/smtp-password")
	if _, err := helmTemplate(t, args...); err != nil {
		t.Errorf("non-secret settings refused: %v", err)
	}
}

// Malformed secretFiles entries are refused with a reason rather than rendered into a pod that
// starts without the secret or with the wrong one.
func TestHelmChart_SecretFilesMalformedRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		set  []string
		want string
	}{
		{[]string{"secretFiles[0].env=TUTELA_SMTP_PASSWORD"}, "needs both key"},
		{[]string{"secretFiles[0].key=smtp-password"}, "needs both key"},
		{[]string{"secretFiles[0].key=../master-key", "secretFiles[0].env=TUTELA_SMTP_PASSWORD"}, "is not a Secret key"},
		{[]string{"secretFiles[0].key=x", "secretFiles[0].env=TUTELA_SMTP_PASSWORD_FILE"}, "name the secret itself"},
		{[]string{"secretFiles[0].key=x", "secretFiles[0].env=TUTELA_LOG_LEVEL"}, "is not a secret Tutela reads"},
		{[]string{"secretFiles[0].key=x", "secretFiles[0].env=TUTELA_MASTER_KEY"}, "use secrets.masterKeyKey"},
		{[]string{"secretFiles[0].key=x", "secretFiles[0].env=TUTELA_SMTP_PASSWORD", "secretFiles[1].key=y", "secretFiles[1].env=TUTELA_SMTP_PASSWORD"}, "listed twice"},
		{[]string{"secretFiles[0].key=x", "secretFiles[0].env=TUTELA_SMTP_PASSWORD", "env.TUTELA_SMTP_PASSWORD_FILE=/x"}, "also set in env"},
	} {
		var args []string
		for _, s := range tt.set {
			args = append(args, "--set", s)
		}
		if _, err := helmTemplate(t, args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want refused with %q", tt.set, err, tt.want)
		}
	}
}

// The chart's list of secret names (templates/_helpers.tpl, tutela.secretVars) is the service's.
func TestHelmChart_SecretListMatchesConfig(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(chartDir + "/templates/_helpers.tpl")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)define "tutela.secretVars" -\}\}\s*(.*?)\s*\{\{-? end`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no tutela.secretVars in _helpers.tpl")
	}
	chart := strings.Fields(string(m[1]))
	slices.Sort(chart)
	if want := config.SecretVariables(); !slices.Equal(chart, want) {
		t.Errorf("chart secrets %q, config secrets %q", chart, want)
	}
}
