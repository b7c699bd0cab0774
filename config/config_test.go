package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
)

// writeFile writes content to a fresh temporary file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, yaml string, environ ...string) *Config {
	t.Helper()
	path := ""
	if yaml != "" {
		path = writeFile(t, "tutela.yaml", yaml)
	}
	cfg, err := Load(path, environ)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// problemList returns the problems in err, failing if err is not a *Problems.
func problemList(t *testing.T, err error) []string {
	t.Helper()
	var p *Problems
	if !errors.As(err, &p) {
		t.Fatalf("Validate() = %v, want *Problems", err)
	}
	return p.List
}

// wantOneProblem asserts Validate reports exactly one problem, containing want.
func wantOneProblem(t *testing.T, cfg *Config, want string) {
	t.Helper()
	list := problemList(t, cfg.Validate())
	if len(list) != 1 || !strings.Contains(list[0], want) {
		t.Fatalf("problems = %q, want exactly one containing %q", list, want)
	}
}

func wantValid(t *testing.T, cfg *Config) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
}

func TestDefault_IsValid(t *testing.T) {
	t.Parallel()
	wantValid(t, Default())
}

// Out of the box the breached-password check is on (built-in list, ASVS 6.2.12) and the
// password history rule is off (ASVS 4.0.3 2.1.10); nothing warns once mail is set up (without
// it, TestWarnings_NoSMTPSaysRemindersAreNotEmailed).
func TestDefault_BreachListOnHistoryOff(t *testing.T) {
	t.Parallel()
	d := Default()
	d.SMTP.Addr, d.SMTP.From = "smtp.example.org:587", "tutela@example.org"
	if !d.Auth.Breach.BuiltinList || d.Auth.Password.History != 0 {
		t.Errorf("defaults: builtin_list %v, history %d; want true, 0", d.Auth.Breach.BuiltinList, d.Auth.Password.History)
	}
	if w := d.Warnings(); len(w) != 0 {
		t.Errorf("default config warns: %q", w)
	}
	// check_at_login needs a source; the built-in list is one.
	d.Auth.Breach.CheckAtLogin = true
	wantValid(t, d)
	d.Auth.Breach.BuiltinList = false
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "check_at_login") {
		t.Errorf("check_at_login with no source: %v", err)
	}
	if w := d.Warnings(); len(w) != 1 || !strings.Contains(w[0], "builtin_list is off") {
		t.Errorf("builtin list off: warnings %q", w)
	}
}

func TestLoad_NoFileNoEnvGivesDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Load("", []string{"PATH=/bin", "TUTELA_TEST_DATABASE_URL=postgres://x"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("Load(\"\", env) = %+v, want defaults", cfg.Redacted())
	}
}

// A mistyped variable would leave the default in force without a word: it is named in a warning
// (config check and serve print them), and changes nothing. Secrets and their _FILE variants
// are known names.
func TestLoad_UnknownVariableWarnsAndChangesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pin := filepath.Join(dir, "pin")
	if err := os.WriteFile(pin, []byte("1234"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("", []string{"TUTELA_AUTH_SESION_IDLE=1m", "TUTELA_AUTH_SESION_IDLE=2m", "TUTELA_HSM_PIN_FILE=" + pin,
		"TUTELA_AUTH_SESSION_ABSOLUTE=8h", "OTHER_THING=1", "TUTELA_SMTP_ADDR=smtp.example.org:587"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.SessionIdle != Default().Auth.SessionIdle || cfg.Auth.SessionAbsolute != 8*time.Hour {
		t.Errorf("idle %v absolute %v", cfg.Auth.SessionIdle, cfg.Auth.SessionAbsolute)
	}
	w := cfg.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "TUTELA_AUTH_SESION_IDLE is not a Tutela setting") ||
		!strings.Contains(w[0], "TUTELA_AUTH_SESSION_IDLE") {
		t.Errorf("warnings %q", w)
	}
	// A secret's key turned into a variable by the rule names the secret's real variable.
	cfg, err = Load("", []string{"TUTELA_VAULT_HSM_PIN=1234", "TUTELA_SMTP_ADDR=smtp.example.org:587"})
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "TUTELA_HSM_PIN or TUTELA_HSM_PIN_FILE") || strings.Contains(w[0], "1234") {
		t.Errorf("warnings %q", w)
	}
}

func TestLoad_FileOverridesDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `
data_dir: /var/lib/tutela
http:
  addr: 127.0.0.1:9090
  read_timeout: 7s
  trusted_proxies: [10.0.0.0/8, 192.0.2.1]
  rate_limit:
    rps: 5.5
log:
  level: debug
`)
	def := Default()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"data_dir", cfg.DataDir, "/var/lib/tutela"},
		{"http.addr", cfg.HTTP.Addr, "127.0.0.1:9090"},
		{"http.read_timeout", cfg.HTTP.ReadTimeout, 7 * time.Second},
		{"http.trusted_proxies", cfg.HTTP.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.1"}},
		{"http.rate_limit.rps", cfg.HTTP.RateLimit.RPS, 5.5},
		{"log.level", cfg.Log.Level, "debug"},
		// Keys the file leaves out keep their defaults, including siblings in the same section.
		{"http.rate_limit.burst", cfg.HTTP.RateLimit.Burst, def.HTTP.RateLimit.Burst},
		{"http.write_timeout", cfg.HTTP.WriteTimeout, def.HTTP.WriteTimeout},
		{"log.format", cfg.Log.Format, def.Log.Format},
		{"database.max_open_conns", cfg.Database.MaxOpenConns, def.Database.MaxOpenConns},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	wantValid(t, cfg)
}

// ASVS 5.0 14.2.7: every kind of personal data the sweep covers has a bounded default, and a
// file can shorten one without resetting the others.
func TestLoad_RetentionDefaultsAndOverride(t *testing.T) {
	t.Parallel()
	def := Default().Retention
	want := Retention{LoginHistory: 2160 * time.Hour, SecurityEvents: 8760 * time.Hour,
		EndedSessions: 720 * time.Hour, UsedTokens: 24 * time.Hour, DeadJobs: 720 * time.Hour}
	if def != want {
		t.Fatalf("default retention = %+v, want %+v", def, want)
	}
	cfg := mustLoad(t, "retention:\n  login_history: 720h\n  used_tokens: 1h\n")
	want.LoginHistory, want.UsedTokens = 720*time.Hour, time.Hour
	if cfg.Retention != want {
		t.Fatalf("retention = %+v, want %+v", cfg.Retention, want)
	}
	wantValid(t, cfg)
}

func TestLoad_EnvOverridesFile(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `
http:
  addr: 127.0.0.1:9090
  trusted_proxies: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]
log:
  level: debug
  format: text
`,
		"TUTELA_HTTP_ADDR=127.0.0.1:7070",
		"TUTELA_HTTP_TRUSTED_PROXIES= 192.0.2.1 ,198.51.100.0/24,",
		"TUTELA_LOG_FORMAT=", // empty counts as unset: the file's value stays
	)
	if cfg.HTTP.Addr != "127.0.0.1:7070" {
		t.Errorf("http.addr = %q, want the environment's", cfg.HTTP.Addr)
	}
	// The environment's list replaces the file's; it is not merged element by element.
	if want := []string{"192.0.2.1", "198.51.100.0/24"}; !slices.Equal(cfg.HTTP.TrustedProxies, want) {
		t.Errorf("http.trusted_proxies = %q, want %q", cfg.HTTP.TrustedProxies, want)
	}
	if cfg.Log.Level != "debug" || cfg.Log.Format != "text" {
		t.Errorf("log = %+v, want the file's level and format", cfg.Log)
	}
}

