package compliance_test

import (
	"strings"
	"testing"

	"tutela"
	"tutela/compliance"
	"tutela/config"
)

// A register with an unrelated entry does not make the control met: each recipient derived
// from configuration and state (AI provider, webhook receiver, SMTP relay) must be declared.
func TestSubprocessors_UndeclaredRecipientsAreAGapNamingThem(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.SMTP.Addr = "smtp.mailgun.org:587"
	st := state()
	st.Tenants[0].Declared = []compliance.DeclaredSubprocessor{{Name: "Unrelated Ltd", Service: "printing", Locations: "EU"}}
	st.Tenants[0].AIProviders = []compliance.Endpoint{{Name: "openai", Host: "api.openai.com"}}
	st.Tenants[0].Webhooks = []compliance.Endpoint{{Name: "hooks.example.net", Host: "hooks.example.net"}}
	c := find(t, compliance.Build(cfg, compliance.Runtime{}, st, false, now), compliance.CtlSubprocessors, "acme")
	if c.Status != compliance.Gap {
		t.Fatalf("status %s (%q), want gap: api.openai.com, hooks.example.net and smtp.mailgun.org are not declared", c.Status, c.Summary)
	}
	var listed string
	for _, e := range c.Evidence {
		if e.Item == "recipients the register does not declare" {
			listed = e.Value
		}
	}
	if listed != "api.openai.com, hooks.example.net, smtp.mailgun.org" {
		t.Errorf("undeclared evidence = %q", listed)
	}
	if close := strings.Join(c.Close, "\n"); !strings.Contains(close, "POST /v1/tenants/acme/subprocessors") {
		t.Errorf("close %q does not name the call that declares a sub-processor", close)
	}
}

// Matching is by host, case-insensitively, ports and trailing dots aside; an entry naming the
// registered domain declares its hosts, but a public suffix (or a shared hosting suffix) does not.
func TestSubprocessors_RegisterMatchedByHost(t *testing.T) {
	t.Parallel()
	decl := func(names ...string) []compliance.DeclaredSubprocessor {
		var out []compliance.DeclaredSubprocessor
		for _, n := range names {
			out = append(out, compliance.DeclaredSubprocessor{Name: n, Service: "processing", Locations: `["US"]`})
		}
		return out
	}
	cases := []struct {
		name    string
		edit    func(*config.Config, *compliance.Tenant)
		want    compliance.Status
		missing string
	}{
		{"nothing leaves, nothing declared", func(*config.Config, *compliance.Tenant) {}, compliance.NotApplicable, "none"},
		{"host in the name, other case", func(_ *config.Config, t *compliance.Tenant) {
			t.AIProviders = []compliance.Endpoint{{Name: "openai", Host: "API.OpenAI.com"}}
			t.Declared = decl("OpenAI, L.L.C. (api.openai.COM)")
		}, compliance.Met, "none"},
		{"host as a URL in the service", func(_ *config.Config, t *compliance.Tenant) {
			t.AIProviders = []compliance.Endpoint{{Name: "openai", Host: "api.openai.com"}}
			t.Declared = []compliance.DeclaredSubprocessor{{Name: "OpenAI", Service: "inference at https://api.openai.com/v1"}}
		}, compliance.Met, "none"},
		{"registered domain declares its hosts", func(c *config.Config, t *compliance.Tenant) {
			c.SMTP.Addr = "smtp.eu.mailgun.org:587"
			t.Declared = decl("Mailgun (mailgun.org.)")
		}, compliance.Met, "none"},
		{"a public suffix declares nothing", func(_ *config.Config, t *compliance.Tenant) {
			t.Webhooks = []compliance.Endpoint{{Name: "hooks.example.co.uk", Host: "hooks.example.co.uk"}}
			t.Declared = decl("UK hosts (co.uk)")
		}, compliance.Gap, "hooks.example.co.uk"},
		{"a shared hosting suffix declares no customer's host", func(_ *config.Config, t *compliance.Tenant) {
			t.Webhooks = []compliance.Endpoint{{Name: "x", Host: "abc.execute-api.eu-west-1.amazonaws.com"}}
			t.Declared = decl("Amazon Web Services (amazonaws.com)")
		}, compliance.Gap, "abc.execute-api.eu-west-1.amazonaws.com"},
		{"a look-alike domain is not the declared one", func(_ *config.Config, t *compliance.Tenant) {
			t.AIProviders = []compliance.Endpoint{{Name: "openai", Host: "api.notopenai.com"}}
			t.Declared = decl("openai.com")
		}, compliance.Gap, "api.notopenai.com"},
		{"some declared", func(_ *config.Config, t *compliance.Tenant) {
			t.AIProviders = []compliance.Endpoint{{Name: "openai", Host: "api.openai.com"}}
			t.Webhooks = []compliance.Endpoint{{Name: "hooks.example.net", Host: "hooks.example.net:8443"}}
			t.Declared = decl("api.openai.com")
		}, compliance.Partial, "hooks.example.net"},
		{"KMS, witness, breach API, S3 and audit shipping are recipients", func(c *config.Config, t *compliance.Tenant) {
			c.Vault.KEKURI = "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/k1"
			c.Audit.CheckpointURL = "https://witness.example/add"
			c.Auth.Breach.RangeURL = "https://api.pwnedpasswords.com/range/"
			c.Files.Backend, c.Files.S3.Bucket, c.Files.S3.Region = "s3", "files", "eu-central-1"
			c.Audit.Ship = []string{"siem=syslog+tls://siem.example.org:6514"}
			c.ShipSecrets = map[string]tutela.Secret{}
			t.Declared = decl("AWS KMS (kms.eu-west-1.amazonaws.com)", "witness.example")
		}, compliance.Partial, "api.pwnedpasswords.com, s3.eu-central-1.amazonaws.com, siem.example.org"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, st := config.Default(), state()
			cfg.Auth.Breach.RangeURL = ""
			tc.edit(cfg, &st.Tenants[0])
			c := find(t, compliance.Build(cfg, compliance.Runtime{}, st, false, now), compliance.CtlSubprocessors, "acme")
			var missing string
			for _, e := range c.Evidence {
				if e.Item == "recipients the register does not declare" {
					missing = e.Value
				}
			}
			if c.Status != tc.want || missing != tc.missing {
				t.Fatalf("status %s, undeclared %q; want %s, %q (%s)", c.Status, missing, tc.want, tc.missing, c.Summary)
			}
			if (c.Status == compliance.Met) != (len(c.Close) == 0) && c.Status != compliance.NotApplicable {
				t.Fatalf("status %s with close %v", c.Status, c.Close)
			}
		})
	}
}
