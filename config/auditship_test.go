package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestAuditShip_ParsesDestinationsWithSecretsFromEnv(t *testing.T) {
	t.Parallel()
	secretFile := writeFile(t, "siem-secret", "whsec_from_file\n")
	cfg := mustLoad(t, `
audit:
  ship:
    - archive=https://audit-archive.example.org/batches
    - siem=syslog+tls://siem.example.org:6514?ca_file=/etc/tutela/siem-ca.pem
    - local=http://127.0.0.1:8443/
`, "TUTELA_AUDIT_SHIP_SECRET_ARCHIVE=whsec_archive", "TUTELA_AUDIT_SHIP_SECRET_LOCAL_FILE="+secretFile)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ds := cfg.ShipDestinations()
	if len(ds) != 3 {
		t.Fatalf("destinations %+v", ds)
	}
	if d := ds[0]; d.Name != "archive" || d.Type != ShipHTTPS || d.URL != "https://audit-archive.example.org/batches" ||
		d.Secret.Reveal() != "whsec_archive" {
		t.Fatalf("archive = %+v", d)
	}
	if d := ds[1]; d.Name != "siem" || d.Type != ShipSyslog || d.URL != "siem.example.org:6514" || d.CAFile != "/etc/tutela/siem-ca.pem" {
		t.Fatalf("siem = %+v", d)
	}
	if d := ds[2]; d.Secret.Reveal() != "whsec_from_file" {
		t.Fatalf("local secret from file = %q", d.Secret.Reveal())
	}
	// The secrets are known variables, and redacted when the configuration is printed.
	if len(cfg.unknownEnv) != 0 {
		t.Fatalf("unknown variables %v", cfg.unknownEnv)
	}
	if s := cfg.String(); strings.Contains(s, "whsec_archive") || !strings.Contains(s, "archive") {
		t.Fatalf("printed configuration leaks or hides: %s", s)
	}
	// The same list from the environment.
	env := mustLoad(t, "", "TUTELA_AUDIT_SHIP=archive=https://a.example.org/in,siem=syslog+tls://s.example.org:6514",
		"TUTELA_AUDIT_SHIP_SECRET_ARCHIVE=x")
	if err := env.Validate(); err != nil || len(env.ShipDestinations()) != 2 {
		t.Fatalf("from the environment: %v, %+v", err, env.ShipDestinations())
	}
}

func TestAuditShip_EveryProblemReported(t *testing.T) {
	t.Parallel()
	tests := []struct {
		entry string
		env   []string
		want  string
	}{
		{"archive=https://a.example.org/in", nil, "set its signing secret in TUTELA_AUDIT_SHIP_SECRET_ARCHIVE"},
		{"Archive=https://a.example.org/in", nil, `must be "name=URL"`},
		{"https://a.example.org/in", nil, `must be "name=URL"`},
		{"arc-hive=https://a.example.org/in", nil, `must be "name=URL"`},
		{"archive=http://a.example.org/in", []string{"TUTELA_AUDIT_SHIP_SECRET_ARCHIVE=x"}, "must be an https URL"},
		{"archive=https://user:pw@a.example.org/in", []string{"TUTELA_AUDIT_SHIP_SECRET_ARCHIVE=x"}, "no user or password in the URL"},
		{"siem=syslog://s.example.org:514", nil, "syslog is shipped over TLS only"},
		{"siem=syslog+tls://s.example.org", nil, "syslog+tls://host:port"},
		{"siem=syslog+tls://s.example.org:6514?cafile=x", nil, `unknown parameter "cafile"`},
		{"siem=syslog+tls://s.example.org:6514", []string{"TUTELA_AUDIT_SHIP_SECRET_ARCHIVE=x"}, `has no destination "archive"`},
		{"archive=https://a.example.org/in", []string{"TUTELA_AUDIT_SHIP_SECRET_ARCHIVE=x", "TUTELA_AUDIT_SHIP_SECRET_ARCHIVE_FILE=/x"}, "set only one"},
		{"siem=syslog+tls://s.example.org:6514", []string{"TUTELA_AUDIT_SHIP_SECRET_SI_EM=x"}, "not a destination name"},
	}
	for _, tc := range tests {
		t.Run(tc.entry+fmt.Sprint(tc.env), func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, "audit:\n  ship:\n    - "+tc.entry+"\n", tc.env...)
			list := problemList(t, cfg.Validate())
			found := false
			for _, p := range list {
				found = found || strings.Contains(p, tc.want)
			}
			if !found {
				t.Fatalf("problems %q, want one containing %q", list, tc.want)
			}
		})
	}
	cfg := mustLoad(t, "audit:\n  ship:\n    - a=https://a.example.org/\n    - a=https://b.example.org/\n", "TUTELA_AUDIT_SHIP_SECRET_A=x")
	if list := problemList(t, cfg.Validate()); len(list) != 1 || !strings.Contains(list[0], "listed twice") {
		t.Fatalf("duplicate name: %q", list)
	}
}