func TestLoad_EnvMapsEveryVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  string
		got  func(*Config) any
		want any
	}{
		{"TUTELA_DATA_DIR=/srv/tutela", func(c *Config) any { return c.DataDir }, "/srv/tutela"},
		{"TUTELA_HTTP_ADDR=0.0.0.0:1", func(c *Config) any { return c.HTTP.Addr }, "0.0.0.0:1"},
		{"TUTELA_HTTP_ALLOW_PLAINTEXT=true", func(c *Config) any { return c.HTTP.AllowPlaintext }, true},
		{"TUTELA_HTTP_REDIRECT_ADDR=:80", func(c *Config) any { return c.HTTP.RedirectAddr }, ":80"},
		{"TUTELA_HTTP_TRUSTED_PROXIES=10.0.0.0/8", func(c *Config) any { return c.HTTP.TrustedProxies }, []string{"10.0.0.0/8"}},
		{"TUTELA_HTTP_BODY_LIMIT=2048", func(c *Config) any { return c.HTTP.BodyLimit }, int64(2048)},
		{"TUTELA_HTTP_READ_HEADER_TIMEOUT=1s", func(c *Config) any { return c.HTTP.ReadHeaderTimeout }, time.Second},
		{"TUTELA_HTTP_READ_TIMEOUT=2s", func(c *Config) any { return c.HTTP.ReadTimeout }, 2 * time.Second},
		{"TUTELA_HTTP_WRITE_TIMEOUT=3s", func(c *Config) any { return c.HTTP.WriteTimeout }, 3 * time.Second},
		{"TUTELA_HTTP_IDLE_TIMEOUT=4s", func(c *Config) any { return c.HTTP.IdleTimeout }, 4 * time.Second},
		{"TUTELA_HTTP_SHUTDOWN_TIMEOUT=5s", func(c *Config) any { return c.HTTP.ShutdownTimeout }, 5 * time.Second},
		{"TUTELA_HTTP_RATE_LIMIT_RPS=0.5", func(c *Config) any { return c.HTTP.RateLimit.RPS }, 0.5},
		{"TUTELA_HTTP_RATE_LIMIT_BURST=3", func(c *Config) any { return c.HTTP.RateLimit.Burst }, 3},
		{"TUTELA_TLS_CERT_FILE=/c.pem", func(c *Config) any { return c.TLS.CertFile }, "/c.pem"},
		{"TUTELA_TLS_KEY_FILE=/k.pem", func(c *Config) any { return c.TLS.KeyFile }, "/k.pem"},
		{"TUTELA_TLS_MIN_VERSION=1.2", func(c *Config) any { return c.TLS.MinVersion }, "1.2"},
		{"TUTELA_DATABASE_URL=postgres://db/t", func(c *Config) any { return c.Database.URL }, "postgres://db/t"},
		{"TUTELA_DATABASE_REQUIRE_TLS=1", func(c *Config) any { return c.Database.RequireTLS }, true},
		{"TUTELA_DATABASE_ALLOW_UNVERIFIED_TLS=true", func(c *Config) any { return c.Database.AllowUnverifiedTLS }, true},
		{"TUTELA_DATABASE_MAX_OPEN_CONNS=7", func(c *Config) any { return c.Database.MaxOpenConns }, 7},
		{"TUTELA_DATABASE_MAX_IDLE_CONNS=6", func(c *Config) any { return c.Database.MaxIdleConns }, 6},
		{"TUTELA_DATABASE_CONN_MAX_LIFETIME=1h", func(c *Config) any { return c.Database.ConnMaxLifetime }, time.Hour},
		{"TUTELA_DATABASE_REQUEST_TIMEOUT=3s", func(c *Config) any { return c.Database.RequestTimeout }, 3 * time.Second},
		{"TUTELA_DATABASE_SQLITE_SYNCHRONOUS=normal", func(c *Config) any { return c.Database.SQLiteSynchronous }, "normal"},
		{"TUTELA_LOG_LEVEL=warn", func(c *Config) any { return c.Log.Level }, "warn"},
		{"TUTELA_LOG_FORMAT=text", func(c *Config) any { return c.Log.Format }, "text"},
		{"TUTELA_AUTH_ISSUER=https://id.example.org", func(c *Config) any { return c.Auth.Issuer }, "https://id.example.org"},
		{"TUTELA_AUTH_SESSION_IDLE=20m", func(c *Config) any { return c.Auth.SessionIdle }, 20 * time.Minute},
		{"TUTELA_AUTH_SESSION_ABSOLUTE=8h", func(c *Config) any { return c.Auth.SessionAbsolute }, 8 * time.Hour},
		{"TUTELA_AUTH_ACCESS_TOKEN_TTL=2m", func(c *Config) any { return c.Auth.AccessTokenTTL }, 2 * time.Minute},
		{"TUTELA_AUTH_TOKEN_ALG=ES256", func(c *Config) any { return c.Auth.TokenAlg }, "ES256"},
		{"TUTELA_AUTH_TOKEN_ALGS=EdDSA,RS256", func(c *Config) any { return c.Auth.TokenAlgs }, []string{"EdDSA", "RS256"}},
		{"TUTELA_AUTH_KEY_ROTATION=48h", func(c *Config) any { return c.Auth.KeyRotation }, 48 * time.Hour},
		{"TUTELA_AUTH_RESET_CODE_TTL=5m", func(c *Config) any { return c.Auth.ResetCodeTTL }, 5 * time.Minute},
		{"TUTELA_AUTH_PASSWORD_MIN_LENGTH=14", func(c *Config) any { return c.Auth.Password.MinLength }, 14},
		{"TUTELA_AUTH_PASSWORD_MAX_LENGTH=200", func(c *Config) any { return c.Auth.Password.MaxLength }, 200},
		{"TUTELA_AUTH_PASSWORD_MIN_SCORE=4", func(c *Config) any { return c.Auth.Password.MinScore }, 4},
		{"TUTELA_AUTH_PASSWORD_HISTORY=10", func(c *Config) any { return c.Auth.Password.History }, 10},
		{"TUTELA_AUTH_HASH_MEMORY_KIB=65536", func(c *Config) any { return c.Auth.Hash.MemoryKiB }, 65536},
		{"TUTELA_AUTH_HASH_TIME=3", func(c *Config) any { return c.Auth.Hash.Time }, 3},
		{"TUTELA_AUTH_HASH_THREADS=2", func(c *Config) any { return c.Auth.Hash.Threads }, 2},
		{"TUTELA_AUTH_BREACH_BUILTIN_LIST=false", func(c *Config) any { return c.Auth.Breach.BuiltinList }, false},
		{"TUTELA_AUTH_BREACH_RANGE_URL=https://api.pwnedpasswords.com", func(c *Config) any { return c.Auth.Breach.RangeURL }, "https://api.pwnedpasswords.com"},
		{"TUTELA_AUTH_BREACH_INDEX_FILE=/srv/breach.idx", func(c *Config) any { return c.Auth.Breach.IndexFile }, "/srv/breach.idx"},
		{"TUTELA_AUTH_BREACH_FAIL_OPEN=true", func(c *Config) any { return c.Auth.Breach.FailOpen }, true},
		{"TUTELA_AUTH_BREACH_CHECK_AT_LOGIN=true", func(c *Config) any { return c.Auth.Breach.CheckAtLogin }, true},
		{"TUTELA_AUTH_MFA_ROLES=super_admin,caseworker", func(c *Config) any { return c.Auth.MFARoles }, []string{"super_admin", "caseworker"}},
		{"TUTELA_AUTH_MFA_ALL_USERS=false", func(c *Config) any { return c.Auth.MFAAllUsers }, false},
		{"TUTELA_AUTH_RESOURCES=https://records.example.org,https://files.example.org", func(c *Config) any { return c.Auth.Resources }, []string{"https://records.example.org", "https://files.example.org"}},
		{"TUTELA_AUDIT_CHECKPOINT_DIR=/mnt/witness", func(c *Config) any { return c.Audit.CheckpointDir }, "/mnt/witness"},
		{"TUTELA_AUDIT_CHECKPOINT_INTERVAL=5s", func(c *Config) any { return c.Audit.CheckpointInterval }, 5 * time.Second},
		{"TUTELA_AUDIT_CHECKPOINT_KEEP_HOURLY=48h", func(c *Config) any { return c.Audit.CheckpointKeepHourly }, 48 * time.Hour},
		{"TUTELA_AUDIT_CHECKPOINT_URL=https://witness.example.org/in", func(c *Config) any { return c.Audit.CheckpointURL }, "https://witness.example.org/in"},
		{"TUTELA_AUDIT_RETENTION=8760h", func(c *Config) any { return c.Audit.Retention }, 8760 * time.Hour},
		{"TUTELA_AUDIT_SHIP=archive=https://archive.example.org/in", func(c *Config) any { return c.Audit.Ship }, []string{"archive=https://archive.example.org/in"}},
		{"TUTELA_PRIVACY_ERASURE_LEDGER_DIR=/mnt/ledger", func(c *Config) any { return c.Privacy.ErasureLedgerDir }, "/mnt/ledger"},
		{"TUTELA_PRIVACY_UNMERGE_WINDOW=168h", func(c *Config) any { return c.Privacy.UnmergeWindow }, 168 * time.Hour},
		{"TUTELA_AI_PRIVATE_NETWORKS=10.20.0.0/16,127.0.0.1/32", func(c *Config) any { return c.AI.PrivateNetworks }, []string{"10.20.0.0/16", "127.0.0.1/32"}},
		{"TUTELA_FILES_BACKEND=s3", func(c *Config) any { return c.Files.Backend }, "s3"},
		{"TUTELA_FILES_DIR=/srv/tutela-files", func(c *Config) any { return c.Files.Dir }, "/srv/tutela-files"},
		{"TUTELA_FILES_S3_BUCKET=tutela-files", func(c *Config) any { return c.Files.S3.Bucket }, "tutela-files"},
		{"TUTELA_FILES_S3_PREFIX=prod/", func(c *Config) any { return c.Files.S3.Prefix }, "prod/"},
		{"TUTELA_FILES_S3_REGION=eu-west-1", func(c *Config) any { return c.Files.S3.Region }, "eu-west-1"},
		{"TUTELA_FILES_S3_ENDPOINT=https://minio.internal:9000", func(c *Config) any { return c.Files.S3.Endpoint }, "https://minio.internal:9000"},
		{"TUTELA_FILES_S3_PATH_STYLE=true", func(c *Config) any { return c.Files.S3.PathStyle }, true},
		{"TUTELA_FILES_S3_ACCESS_KEY_ID=AKIAEXAMPLE", func(c *Config) any { return c.Files.S3.AccessKeyID }, "AKIAEXAMPLE"},
		{"TUTELA_FILES_CLAMD=tcp:127.0.0.1:3310", func(c *Config) any { return c.Files.Clamd }, "tcp:127.0.0.1:3310"},
		{"TUTELA_FILES_SCAN_MAX_SIZE=1073741824", func(c *Config) any { return c.Files.ScanMaxSize }, int64(1 << 30)},
		{"TUTELA_FILES_SCAN_TIMEOUT=30s", func(c *Config) any { return c.Files.ScanTimeout }, 30 * time.Second},
		{"TUTELA_FILES_MALWARE_SCAN=false", func(c *Config) any { return c.Files.MalwareScan }, false},
		{"TUTELA_FILES_MAX_CONCURRENT_UPLOADS=8", func(c *Config) any { return c.Files.MaxConcurrentUploads }, 8},
		{"TUTELA_FILES_TRANSFER_TIMEOUT=2h", func(c *Config) any { return c.Files.TransferTimeout }, 2 * time.Hour},
		{"TUTELA_DSR_PERIODS=gdpr=30,kdpa=21", func(c *Config) any { return c.DSR.Periods }, []string{"gdpr=30", "kdpa=21"}},
		{"TUTELA_DSR_DEFAULT_JURISDICTION=popia", func(c *Config) any { return c.DSR.DefaultJurisdiction }, "popia"},
		{"TUTELA_DSR_REMINDERS=10d,2h", func(c *Config) any { return c.DSR.Reminders }, []string{"10d", "2h"}},
		{"TUTELA_DSR_DOWNLOAD_TTL=30m", func(c *Config) any { return c.DSR.DownloadTTL }, 30 * time.Minute},
		{"TUTELA_DSR_MAX_EXTENSION_DAYS=45", func(c *Config) any { return c.DSR.MaxExtensionDays }, 45},
		{"TUTELA_RETENTION_LOGIN_HISTORY=720h", func(c *Config) any { return c.Retention.LoginHistory }, 720 * time.Hour},
		{"TUTELA_RETENTION_SECURITY_EVENTS=4380h", func(c *Config) any { return c.Retention.SecurityEvents }, 4380 * time.Hour},
		{"TUTELA_RETENTION_ENDED_SESSIONS=168h", func(c *Config) any { return c.Retention.EndedSessions }, 168 * time.Hour},
		{"TUTELA_RETENTION_USED_TOKENS=2h", func(c *Config) any { return c.Retention.UsedTokens }, 2 * time.Hour},
		{"TUTELA_RETENTION_DEAD_JOBS=48h", func(c *Config) any { return c.Retention.DeadJobs }, 48 * time.Hour},
		{"TUTELA_SMTP_ADDR=mail.example.org:587", func(c *Config) any { return c.SMTP.Addr }, "mail.example.org:587"},
		{"TUTELA_SMTP_FROM=noreply@example.org", func(c *Config) any { return c.SMTP.From }, "noreply@example.org"},
		{"TUTELA_SMTP_USERNAME=tutela", func(c *Config) any { return c.SMTP.Username }, "tutela"},
		{"TUTELA_SMTP_TLS=implicit", func(c *Config) any { return c.SMTP.TLS }, "implicit"},
		{"TUTELA_VAULT_KEK_URI=hcvault://vault.internal:8200/transit/keys/tutela", func(c *Config) any { return c.Vault.KEKURI }, "hcvault://vault.internal:8200/transit/keys/tutela"},
		{"TUTELA_VAULT_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so", func(c *Config) any { return c.Vault.PKCS11Module }, "/usr/lib/softhsm/libsofthsm2.so"},
		{"TUTELA_VAULT_KMS_ENDPOINT=https://vpce.kms.example", func(c *Config) any { return c.Vault.KMSEndpoint }, "https://vpce.kms.example"},
		{"TUTELA_VAULT_HCVAULT_CA_FILE=/etc/vault-ca.pem", func(c *Config) any { return c.Vault.HCVaultCAFile }, "/etc/vault-ca.pem"},
		{"TUTELA_VAULT_CACHE_TTL=1m", func(c *Config) any { return c.Vault.CacheTTL }, time.Minute},
		{"TUTELA_VAULT_ROTATE_EVERY=2160h", func(c *Config) any { return c.Vault.RotateEvery }, 2160 * time.Hour},
		{"TUTELA_METRICS_ADDR=127.0.0.1:9999", func(c *Config) any { return c.Metrics.Addr }, "127.0.0.1:9999"},
		{"TUTELA_RESIDENCY_REGION=eu-west", func(c *Config) any { return c.Residency.Region }, "eu-west"},
		{"TUTELA_TRACING_OTLP_ENDPOINT=https://otel.internal:4318/v1/traces", func(c *Config) any { return c.Tracing.OTLPEndpoint }, "https://otel.internal:4318/v1/traces"},
		{"TUTELA_TRACING_SAMPLE_RATIO=0.25", func(c *Config) any { return c.Tracing.SampleRatio }, 0.25},
		{"TUTELA_TRACING_TRUST_TRACEPARENT=true", func(c *Config) any { return c.Tracing.TrustTraceparent }, true},
		{"TUTELA_MONITORING_RULES=name=a action=x.y,name=b action=z", func(c *Config) any { return c.Monitoring.Rules }, []string{"name=a action=x.y", "name=b action=z"}},
		{"TUTELA_MONITORING_DISABLE_RULES=key_retired", func(c *Config) any { return c.Monitoring.DisableRules }, []string{"key_retired"}},
		{"TUTELA_MONITORING_INTERVAL=5s", func(c *Config) any { return c.Monitoring.Interval }, 5 * time.Second},
		{"TUTELA_MONITORING_SINKS_WEBHOOK_URL=https://siem.example.org/in", func(c *Config) any { return c.Monitoring.Sinks.Webhook.URL }, "https://siem.example.org/in"},
		{"TUTELA_MONITORING_SINKS_WEBHOOK_RULES=lockout_burst", func(c *Config) any { return c.Monitoring.Sinks.Webhook.Rules }, []string{"lockout_burst"}},
		{"TUTELA_MONITORING_SINKS_SYSLOG_ADDR=siem.example.org:6514", func(c *Config) any { return c.Monitoring.Sinks.Syslog.Addr }, "siem.example.org:6514"},
		{"TUTELA_MONITORING_SINKS_SYSLOG_CA_FILE=/etc/siem-ca.pem", func(c *Config) any { return c.Monitoring.Sinks.Syslog.CAFile }, "/etc/siem-ca.pem"},
		{"TUTELA_MONITORING_SINKS_SYSLOG_SERVER_NAME=siem", func(c *Config) any { return c.Monitoring.Sinks.Syslog.ServerName }, "siem"},
		{"TUTELA_MONITORING_SINKS_SYSLOG_CERT_FILE=/etc/c.pem", func(c *Config) any { return c.Monitoring.Sinks.Syslog.CertFile }, "/etc/c.pem"},
		{"TUTELA_MONITORING_SINKS_SYSLOG_KEY_FILE=/etc/k.pem", func(c *Config) any { return c.Monitoring.Sinks.Syslog.KeyFile }, "/etc/k.pem"},
		{"TUTELA_MONITORING_SINKS_SYSLOG_RULES=passkey_cloned", func(c *Config) any { return c.Monitoring.Sinks.Syslog.Rules }, []string{"passkey_cloned"}},
		{"TUTELA_MONITORING_SINKS_EMAIL_TO=secops@example.org", func(c *Config) any { return c.Monitoring.Sinks.Email.To }, []string{"secops@example.org"}},
		{"TUTELA_MONITORING_SINKS_EMAIL_RULES=audit_verify_failed", func(c *Config) any { return c.Monitoring.Sinks.Email.Rules }, []string{"audit_verify_failed"}},
		{"TUTELA_HTTP_RATE_LIMIT_SHARE_EVERY=500ms", func(c *Config) any { return c.HTTP.RateLimit.ShareEvery }, 500 * time.Millisecond},
	}
	if len(tests) != len(envVars) {
		t.Fatalf("%d cases for %d variables: add a case for each new variable", len(tests), len(envVars))
	}
	for _, tt := range tests {
		name, _, _ := strings.Cut(tt.env, "=")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, "", tt.env)
			if got := tt.got(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestEnvVars_CoverEveryKey keeps the explicit table in step with the structs: every koanf key
// has exactly one variable, named TUTELA_ + the key in upper case with dots as underscores, and
// parsed as the field's type.
func TestEnvVars_CoverEveryKey(t *testing.T) {
	t.Parallel()
	fields := map[string]reflect.Type{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, prefix string) {
		for f := range typ.Fields() {
			tag := f.Tag.Get("koanf")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+tag+".")
				continue
			}
			fields[prefix+tag] = f.Type
		}
	}
	walk(reflect.TypeFor[Config](), "")

	kindOf := map[reflect.Type]kind{
		reflect.TypeFor[string]():        kindString,
		reflect.TypeFor[bool]():          kindBool,
		reflect.TypeFor[int]():           kindInt,
		reflect.TypeFor[int64]():         kindInt,
		reflect.TypeFor[float64]():       kindFloat,
		reflect.TypeFor[time.Duration](): kindDuration,
		reflect.TypeFor[[]string]():      kindList,
	}
	seen := map[string]bool{}
	for _, v := range envVars {
		typ, ok := fields[v.key]
		if !ok {
			t.Errorf("%s maps to %q, which is not a config key", v.name, v.key)
			continue
		}
		if seen[v.key] {
			t.Errorf("key %q has two variables", v.key)
		}
		seen[v.key] = true
		if want := "TUTELA_" + strings.ToUpper(strings.ReplaceAll(v.key, ".", "_")); v.name != want {
			t.Errorf("variable for %q is %s, want %s", v.key, v.name, want)
		}
		if k, ok := kindOf[typ]; !ok || k != v.kind {
			t.Errorf("%s: kind %d does not fit field type %s", v.name, v.kind, typ)
		}
	}
	for key := range fields {
		if !seen[key] {
			t.Errorf("key %q has no environment variable", key)
		}
	}
}

func TestLoad_UnknownYAMLKeyRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"top level", "colour: red\n", `unknown key "colour"`},
		{"misspelt in section", "http:\n  adr: 0.0.0.0:80\n", `unknown key "http.adr"`},
		{"nested section", "http:\n  rate_limit:\n    rsp: 1\n", `unknown key "http.rate_limit.rsp"`},
		{"section as scalar", "http: yes\n", `"http" must be a mapping`},
		{"secret file variable is not a key", "master_key_file: /run/k\n", `unknown key "master_key_file"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(writeFile(t, "tutela.yaml", tt.yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate error = %v, want it to contain %s", err, tt.want)
			}
		})
	}
}

// config check prints every problem at once: an unknown key in the file and a variable that
// does not parse come with the rule violations, not instead of them.
func TestValidate_UnknownKeyAndBadVariableReportedWithEveryOtherProblem(t *testing.T) {
	t.Parallel()
	cfg, err := Load(writeFile(t, "tutela.yaml", "http:\n  bogus: 1\nlog:\n  level: loud\n"),
		[]string{"TUTELA_HTTP_RATE_LIMIT_RPS=abc", "TUTELA_AUTH_SESSION_IDLE=soon"})
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, want := range []string{`unknown key "http.bogus"`, "TUTELA_HTTP_RATE_LIMIT_RPS", "TUTELA_AUTH_SESSION_IDLE", "log.level"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error = %v, want it to name %s", err, want)
		}
	}
	if cfg.HTTP.RateLimit.RPS != Default().HTTP.RateLimit.RPS {
		t.Errorf("an unparsable variable changed the setting: %v", cfg.HTTP.RateLimit.RPS)
	}
}

func TestLoad_EmptySectionAccepted(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "http:\ndatabase: {}\nlog:\n  level:\n")
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("empty sections changed the config: %v", cfg)
	}
}

func TestLoad_BadFile(t *testing.T) {
	t.Parallel()
	t.Run("missing explicit file", func(t *testing.T) {
		t.Parallel()
		_, err := Load(filepath.Join(t.TempDir(), "tutela.yaml"), nil)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load error = %v, want fs.ErrNotExist", err)
		}
	})
	tests := []struct {
		name, yaml, want string
	}{
		{"malformed YAML", "http:\n  addr: [\n", "tutela.yaml"},
		{"not a mapping", "- a\n- b\n", "tutela.yaml"},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", "level"},
		{"string for integer", "http:\n  body_limit: lots\n", "http.body_limit"},
		{"number for string", "http:\n  addr: 8080\n", "http.addr"},
		{"fractional integer", "http:\n  rate_limit:\n    burst: 1.5\n", "http.rate_limit.burst"},
		{"duration without unit", "http:\n  read_timeout: 15\n", "http.read_timeout"},
		{"bad duration", "database:\n  conn_max_lifetime: forever\n", "database.conn_max_lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(writeFile(t, "tutela.yaml", tt.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoad_BadEnvValueNamesVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  []string
		want []string
	}{
		{[]string{"TUTELA_HTTP_READ_TIMEOUT=15"}, []string{"TUTELA_HTTP_READ_TIMEOUT", "invalid duration"}},
		{[]string{"TUTELA_DATABASE_CONN_MAX_LIFETIME=soon"}, []string{"TUTELA_DATABASE_CONN_MAX_LIFETIME"}},
		{[]string{"TUTELA_HTTP_BODY_LIMIT=1MiB"}, []string{"TUTELA_HTTP_BODY_LIMIT", "invalid integer"}},
		{[]string{"TUTELA_HTTP_ALLOW_PLAINTEXT=yes"}, []string{"TUTELA_HTTP_ALLOW_PLAINTEXT", "invalid boolean"}},
		{[]string{"TUTELA_HTTP_RATE_LIMIT_RPS=fast"}, []string{"TUTELA_HTTP_RATE_LIMIT_RPS", "invalid number"}},
		// Every bad variable is named, not only the first.
		{
			[]string{"TUTELA_HTTP_IDLE_TIMEOUT=x", "TUTELA_DATABASE_MAX_OPEN_CONNS=many"},
			[]string{"TUTELA_HTTP_IDLE_TIMEOUT", "TUTELA_DATABASE_MAX_OPEN_CONNS"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.env[0], func(t *testing.T) {
			t.Parallel()
			cfg, err := Load("", tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if err = cfg.Validate(); err == nil {
				t.Fatal("Validate succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestValidate_ReportsEveryProblem(t *testing.T) {
	t.Parallel()
	cfg := Default()
	cfg.DataDir = ""
	cfg.HTTP.BodyLimit = 10
	cfg.HTTP.ReadTimeout = 0
	cfg.HTTP.RateLimit.RPS = 0
	cfg.HTTP.RateLimit.Burst = 0
	cfg.TLS.MinVersion = "1.1"
	cfg.Database.URL = "mysql://db/tutela"
	cfg.Log.Level = "verbose"
	cfg.Log.Format = "xml"

	err := cfg.Validate()
	list := problemList(t, err)
	want := []string{
		"data_dir: must not be empty",
		"http.body_limit: 10 bytes",
		"http.read_timeout: must be > 0",
		"http.rate_limit.rps: must be",
		"http.rate_limit.burst: must be >= 1",
		`tls.min_version: "1.1"`,
		`database.url: scheme "mysql"`,
		`log.level: "verbose"`,
		`log.format: "xml"`,
	}
	if len(list) != len(want) {
		t.Fatalf("got %d problems %q, want %d", len(list), list, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(list[i], w) {
			t.Errorf("problem %d = %q, want prefix %q", i, list[i], w)
		}
	}
	if err.Error() != strings.Join(list, "; ") {
		t.Errorf("Error() = %q, want the list joined with \"; \"", err.Error())
	}
}

func TestValidate_Ranges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" means valid
	}{
		{"body limit at minimum", func(c *Config) { c.HTTP.BodyLimit = 1 << 10 }, ""},
		{"unmerge window at minimum", func(c *Config) { c.Privacy.UnmergeWindow = time.Hour }, ""},
		{"unmerge window at maximum", func(c *Config) { c.Privacy.UnmergeWindow = 365 * 24 * time.Hour }, ""},
		{"unmerge window too short", func(c *Config) { c.Privacy.UnmergeWindow = time.Hour - time.Second }, "privacy.unmerge_window"},
		{"unmerge window unset", func(c *Config) { c.Privacy.UnmergeWindow = 0 }, "privacy.unmerge_window"},
		{"unmerge window too long", func(c *Config) { c.Privacy.UnmergeWindow = 365*24*time.Hour + time.Second }, "privacy.unmerge_window"},
		{"body limit at maximum", func(c *Config) { c.HTTP.BodyLimit = 64 << 20 }, ""},
		{"body limit below minimum", func(c *Config) { c.HTTP.BodyLimit = 1<<10 - 1 }, "http.body_limit"},
		{"body limit above maximum", func(c *Config) { c.HTTP.BodyLimit = 64<<20 + 1 }, "http.body_limit"},
		{"negative read header timeout", func(c *Config) { c.HTTP.ReadHeaderTimeout = -time.Second }, "http.read_header_timeout"},
		{"zero write timeout", func(c *Config) { c.HTTP.WriteTimeout = 0 }, "http.write_timeout"},
		{"zero idle timeout", func(c *Config) { c.HTTP.IdleTimeout = 0 }, "http.idle_timeout"},
		{"zero shutdown timeout", func(c *Config) { c.HTTP.ShutdownTimeout = 0 }, "http.shutdown_timeout"},
		{"fractional rps", func(c *Config) { c.HTTP.RateLimit.RPS = 0.1 }, ""},
		{"negative rps", func(c *Config) { c.HTTP.RateLimit.RPS = -1 }, "http.rate_limit.rps"},
		{"NaN rps", func(c *Config) { c.HTTP.RateLimit.RPS = math.NaN() }, "http.rate_limit.rps"},
		{"infinite rps", func(c *Config) { c.HTTP.RateLimit.RPS = math.Inf(1) }, "http.rate_limit.rps"},
		{"burst of one", func(c *Config) { c.HTTP.RateLimit.Burst = 1 }, ""},
		{"rate limit per node", func(c *Config) { c.HTTP.RateLimit.ShareEvery = 0 }, ""},
		{"rate limit flushed too often", func(c *Config) { c.HTTP.RateLimit.ShareEvery = time.Millisecond }, "http.rate_limit.share_every"},
		{"rate limit flushed too rarely", func(c *Config) { c.HTTP.RateLimit.ShareEvery = 2 * time.Second }, "http.rate_limit.share_every"},
		{"negative rate limit flush", func(c *Config) { c.HTTP.RateLimit.ShareEvery = -time.Second }, "http.rate_limit.share_every"},
		{"no open conns", func(c *Config) { c.Database.MaxOpenConns, c.Database.MaxIdleConns = 0, 0 }, "database.max_open_conns"},
		{"sqlite synchronous normal", func(c *Config) { c.Database.SQLiteSynchronous = "normal" }, ""},
		{"sqlite synchronous off", func(c *Config) { c.Database.SQLiteSynchronous = "off" }, "database.sqlite_synchronous"},
		{"sqlite synchronous upper case", func(c *Config) { c.Database.SQLiteSynchronous = "FULL" }, "database.sqlite_synchronous"},
		{"sqlite synchronous empty", func(c *Config) { c.Database.SQLiteSynchronous = "" }, "database.sqlite_synchronous"},
		{"more idle than open", func(c *Config) { c.Database.MaxIdleConns = 21 }, "database.max_idle_conns"},
		{"negative idle", func(c *Config) { c.Database.MaxIdleConns = -1 }, "database.max_idle_conns"},
		{"zero conn lifetime", func(c *Config) { c.Database.ConnMaxLifetime = 0 }, "database.conn_max_lifetime"},
		{"no request timeout", func(c *Config) { c.Database.RequestTimeout = 0 }, "database.request_timeout"},
		{"request timeout too long to be a bound", func(c *Config) { c.Database.RequestTimeout = 2 * time.Minute }, "database.request_timeout"},
		{"request timeout at minimum", func(c *Config) { c.Database.RequestTimeout = 100 * time.Millisecond }, ""},
		{"TLS 1.2", func(c *Config) { c.TLS.MinVersion = "1.2" }, ""},
		{"TLS 1.0", func(c *Config) { c.TLS.MinVersion = "1.0" }, "tls.min_version"},
		{"upper-case log level", func(c *Config) { c.Log.Level = "INFO" }, "log.level"},
		{"sqlite scheme", func(c *Config) { c.Database.URL = "sqlite:///tmp/t.db" }, "database.url"},
		{"postgresql scheme", func(c *Config) { c.Database.URL = "postgresql://db/tutela?sslmode=verify-full" }, ""},
		{"login history kept a day", func(c *Config) { c.Retention.LoginHistory = 24 * time.Hour }, ""},
		{"login history kept less than a day", func(c *Config) { c.Retention.LoginHistory = 23 * time.Hour }, "retention.login_history: must be at least 24h"},
		{"security events kept for ever", func(c *Config) { c.Retention.SecurityEvents = 0 }, "retention.security_events: must be at least 24h"},
		{"ended sessions kept less than a day", func(c *Config) { c.Retention.EndedSessions = time.Hour }, "retention.ended_sessions: must be at least 24h"},
		{"negative session retention", func(c *Config) { c.Retention.EndedSessions = -48 * time.Hour }, "retention.ended_sessions"},
		{"used tokens kept an hour", func(c *Config) { c.Retention.UsedTokens = time.Hour }, ""},
		{"used tokens kept less than an hour", func(c *Config) { c.Retention.UsedTokens = 59 * time.Minute }, "retention.used_tokens: must be at least 1h"},
		{"used tokens kept for ever", func(c *Config) { c.Retention.UsedTokens = 0 }, "retention.used_tokens"},
		{"dead jobs kept a day", func(c *Config) { c.Retention.DeadJobs = 24 * time.Hour }, ""},
		{"dead jobs kept less than a day", func(c *Config) { c.Retention.DeadJobs = 23 * time.Hour }, "retention.dead_jobs: must be at least 24h"},
		{"dead jobs kept for ever", func(c *Config) { c.Retention.DeadJobs = 0 }, "retention.dead_jobs"},
		{"reset codes live a minute", func(c *Config) { c.Auth.ResetCodeTTL = time.Minute }, ""},
		{"reset codes live an hour", func(c *Config) { c.Auth.ResetCodeTTL = time.Hour }, ""},
		{"reset codes live under a minute", func(c *Config) { c.Auth.ResetCodeTTL = 59 * time.Second }, "auth.reset_code_ttl: must be between 1m and 1h"},
		{"reset codes live over an hour", func(c *Config) { c.Auth.ResetCodeTTL = time.Hour + time.Second }, "auth.reset_code_ttl"},
		{"reset codes unset", func(c *Config) { c.Auth.ResetCodeTTL = 0 }, "auth.reset_code_ttl"},
		{"every checkpoint kept", func(c *Config) { c.Audit.CheckpointKeepHourly = 0 }, ""},
		{"checkpoints hourly for an hour", func(c *Config) { c.Audit.CheckpointKeepHourly = time.Hour }, ""},
		{"checkpoints hourly under an hour", func(c *Config) { c.Audit.CheckpointKeepHourly = time.Minute }, "audit.checkpoint_keep_hourly"},
		{"negative checkpoint thinning", func(c *Config) { c.Audit.CheckpointKeepHourly = -time.Hour }, "audit.checkpoint_keep_hourly"},
		{"AI private networks", func(c *Config) { c.AI.PrivateNetworks = []string{"10.20.0.0/16", "::1/128"} }, ""},
		{"AI private network not a prefix", func(c *Config) { c.AI.PrivateNetworks = []string{"10.20.0.1"} }, "ai.private_networks"},
		{"AI private network of everything", func(c *Config) { c.AI.PrivateNetworks = []string{"0.0.0.0/0"} }, "ai.private_networks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			tt.mutate(cfg)
			if tt.want == "" {
				wantValid(t, cfg)
				return
			}
			wantOneProblem(t, cfg, tt.want)
		})
	}
}

func TestValidate_SecretInFileRejected(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-Xq9"
	tests := []struct {
		name, yaml, want string
	}{
		{"database.password", "database:\n  password: " + secret + "\n", "TUTELA_DATABASE_PASSWORD_FILE"},
		{"master_key", "master_key: " + secret + "\n", "TUTELA_MASTER_KEY_FILE"},
		{"password in database.url", "database:\n  url: postgres://app:" + secret + "@db:5432/tutela?sslmode=verify-full\n", "TUTELA_DATABASE_PASSWORD"},
		// An invalid escape makes url.Parse fail, whose error would quote the whole URL.
		{"password in unparseable database.url", "database:\n  url: postgres://app:" + secret + "%zz@db/tutela\n", "TUTELA_DATABASE_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, tt.yaml)
			err := cfg.Validate()
			list := problemList(t, err)
			if !strings.HasPrefix(list[0], "secret in config file") || !strings.Contains(list[0], tt.want) {
				t.Errorf("first problem = %q, want a secret-in-file problem naming %s", list[0], tt.want)
			}
			for name, text := range map[string]string{
				"Validate error": err.Error(),
				"String":         cfg.String(),
				"%v":             fmt.Sprintf("%v %+v", cfg, *cfg),
				"Redacted":       fmt.Sprint(cfg.Redacted()),
				"DatabaseDSN":    cfg.DatabaseDSN(),
			} {
				if strings.Contains(text, secret) {
					t.Errorf("%s leaks the secret: %q", name, text)
				}
			}
			if !cfg.DatabasePassword.IsZero() || !cfg.MasterKey.IsZero() {
				t.Error("a secret from the file reached the Config")
			}
		})
	}
}

func TestValidate_PasswordInURLFromEnvAllowed(t *testing.T) {
	t.Parallel()
	const dsn = "postgres://app:s3cret-from-env@db:5432/tutela?sslmode=verify-full"
	cfg := mustLoad(t, "log:\n  level: info\n", "TUTELA_DATABASE_URL="+dsn)
	wantValid(t, cfg)
	if got := cfg.DatabaseDSN(); got != dsn {
		t.Errorf("DatabaseDSN() = %q, want %q", got, dsn)
	}
	if s := cfg.String(); strings.Contains(s, "s3cret-from-env") {
		t.Errorf("String() leaks the password: %s", s)
	}
}

func TestValidate_PasswordInURLAndVariableConflict(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "",
		"TUTELA_DATABASE_URL=postgres://app:one@db/tutela?sslmode=verify-full",
		"TUTELA_DATABASE_PASSWORD=two")
	wantOneProblem(t, cfg, "use only one")
}

func TestDatabaseDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, password string
		wantPassword        string // password in the returned DSN; "" means none
		wantUser            string
	}{
		{"injects password", "postgres://app@db:5432/tutela?sslmode=verify-full", "p@ss/w:rd", "p@ss/w:rd", "app"},
		{"no password set", "postgres://app@db/tutela", "", "", "app"},
		{"URL's own password kept", "postgres://app:inurl@db/tutela", "other", "inurl", "app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.Database.URL = tt.url
			cfg.DatabasePassword = tutela.NewSecret(tt.password)
			u, err := url.Parse(cfg.DatabaseDSN())
			if err != nil {
				t.Fatal(err)
			}
			pw, _ := u.User.Password()
			if pw != tt.wantPassword || u.User.Username() != tt.wantUser {
				t.Errorf("DSN user:password = %q:%q, want %q:%q", u.User.Username(), pw, tt.wantUser, tt.wantPassword)
			}
			if u.Host == "" || u.Path != "/tutela" {
				t.Errorf("DSN lost host or path: %v", u.Redacted())
			}
		})
	}
	t.Run("embedded SQLite", func(t *testing.T) {
		t.Parallel()
		cfg := Default()
		cfg.DatabasePassword = tutela.NewSecret("pw")
		if got := cfg.DatabaseDSN(); got != "" {
			t.Errorf("DatabaseDSN() = %q, want empty", got)
		}
	})
}

func TestValidate_DatabaseTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url                    string
		requireTLS, unverified bool
		want                   string // "" means valid
	}{
		// Another host: verify-full, always.
		{"postgres://db/t?sslmode=disable", false, false, "not on this machine and sslmode is disable"},
		{"postgres://db/t?sslmode=prefer", false, false, "sslmode is prefer"},
		{"postgres://db/t", false, false, "sslmode is unset"},
		{"postgres://db/t?sslmode=require", false, false, "or set database.allow_unverified_tls"},
		{"postgres://db/t?sslmode=verify-ca", false, false, "sslmode is verify-ca"},
		{"postgres://db/t?sslmode=verify-full", false, false, ""},
		{"postgres://10.0.0.5:5432/t?sslmode=verify-full&sslrootcert=/etc/ca.pem", false, false, ""},
		// The documented deviation: encrypted but unverified, never plaintext.
		{"postgres://db/t?sslmode=require", false, true, ""},
		{"postgres://db/t?sslmode=verify-ca", false, true, ""},
		{"postgres://db/t?sslmode=disable", false, true, "sslmode is disable"},
		{"postgres://db/t", false, true, "sslmode is unset"},
		// This machine (loopback or Unix socket): free unless require_tls.
		{"postgres://127.0.0.1/t?sslmode=disable", false, false, ""},
		{"postgres://localhost/t", false, false, ""},
		{"postgres://[::1]:5432/t", false, false, ""},
		{"postgres:///t?host=/var/run/postgresql", false, false, ""},
		{"postgres://127.0.0.1/t?sslmode=disable", true, false, "database.require_tls and sslmode is disable"},
		{"postgres://127.0.0.1/t?sslmode=verify-full", true, false, ""},
		{"", true, false, "needs a PostgreSQL database.url"},
		// A name that merely contains "localhost" is another host.
		{"postgres://localhost.evil.example/t", false, false, "not on this machine"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v/%v", tt.url, tt.requireTLS, tt.unverified), func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.Database.URL = tt.url
			cfg.Database.RequireTLS = tt.requireTLS
			cfg.Database.AllowUnverifiedTLS = tt.unverified
			if tt.want == "" {
				wantValid(t, cfg)
				return
			}
			wantOneProblem(t, cfg, tt.want)
		})
	}
}

func TestLoad_SecretsFromEnvironment(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("k", maxSecretFile+1)
	tests := []struct {
		name        string
		file        string   // written to $FILE when non-empty
		env         []string // "$FILE" is replaced by the file's path
		wantKey     string   // MasterKey
		wantDBPass  string   // DatabasePassword
		wantProblem string   // "" means valid
	}{
		{name: "variable", env: []string{"TUTELA_DATABASE_PASSWORD=direct"}, wantDBPass: "direct"},
		{name: "file", file: "k3y\n", env: []string{"TUTELA_MASTER_KEY_FILE=$FILE"}, wantKey: "k3y"},
		{name: "file with CRLF", file: "k3y\r\n", env: []string{"TUTELA_MASTER_KEY_FILE=$FILE"}, wantKey: "k3y"},
		{name: "only one newline trimmed", file: "k3y\n\n", env: []string{"TUTELA_MASTER_KEY_FILE=$FILE"}, wantKey: "k3y\n"},
		{name: "password file", file: "pw", env: []string{"TUTELA_DATABASE_PASSWORD_FILE=$FILE"}, wantDBPass: "pw"},
		{name: "empty variable ignored", file: "pw", env: []string{"TUTELA_DATABASE_PASSWORD=", "TUTELA_DATABASE_PASSWORD_FILE=$FILE"}, wantDBPass: "pw"},
		{
			name:        "both set",
			file:        "from-file",
			env:         []string{"TUTELA_DATABASE_PASSWORD=from-var", "TUTELA_DATABASE_PASSWORD_FILE=$FILE"},
			wantProblem: "both TUTELA_DATABASE_PASSWORD and TUTELA_DATABASE_PASSWORD_FILE are set",
		},
		{name: "missing file", env: []string{"TUTELA_MASTER_KEY_FILE=/nonexistent/tutela-key"}, wantProblem: "TUTELA_MASTER_KEY_FILE"},
		{name: "empty file", file: "\n", env: []string{"TUTELA_MASTER_KEY_FILE=$FILE"}, wantProblem: "is empty"},
		{name: "oversized file", file: big, env: []string{"TUTELA_MASTER_KEY_FILE=$FILE"}, wantProblem: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.file != "" {
				path = writeFile(t, "secret", tt.file)
			}
			env := make([]string, len(tt.env))
			for i, e := range tt.env {
				env[i] = strings.ReplaceAll(e, "$FILE", path)
			}
			cfg := mustLoad(t, "", env...)
			if tt.wantProblem != "" {
				wantOneProblem(t, cfg, tt.wantProblem)
				for _, v := range []string{"from-var", "from-file", big} {
					if strings.Contains(cfg.Validate().Error(), v) {
						t.Errorf("problem text leaks a secret value")
					}
				}
				return
			}
			wantValid(t, cfg)
			if got := cfg.MasterKey.Reveal(); got != tt.wantKey {
				t.Errorf("MasterKey = %q, want %q", got, tt.wantKey)
			}
			if got := cfg.DatabasePassword.Reveal(); got != tt.wantDBPass {
				t.Errorf("DatabasePassword = %q, want %q", got, tt.wantDBPass)
			}
		})
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want netip.Prefix
	}{
		{"192.0.2.1", netip.MustParsePrefix("192.0.2.1/32")},
		{"2001:db8::1", netip.MustParsePrefix("2001:db8::1/128")},
		{"::ffff:192.0.2.1", netip.MustParsePrefix("192.0.2.1/32")},
		{"10.0.0.0/8", netip.MustParsePrefix("10.0.0.0/8")},
		{"2001:db8::/32", netip.MustParsePrefix("2001:db8::/32")},
	}
	for _, tt := range good {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.HTTP.TrustedProxies = []string{tt.in}
			got, err := cfg.TrustedProxyPrefixes()
			if err != nil || len(got) != 1 || got[0] != tt.want {
				t.Fatalf("TrustedProxyPrefixes() = %v, %v; want [%v]", got, err, tt.want)
			}
			wantValid(t, cfg)
		})
	}
	bad := []struct{ in, want string }{
		{"10.0.0.1/8", "did you mean 10.0.0.0/8"},
		{"proxy.internal", "not an IP address or CIDR"},
		{"10.0.0.0/33", "not an IP address or CIDR"},
		{"fe80::1%eth0", "not an IP address or CIDR"},
		{"0.0.0.0/0", "trusts every address"},
		{"::/0", "trusts every address"},
	}
	for _, tt := range bad {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.HTTP.TrustedProxies = []string{"192.0.2.1", tt.in}
			if got, err := cfg.TrustedProxyPrefixes(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("TrustedProxyPrefixes() = %v, %v; want error containing %q", got, err, tt.want)
			}
			wantOneProblem(t, cfg, "http.trusted_proxies: "+fmt.Sprintf("%q", tt.in))
		})
	}
	t.Run("every bad entry reported", func(t *testing.T) {
		t.Parallel()
		cfg := Default()
		cfg.HTTP.TrustedProxies = []string{"x", "10.0.0.0/8", "y"}
		if list := problemList(t, cfg.Validate()); len(list) != 2 {
			t.Fatalf("problems = %q, want two", list)
		}
	})
}

func TestValidate_PlaintextListener(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr           string
		allowPlaintext bool
		tls            bool
		want           string // "" means valid
	}{
		{"127.0.0.1:8080", false, false, ""},
		{"[::1]:8080", false, false, ""},
		{"localhost:8080", false, false, ""},
		{"127.0.0.1:0", false, false, ""},
		{"0.0.0.0:8080", false, false, "not a loopback address"},
		{":8080", false, false, "not a loopback address"},
		{"[::]:8080", false, false, "not a loopback address"},
		{"192.0.2.10:8080", false, false, "not a loopback address"},
		{"tutela.example.com:443", false, false, "not a loopback address"},
		{"0.0.0.0:8080", true, false, ""},
		{"0.0.0.0:8443", false, true, ""},
		{"127.0.0.1", false, false, "is not host:port"},
		{"127.0.0.1:http", false, false, "invalid port"},
		{"127.0.0.1:70000", false, false, "invalid port"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/plaintext=%v/tls=%v", tt.addr, tt.allowPlaintext, tt.tls), func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.HTTP.Addr = tt.addr
			cfg.HTTP.AllowPlaintext = tt.allowPlaintext
			if tt.tls {
				cfg.TLS.CertFile = writeFile(t, "cert.pem", "cert")
				cfg.TLS.KeyFile = writeFile(t, "key.pem", "key")
			}
			if tt.want == "" {
				wantValid(t, cfg)
				return
			}
			wantOneProblem(t, cfg, tt.want)
			if strings.Contains(tt.want, "loopback") {
				// The message must tell the operator both ways out.
				wantOneProblem(t, cfg, "tls.cert_file and tls.key_file")
				wantOneProblem(t, cfg, "http.allow_plaintext")
			}
		})
	}
}

// ASVS 14.3.3, 13.4.6: /metrics shows build and process details, so it is never public. On
// loopback it may be open; elsewhere it needs a bearer token and a protected transport.
func TestValidate_MetricsListener(t *testing.T) {
	t.Parallel()
	token := "TUTELA_METRICS_TOKEN=" + strings.Repeat("k", 32)
	tests := []struct {
		name    string
		environ []string
		want    []string // nil means valid
	}{
		{"default loopback", nil, nil},
		{"off", []string{"TUTELA_METRICS_ADDR=off", "TUTELA_HTTP_ADDR=127.0.0.1:9464"}, nil},
		{"ipv6 loopback", []string{"TUTELA_METRICS_ADDR=[::1]:9464"}, nil},
		{"loopback with token", []string{"TUTELA_METRICS_ADDR=127.0.0.1:9464", token}, nil},
		{"public without token", []string{"TUTELA_METRICS_ADDR=0.0.0.0:9464", "TUTELA_HTTP_ALLOW_PLAINTEXT=true"},
			[]string{"TUTELA_METRICS_TOKEN"}},
		{"all interfaces without token or TLS", []string{"TUTELA_METRICS_ADDR=:9464"},
			[]string{"TUTELA_METRICS_TOKEN", "TLS is off"}},
		{"public with token behind a trusted network", []string{"TUTELA_METRICS_ADDR=0.0.0.0:9464", token, "TUTELA_HTTP_ALLOW_PLAINTEXT=true"}, nil},
		{"public with token, plaintext", []string{"TUTELA_METRICS_ADDR=192.0.2.7:9464", token}, []string{"TLS is off"}},
		{"short token", []string{"TUTELA_METRICS_TOKEN=short"}, []string{"at least 32 characters"}},
		{"same as the API", []string{"TUTELA_METRICS_ADDR=127.0.0.1:8080"}, []string{"must differ from http.addr"}},
		{"not host:port", []string{"TUTELA_METRICS_ADDR=9464"}, []string{"not host:port"}},
		{"bad port", []string{"TUTELA_METRICS_ADDR=127.0.0.1:99999"}, []string{"invalid port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, "", tt.environ...)
			err := cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want problems %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want a problem mentioning %q", err, w)
				}
			}
			if strings.Contains(err.Error(), strings.Repeat("k", 32)) {
				t.Errorf("the token leaks into the problems: %v", err)
			}
		})
	}
}

func TestValidate_TLSFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cert, key  func(t *testing.T) string
		wantSubstr []string
	}{
		{
			name:       "cert without key",
			cert:       func(t *testing.T) string { return writeFile(t, "cert.pem", "c") },
			key:        func(*testing.T) string { return "" },
			wantSubstr: []string{"set both tls.cert_file and tls.key_file"},
		},
		{
			name:       "missing files",
			cert:       func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.pem") },
			key:        func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.key") },
			wantSubstr: []string{"tls.cert_file:", "tls.key_file:"},
		},
		{
			name:       "directory",
			cert:       func(t *testing.T) string { return t.TempDir() },
			key:        func(t *testing.T) string { return writeFile(t, "key.pem", "k") },
			wantSubstr: []string{"is a directory"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.TLS.CertFile, cfg.TLS.KeyFile = tt.cert(t), tt.key(t)
			list := problemList(t, cfg.Validate())
			if len(list) != len(tt.wantSubstr) {
				t.Fatalf("problems = %q, want %d", list, len(tt.wantSubstr))
			}
			for i, w := range tt.wantSubstr {
				if !strings.Contains(list[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, list[i], w)
				}
			}
		})
	}
}

func TestRedacted_HidesSecrets(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "",
		"TUTELA_DATABASE_URL=postgres://app:url-pw-123@db/tutela",
		"TUTELA_MASTER_KEY=master-456")
	cfg.DatabasePassword = tutela.NewSecret("db-pw-789")

	r := cfg.Redacted()
	db := r["database"].(map[string]any)
	if db["password"] != "[redacted]" || r["master_key"] != "[redacted]" {
		t.Errorf("secrets not shown as [redacted]: password=%v master_key=%v", db["password"], r["master_key"])
	}
	if u := db["url"].(string); !strings.HasPrefix(u, "postgres://app:") || !strings.HasSuffix(u, "@db/tutela") {
		t.Errorf("database.url = %q, want it kept apart from the password", u)
	}
	if got := r["http"].(map[string]any)["read_timeout"]; got != "15s" {
		t.Errorf("http.read_timeout = %v, want \"15s\"", got)
	}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", cfg)
	for name, text := range map[string]string{
		"Redacted":  fmt.Sprint(r),
		"String":    cfg.String(),
		"%+v":       fmt.Sprintf("%+v", cfg),
		"%+v value": fmt.Sprintf("%+v", *cfg),
		"slog":      logged.String(),
	} {
		for _, s := range []string{"url-pw-123", "master-456", "db-pw-789"} {
			if strings.Contains(text, s) {
				t.Errorf("%s leaks %q: %s", name, s, text)
			}
		}
		if !strings.Contains(text, "[redacted]") {
			t.Errorf("%s does not show [redacted]: %s", name, text)
		}
	}
	if unset := Default().Redacted(); unset["master_key"] != "" {
		t.Errorf("unset master_key shown as %v, want empty", unset["master_key"])
	}
}

func TestConversions(t *testing.T) {
	t.Parallel()
	if got := (TLS{MinVersion: "1.2"}).MinTLSVersion(); got != tls.VersionTLS12 {
		t.Errorf("MinTLSVersion(1.2) = %x", got)
	}
	if got := Default().TLS.MinTLSVersion(); got != tls.VersionTLS13 {
		t.Errorf("default MinTLSVersion = %x, want TLS 1.3", got)
	}
	for level, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	} {
		if got := (Log{Level: level}).SlogLevel(); got != want {
			t.Errorf("SlogLevel(%s) = %v, want %v", level, got, want)
		}
	}
}

func TestValidate_AuthAndSMTPRules(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "",
		"TUTELA_AUTH_PASSWORD_MIN_LENGTH=6",
		"TUTELA_AUTH_PASSWORD_MAX_LENGTH=32",
		"TUTELA_AUTH_SESSION_IDLE=2h",
		"TUTELA_AUTH_SESSION_ABSOLUTE=1h",
		"TUTELA_AUTH_TOKEN_ALG=HS256",
		"TUTELA_AUTH_TOKEN_ALGS=EdDSA,HS256",
		"TUTELA_AUTH_BREACH_RANGE_URL=http://pwned.example.org",
		"TUTELA_AUTH_HASH_MEMORY_KIB=1024",
		"TUTELA_SMTP_ADDR=mail.example.org:587",
		"TUTELA_SMTP_TLS=maybe",
	)
	err := cfg.Validate()
	var p *Problems
	if !errors.As(err, &p) {
		t.Fatalf("Validate = %v", err)
	}
	text := strings.Join(p.List, "\n")
	for _, want := range []string{"auth.password.min_length", "must allow at least 64", "auth.session_absolute",
		"auth.token_alg", `auth.token_algs: "HS256"`, "auth.breach.range_url", "auth.hash.memory_kib", "smtp.from", "smtp.tls"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing problem %q in:\n%s", want, text)
		}
	}
}

func TestLoad_SMTPPasswordOnlyFromEnvironment(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "", "TUTELA_SMTP_PASSWORD=relay-secret-123")
	if cfg.SMTPPassword.Reveal() != "relay-secret-123" || strings.Contains(cfg.String(), "relay-secret-123") {
		t.Fatalf("smtp password not loaded or printed: %s", cfg)
	}
	path := filepath.Join(t.TempDir(), "tutela.yaml")
	if err := os.WriteFile(path, []byte("smtp:\n  password: in-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "TUTELA_SMTP_PASSWORD") || strings.Contains(err.Error(), "in-file-secret") {
		t.Fatalf("secret in file: %v", err)
	}
}

func TestDefault_AdminRolesRequireMFA(t *testing.T) {
	t.Parallel()
	roles := Default().Auth.MFARoles
	if !slices.Contains(roles, "super_admin") || !slices.Contains(roles, "program_admin") {
		t.Fatalf("default auth.mfa_roles %v must cover every admin role", roles)
	}
}

func TestValidate_VaultRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env  []string
		want string // "" = valid
	}{
		{nil, ""},
		{[]string{"TUTELA_VAULT_KEK_URI=local:"}, ""},
		{[]string{"TUTELA_VAULT_KEK_URI=gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
			"TUTELA_VAULT_KMS_ENDPOINT=https://kms.internal/"}, ""},
		{[]string{"TUTELA_VAULT_KEK_URI=aws-kms://arn:aws:kms:eu-west-1:1:key/k", "TUTELA_VAULT_KMS_ENDPOINT=http://127.0.0.1:4566"}, ""},
		{[]string{"TUTELA_VAULT_KEK_URI=aws-kms://arn:aws:kms:eu-west-1:1:key/k", "TUTELA_VAULT_KMS_ENDPOINT=http://kms.example.org"}, "vault.kms_endpoint: must be an https URL"},
		{[]string{"TUTELA_VAULT_KMS_ENDPOINT=https://kms.internal/"}, "vault.kms_endpoint: only for"},
		{[]string{"TUTELA_VAULT_KEK_URI=rot13:"}, "vault.kek_uri: unknown KEK URI scheme"},
		{[]string{"TUTELA_VAULT_KEK_URI=gcp-kms://projects/p"}, "vault.kek_uri: gcp-kms URI must be"},
		{[]string{"TUTELA_VAULT_KEK_URI=pkcs11:token=t;object=k"}, "vault.pkcs11_module"},
		{[]string{"TUTELA_VAULT_KEK_URI=pkcs11:token=t;object=k", "TUTELA_VAULT_PKCS11_MODULE=/lib/hsm.so"}, "TUTELA_HSM_PIN"},
		{[]string{"TUTELA_VAULT_KEK_URI=pkcs11:token=t;object=k", "TUTELA_VAULT_PKCS11_MODULE=/lib/hsm.so", "TUTELA_HSM_PIN=1234"}, ""},
		{[]string{"TUTELA_VAULT_KEK_URI=pkcs11:token=t;object=k;pin-value=9876"}, "must not carry the PIN"},
		{[]string{"TUTELA_VAULT_CACHE_TTL=48h"}, "vault.cache_ttl"},
		{[]string{"TUTELA_VAULT_ROTATE_EVERY=30s"}, "vault.rotate_every"},
		{[]string{"TUTELA_VAULT_ROTATE_EVERY=2160h"}, ""},
		{[]string{"TUTELA_VAULT_KEK_URI=hcvault://vault.internal:8200/transit/keys/k"}, "TUTELA_VAULT_TOKEN"},
		{[]string{"TUTELA_VAULT_KEK_URI=hcvault://vault.internal:8200/transit/keys/k", "TUTELA_VAULT_TOKEN=hvs.x"}, ""},
	}
	for _, tc := range cases {
		err := mustLoad(t, "", tc.env...).Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err = %v, want %q", tc.env, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "9876"):
			t.Errorf("%v: error echoes the PIN: %v", tc.env, err)
		}
	}
}

func TestLoad_VaultSecretsOnlyFromEnvironment(t *testing.T) {
	t.Parallel()
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte("hsm-pin-4711\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustLoad(t, "", "TUTELA_HSM_PIN_FILE="+pinFile, "TUTELA_VAULT_TOKEN=hvs.token-0815")
	if cfg.HSMPIN.Reveal() != "hsm-pin-4711" || cfg.VaultToken.Reveal() != "hvs.token-0815" {
		t.Fatalf("secrets not loaded: pin %d bytes, token %d bytes", len(cfg.HSMPIN.Reveal()), len(cfg.VaultToken.Reveal()))
	}
	if out := cfg.String(); strings.Contains(out, "4711") || strings.Contains(out, "0815") ||
		!strings.Contains(out, "hsm_pin: '[redacted]'") || !strings.Contains(out, "token: '[redacted]'") {
		t.Fatalf("printed config:\n%s", out)
	}
	path := filepath.Join(t.TempDir(), "tutela.yaml")
	if err := os.WriteFile(path, []byte("vault:\n  token: in-file-token\n  hsm_pin: \"1234\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "TUTELA_VAULT_TOKEN") || !strings.Contains(err.Error(), "TUTELA_HSM_PIN") ||
		strings.Contains(err.Error(), "in-file-token") {
		t.Fatalf("secret in file: %v", err)
	}
}

func TestServedOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	for _, tc := range []struct {
		env  []string
		want bool
	}{
		{nil, false}, // 127.0.0.1:8080, development
		{[]string{"TUTELA_HTTP_ADDR=0.0.0.0:8080", "TUTELA_HTTP_ALLOW_PLAINTEXT=true"}, true}, // behind a TLS proxy
		{[]string{"TUTELA_HTTP_ADDR=127.0.0.1:8080", "TUTELA_HTTP_ALLOW_PLAINTEXT=true"}, false},
		{[]string{"TUTELA_TLS_CERT_FILE=" + cert, "TUTELA_TLS_KEY_FILE=" + key}, true},
	} {
		if got := mustLoad(t, "", tc.env...).ServedOverTLS(); got != tc.want {
			t.Errorf("%v: ServedOverTLS = %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestValidate_Resources(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		list string
		want string
	}{
		{"https://records.example.org", ""},
		{"https://records.example.org/api,http://127.0.0.1:9000", ""},
		{"http://records.example.org", "must be an absolute https URI"},
		{"records.example.org", "must be an absolute https URI"},
		{"https://records.example.org#x", "must be an absolute https URI"},
		{"https://user@records.example.org", "must be an absolute https URI"},
		{"https://a.example.org,https://a.example.org", "listed twice"},
	} {
		err := mustLoad(t, "", "TUTELA_AUTH_RESOURCES="+tc.list).Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err = %v, want %q", tc.list, err, tc.want)
		}
	}
}

func TestValidate_DSRPolicy(t *testing.T) {
	c := Default()
	pol, problems := c.DSRPolicy()
	if len(problems) > 0 || pol.Periods["gdpr"] != 30 || pol.Periods["ndpa"] != 30 || pol.Periods["popia"] != 30 ||
		pol.DefaultJurisdiction != "gdpr" || len(pol.Reminders) != 2 || pol.Reminders[0] != 7*24*time.Hour ||
		pol.DownloadTTL != time.Hour {
		t.Fatalf("default policy = %+v, %v", pol, problems)
	}
	c.DSR.Periods = []string{"kdpa=21", "gdpr=0", "Bad=5", "ndpa"}
	c.DSR.DefaultJurisdiction = "nowhere"
	c.DSR.Reminders = []string{"7x"}
	c.DSR.DownloadTTL = 73 * time.Hour
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid dsr settings accepted")
	}
	// ParseDSRPeriods stops at the malformed entry; fix it and every other problem is reported.
	c.DSR.Periods = []string{"kdpa=21", "gdpr=0", "Bad=5"}
	err = c.Validate()
	for _, want := range []string{"gdpr: period", `jurisdiction "Bad"`, `default jurisdiction "nowhere"`, "dsr.reminders", "download link lifetime"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem naming %q", err, want)
		}
	}
	c = Default()
	c.DSR.Periods = []string{"kdpa=21"}
	c.DSR.DefaultJurisdiction = "kdpa"
	if pol, problems := c.DSRPolicy(); len(problems) > 0 || pol.Periods["kdpa"] != 21 || pol.Periods["gdpr"] != 30 {
		t.Fatalf("added jurisdiction: %+v, %v", pol, problems)
	}
}

// Without smtp.addr nothing is e-mailed: a warning says the breach-clock reminders are not
// e-mailed to their owners and e-mail alerts cannot be used, and whether a monitoring webhook or
// syslog sink carries the reminders instead. With SMTP set, no such warning.
func TestWarnings_NoSMTPSaysRemindersAreNotEmailed(t *testing.T) {
	t.Parallel()
	mail := func(c *Config) []string {
		var out []string
		for _, w := range c.Warnings() {
			if strings.HasPrefix(w, "smtp.addr is not set") {
				out = append(out, w)
			}
		}
		return out
	}
	d := Default()
	w := mail(d)
	if len(w) != 1 || !strings.Contains(w[0], "breach-clock reminders") || !strings.Contains(w[0], "monitoring.sinks.email") ||
		!strings.Contains(w[0], "no monitoring webhook or syslog sink") {
		t.Fatalf("no SMTP, no sink: %q", w)
	}
	d.Monitoring.Sinks.Syslog.Addr = "siem.example.org:6514"
	if w := mail(d); len(w) != 1 || !strings.Contains(w[0], "incident_reminder and incident_overdue") ||
		strings.Contains(w[0], "no monitoring webhook") {
		t.Fatalf("no SMTP, a syslog sink: %q", w)
	}
	d.SMTP.Addr = "smtp.example.org:587"
	if w := mail(d); len(w) != 0 {
		t.Fatalf("SMTP set: %q", w)
	}
}
