// Package config loads Tutela's configuration in three layers, each overriding the one before:
// built-in defaults, a YAML file (tutela.yaml), and TUTELA_* environment variables.
//
// Secrets (the database password, the master key) come only from the environment, either as a
// variable or as a file named by its _FILE variant (the Docker/Kubernetes secrets convention). A
// config file holding a secret is rejected, so tutela.yaml can be committed, shared in a bug report
// or printed by `tutela config check` without leaking credentials.
//
// Load parses and reports malformed input; Validate checks the rules and reports every problem at
// once, so an operator fixes a config in one pass instead of one error per restart.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"tutela"
	"tutela/vault"
)

// Config is the effective configuration. Each section is a nested struct whose koanf tags give
// its YAML keys; a new section needs a struct, a field here, its rows in envVars, and its checks
// in Validate.
type Config struct {
	DataDir   string    `koanf:"data_dir"`
	HTTP      HTTP      `koanf:"http"`
	TLS       TLS       `koanf:"tls"`
	Database  Database  `koanf:"database"`
	Log       Log       `koanf:"log"`
	Auth      Auth      `koanf:"auth"`
	SMTP      SMTP      `koanf:"smtp"`
	Audit     Audit     `koanf:"audit"`
	Retention Retention `koanf:"retention"`
	Vault     Vault     `koanf:"vault"`
	Metrics   Metrics   `koanf:"metrics"`
	Privacy   Privacy   `koanf:"privacy"`
	Residency Residency `koanf:"residency"`
	DSR       DSR       `koanf:"dsr"`
	AI        AI        `koanf:"ai"`
	Files     Files     `koanf:"files"`
	Tracing   Tracing   `koanf:"tracing"`
	// Monitoring: security alerting (config/monitoring.go).
	Monitoring Monitoring `koanf:"monitoring"`

	// Secrets are never decoded from a koanf layer: Load reads them from the environment only.
	DatabasePassword tutela.Secret `koanf:"-"` // TUTELA_DATABASE_PASSWORD[_FILE]
	MasterKey        tutela.Secret `koanf:"-"` // TUTELA_MASTER_KEY[_FILE]
	SMTPPassword     tutela.Secret `koanf:"-"` // TUTELA_SMTP_PASSWORD[_FILE]
	HSMPIN           tutela.Secret `koanf:"-"` // TUTELA_HSM_PIN[_FILE]: PKCS#11 user PIN
	VaultToken       tutela.Secret `koanf:"-"` // TUTELA_VAULT_TOKEN[_FILE]: HashiCorp Vault token (hcvault:// KEK)
	MetricsToken     tutela.Secret `koanf:"-"` // TUTELA_METRICS_TOKEN[_FILE]: bearer token for /metrics
	FilesS3SecretKey tutela.Secret `koanf:"-"` // TUTELA_FILES_S3_SECRET_ACCESS_KEY[_FILE]: the files bucket's secret key
	TracingHeaders   tutela.Secret `koanf:"-"` // TUTELA_TRACING_HEADERS[_FILE]: name=value,… sent to the OTLP collector
	// MonitoringWebhookSecret signs alerts to monitoring.sinks.webhook.url.
	MonitoringWebhookSecret tutela.Secret `koanf:"-"` // TUTELA_MONITORING_SINKS_WEBHOOK_SECRET[_FILE]
	// ShipSecrets sign the batches of audit.ship's https destinations, by destination name:
	// TUTELA_AUDIT_SHIP_SECRET_<NAME>[_FILE].
	ShipSecrets map[string]tutela.Secret `koanf:"-"`

	// loadProblems are rule violations found while loading (a secret in the file, a secret set
	// twice, an unreadable secret file). They are not parse errors, so Load leaves them for
	// Validate to report alongside every other problem.
	loadProblems []string
	// unknownEnv are TUTELA_* variables that name no setting (a typo such as
	// TUTELA_AUTH_SESION_IDLE would otherwise leave the default in force without a word).
	unknownEnv []string
}

// HTTP configures the API listener.
type HTTP struct {
	Addr string `koanf:"addr"`
	// AllowPlaintext permits plain HTTP on a non-loopback address, for deployments where a
	// TLS-terminating proxy sits in front. Without it such a listener is refused, so credentials
	// and session tokens never cross a network in clear text by accident.
	AllowPlaintext bool `koanf:"allow_plaintext"`
	// TrustedProxies lists the CIDRs (or single IPs) whose X-Forwarded-For is believed. Use
	// TrustedProxyPrefixes for the parsed form.
	TrustedProxies    []string      `koanf:"trusted_proxies"`
	BodyLimit         int64         `koanf:"body_limit"` // bytes
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	ReadTimeout       time.Duration `koanf:"read_timeout"`
	WriteTimeout      time.Duration `koanf:"write_timeout"`
	IdleTimeout       time.Duration `koanf:"idle_timeout"`
	ShutdownTimeout   time.Duration `koanf:"shutdown_timeout"`
	RateLimit         RateLimit     `koanf:"rate_limit"`
	// RedirectAddr, when set (e.g. ":80"), is a plain-HTTP listener that answers every request
	// with 308 to the https origin of auth.issuer, for deployments that terminate TLS in Tutela
	// without a proxy in front ("off" or empty: none). See redirect.go.
	RedirectAddr string `koanf:"redirect_addr"`
}

// RateLimit is the per-client token bucket. It cannot be switched off: RPS must be > 0 and Burst
// >= 1, because the limiter is the first defence against credential stuffing and request floods.
// A deployment that limits upstream can set a high RPS.
type RateLimit struct {
	RPS   float64 `koanf:"rps"`
	Burst int     `koanf:"burst"`
	// ShareEvery, on PostgreSQL, makes the limit hold across every node on the database: each
	// node flushes its per-client counts this often and reads back everyone's (default 200ms;
	// 0: each node limits alone). SQLite, one node, always limits in memory.
	ShareEvery time.Duration `koanf:"share_every"`
}

// TLS configures serving HTTPS directly. Set both files or neither.
type TLS struct {
	CertFile   string `koanf:"cert_file"`
	KeyFile    string `koanf:"key_file"`
	MinVersion string `koanf:"min_version"` // "1.3" or "1.2"
}

// Database selects the store: an empty URL means embedded SQLite under DataDir; otherwise a
// postgres:// or postgresql:// URL.
type Database struct {
	URL string `koanf:"url"`
	// RequireTLS applies the TLS rule below to a loopback or Unix-socket database too. A
	// database on any other host always needs sslmode=verify-full (ASVS 12.3.1, 12.3.2).
	RequireTLS bool `koanf:"require_tls"`
	// AllowUnverifiedTLS also accepts sslmode=require or verify-ca (encrypted, but the server's
	// name, or its certificate, is not checked): a deviation for private networks without a CA.
	AllowUnverifiedTLS bool `koanf:"allow_unverified_tls"`
	MaxOpenConns       int  `koanf:"max_open_conns"`
	// MaxIdleConns is how many pool connections stay open while unused; 0 (the default)
	// keeps all of them (MaxOpenConns): closing the ones past a lower limit after each burst
	// makes the next burst reconnect and prepare its statements again.
	MaxIdleConns    int           `koanf:"max_idle_conns"`
	ConnMaxLifetime time.Duration `koanf:"conn_max_lifetime"`
	// RequestTimeout bounds the database time of one API request (and a PostgreSQL statement,
	// and a new connection), so a database that stops answering makes requests fail with 503
	// in seconds instead of hanging until the client gives up.
	RequestTimeout time.Duration `koanf:"request_timeout"`
	// SQLiteSynchronous is the embedded SQLite store's durability at commit: "full" (default:
	// the write-ahead log is fsynced at every commit, so an acknowledged transaction, its audit
	// events included, survives a power loss) or "normal" (fsynced at checkpoints: safe against
	// a crashed process, not against power loss; a deviation). PostgreSQL ignores it: its own
	// synchronous_commit decides. docs/durability.md.
	SQLiteSynchronous string `koanf:"sqlite_synchronous"`
}

// Metrics configures the Prometheus endpoint. It has its own listener, apart from the API, so
// the process and build details it shows are not public (ASVS 13.4.6, 14.3.3); Addr "off"
// serves no metrics. Off loopback it needs TUTELA_METRICS_TOKEN as a bearer token.
type Metrics struct {
	Addr string `koanf:"addr"` // "off" (or empty in the file): no metrics listener
}

// Off reports that no metrics listener is wanted. "off" exists because an empty environment
// variable counts as unset.
func (m Metrics) Off() bool { return m.Addr == "" || m.Addr == "off" }

// String prints the section with any password in URL masked, so formatting a Config value
// (%v, %+v) cannot leak a password that came in through TUTELA_DATABASE_URL.
func (d Database) String() string {
	type plain Database // drops this method, avoiding recursion
	d.URL = redactURL(d.URL)
	return fmt.Sprintf("%+v", plain(d))
}

// Log configures the process logger.
type Log struct {
	Level  string `koanf:"level"`  // debug, info, warn, error
	Format string `koanf:"format"` // json, text
}

// Auth configures sign-in, sessions and tokens.
type Auth struct {
	// Issuer is the access tokens' "iss" and the base of links in e-mails; empty means the
	// listener's own URL (fine on one node, set it behind a load balancer).
	Issuer          string        `koanf:"issuer"`
	SessionIdle     time.Duration `koanf:"session_idle"`
	SessionAbsolute time.Duration `koanf:"session_absolute"`
	AccessTokenTTL  time.Duration `koanf:"access_token_ttl"`
	TokenAlg        string        `koanf:"token_alg"`      // EdDSA or ES256
	KeyRotation     time.Duration `koanf:"key_rotation"`   // signing-key lifetime
	ResetCodeTTL    time.Duration `koanf:"reset_code_ttl"` // e-mailed reset code lifetime (ASVS 5.0 2.7.2)
	Password        PasswordRules `koanf:"password"`
	Hash            HashParams    `koanf:"hash"`
	Breach          Breach        `koanf:"breach"`
	// TokenAlgs are the signing algorithms kept in rotation, each with its own keys (EdDSA,
	// ES256, RS256; default EdDSA and ES256). TokenAlg, which signs access tokens, is always
	// kept. Add RS256 for relying parties that verify only RSA ID tokens (3072-bit keys).
	TokenAlgs []string `koanf:"token_algs"`
	// MFARoles are the role keys (built-in or custom) whose holders must use a second factor.
	MFARoles []string `koanf:"mfa_roles"`
	// Resources are the resource servers a token may be asked for (RFC 8707 resource
	// indicators): absolute https URIs (http only on loopback), each a token audience of its
	// own, so a token for one is refused by another and by Tutela's own API.
	Resources []string `koanf:"resources"`
	// MFAAllUsers requires a second factor of every user (default true, ASVS 6.3.2 Level 2).
	// Turning it off leaves MFA to mfa_roles and each tenant's mfa_required_all: a deviation the
	// operator must document.
	MFAAllUsers bool `koanf:"mfa_all_users"`
}

// PasswordRules is the server-wide password policy (NIST SP 800-63B).
type PasswordRules struct {
	MinLength int `koanf:"min_length"`
	MaxLength int `koanf:"max_length"`
	MinScore  int `koanf:"min_score"` // zxcvbn 0-4
	// History is how many previous passwords may not be reused; 0 (the default) turns the rule
	// off, as ASVS 4.0.3 2.1.10 and NIST SP 800-63B advise against such rules. The current
	// password is never accepted as the new one.
	History int `koanf:"history"`
}

// HashParams are the argon2id parameters; changing them rehashes at each user's next sign-in.
type HashParams struct {
	MemoryKiB int `koanf:"memory_kib"`
	Time      int `koanf:"time"`
	Threads   int `koanf:"threads"`
}

// Breach configures the breached-password check: the built-in list of the most common breached
// passwords (on by default, offline), plus a HaveIBeenPwned-compatible range API and/or an
// offline index made by `tutela breach import`. A password any source knows is refused.
type Breach struct {
	// BuiltinList checks the embedded list of the 100,000 most common breached passwords
	// (default true, ASVS 6.2.12). Turning it off with no other source leaves no breach check.
	BuiltinList  bool   `koanf:"builtin_list"`
	RangeURL     string `koanf:"range_url"`
	IndexFile    string `koanf:"index_file"`
	FailOpen     bool   `koanf:"fail_open"`      // accept passwords when the API is down
	CheckAtLogin bool   `koanf:"check_at_login"` // a breached password must then be changed
}

// Audit configures the tamper-evident log.
type Audit struct {
	// CheckpointDir receives every signed checkpoint; keep it synced off the database host.
	// Empty means <data_dir>/checkpoints.
	CheckpointDir      string        `koanf:"checkpoint_dir"`
	CheckpointInterval time.Duration `koanf:"checkpoint_interval"`
	// CheckpointKeepHourly thins CheckpointDir: the first and the latest checkpoint, the last of
	// each hour for this long, the last of each day before (audit.ThinCheckpointDir). 0 keeps
	// every file.
	CheckpointKeepHourly time.Duration `koanf:"checkpoint_keep_hourly"`
	// CheckpointURL, when set, receives each new checkpoint by POST (text/plain), e.g. a
	// witness or an archive outside the operator's control.
	CheckpointURL string        `koanf:"checkpoint_url"`
	Retention     time.Duration `koanf:"retention"` // default for `tutela audit prune`
	// Ship lists where the log is shipped as it is sequenced, "name=URL" each (config/auditship.go).
	Ship []string `koanf:"ship"`
}

// Privacy configures the privacy vault (issue 13).
type Privacy struct {
	// ErasureLedgerDir receives the published erasure ledger that `backup restore` re-applies
	// (docs/backup.md, "Erasure reaches backups"); keep it synced off the database host.
	// Empty means <data_dir>/erasures.
	ErasureLedgerDir string `koanf:"erasure_ledger_dir"`
	// UnmergeWindow is how long an identity merge can be undone (docs/merge.md). Until then the
	// merged subject's data stays under its own key, and what the merge replaced is kept: a
	// longer window keeps more of a record nobody reads. Between 1h and 365 days.
	UnmergeWindow time.Duration `koanf:"unmerge_window"`
}

// Bounds of privacy.unmerge_window.
const (
	MinUnmergeWindow = time.Hour
	MaxUnmergeWindow = 365 * 24 * time.Hour
)

// Retention bounds how long personal and credential data outside the audit log is kept (ASVS
// 5.0 14.2.4, 14.2.7); every node sweeps it hourly (sqlstore.DB.PurgeExpired). Each duration
// must be set: an unbounded retention is not an option.
type Retention struct {
	LoginHistory   time.Duration `koanf:"login_history"`   // sign-in attempts (IP, user agent)
	SecurityEvents time.Duration `koanf:"security_events"` // lockouts, resets, revocations (IP)
	// EndedSessions: revoked or expired sessions (IP, user agent) with their refresh tokens,
	// counted from when the session ended.
	EndedSessions time.Duration `koanf:"ended_sessions"`
	// UsedTokens: used or expired one-time tokens (setup, reset, MFA sign-in challenges),
	// expired WebAuthn ceremonies and client-assertion jti records.
	UsedTokens time.Duration `koanf:"used_tokens"`
	// DeadJobs: jobs of the queue that gave up, counted from their death (docs/jobs.md).
	DeadJobs time.Duration `koanf:"dead_jobs"`
}

// Vault configures envelope encryption (docs/keys.md): where the key-encryption key lives and how
// long unwrapped keysets stay in memory.
type Vault struct {
	// KEKURI: local: (the data-dir master key), pkcs11:token=T;object=L, aws-kms://arn…,
	// gcp-kms://projects/…, hcvault://HOST/MOUNT/keys/NAME. Empty means local:.
	KEKURI       string `koanf:"kek_uri"`
	PKCS11Module string `koanf:"pkcs11_module"` // the HSM's PKCS#11 library, for a pkcs11: KEK
	// KMSEndpoint replaces the cloud KMS endpoint of an aws-kms:// or gcp-kms:// KEK (a VPC
	// endpoint or Private Service Connect).
	KMSEndpoint string `koanf:"kms_endpoint"`
	// HCVaultCAFile is a PEM bundle trusted for HashiCorp Vault's HTTPS; empty = system roots.
	HCVaultCAFile string        `koanf:"hcvault_ca_file"`
	CacheTTL      time.Duration `koanf:"cache_ttl"`
	// RotateEvery rotates keysets whose primary key is older than this (0 = off).
	RotateEvery time.Duration `koanf:"rotate_every"`
}

// SMTP configures outgoing e-mail (password reset links). Empty Addr disables e-mail.
type SMTP struct {
	Addr     string `koanf:"addr"`
	From     string `koanf:"from"`
	Username string `koanf:"username"`
	TLS      string `koanf:"tls"` // starttls (default), implicit, none (loopback only)
}

// Default returns the built-in defaults. They pass Validate.
func Default() *Config {
	return &Config{
		DataDir: "./tutela-data",
		HTTP: HTTP{
			Addr:              "127.0.0.1:8080",
			TrustedProxies:    []string{},
			BodyLimit:         1 << 20,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   20 * time.Second,
			RateLimit:         RateLimit{RPS: 20, Burst: 40, ShareEvery: 200 * time.Millisecond},
		},
		TLS: TLS{MinVersion: "1.3"},
		Database: Database{MaxOpenConns: 20, ConnMaxLifetime: 30 * time.Minute, RequestTimeout: 5 * time.Second,
			SQLiteSynchronous: "full"},
		Log: Log{Level: "info", Format: "json"},
		Auth: Auth{
			SessionIdle: 15 * time.Minute, SessionAbsolute: 12 * time.Hour, AccessTokenTTL: 5 * time.Minute,
			TokenAlg: "EdDSA", TokenAlgs: []string{"EdDSA", "ES256"}, KeyRotation: 30 * 24 * time.Hour, ResetCodeTTL: 10 * time.Minute,
			Password: PasswordRules{MinLength: 12, MaxLength: 128, MinScore: 3, History: 0},
			Hash:     HashParams{MemoryKiB: 19456, Time: 2, Threads: 1},
			Breach:   Breach{BuiltinList: true},
			MFARoles: []string{"super_admin", "program_admin"}, MFAAllUsers: true,
		},
		SMTP:  SMTP{TLS: "starttls"},
		Audit: Audit{CheckpointInterval: time.Second, CheckpointKeepHourly: 30 * 24 * time.Hour, Retention: 2 * 365 * 24 * time.Hour},
		Retention: Retention{LoginHistory: 90 * 24 * time.Hour, SecurityEvents: 365 * 24 * time.Hour,
			EndedSessions: 30 * 24 * time.Hour, UsedTokens: 24 * time.Hour, DeadJobs: 30 * 24 * time.Hour},
		Vault:   Vault{CacheTTL: 5 * time.Minute},
		Privacy: Privacy{UnmergeWindow: 30 * 24 * time.Hour},
		// 9464 is the Prometheus exporter port OpenTelemetry uses; 9090 is Prometheus's own.
		Metrics: Metrics{Addr: "127.0.0.1:9464"},
		DSR:     defaultDSR(),
		Files:   defaultFiles(),
		Tracing: Tracing{SampleRatio: 1},

		Monitoring: defaultMonitoring(),
	}
}

type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindFloat
	kindDuration
	kindList // comma-separated in the environment
)

// envVars maps every environment variable to its key. It is an explicit table, not a rule that
// turns underscores into dots, because keys contain underscores (http.allow_plaintext) and a
// guessed mapping would silently drop such settings. TestEnvVars_CoverEveryKey keeps it in step
// with the structs. It is also the list of keys a YAML file may contain.
var envVars = []struct {
	name string
	key  string
	kind kind
}{
	{"TUTELA_DATA_DIR", "data_dir", kindString},
	{"TUTELA_HTTP_ADDR", "http.addr", kindString},
	{"TUTELA_HTTP_ALLOW_PLAINTEXT", "http.allow_plaintext", kindBool},
	{"TUTELA_HTTP_REDIRECT_ADDR", "http.redirect_addr", kindString},
	{"TUTELA_HTTP_TRUSTED_PROXIES", "http.trusted_proxies", kindList},
	{"TUTELA_HTTP_BODY_LIMIT", "http.body_limit", kindInt},
	{"TUTELA_HTTP_READ_HEADER_TIMEOUT", "http.read_header_timeout", kindDuration},
	{"TUTELA_HTTP_READ_TIMEOUT", "http.read_timeout", kindDuration},
	{"TUTELA_HTTP_WRITE_TIMEOUT", "http.write_timeout", kindDuration},
	{"TUTELA_HTTP_IDLE_TIMEOUT", "http.idle_timeout", kindDuration},
	{"TUTELA_HTTP_SHUTDOWN_TIMEOUT", "http.shutdown_timeout", kindDuration},
	{"TUTELA_HTTP_RATE_LIMIT_RPS", "http.rate_limit.rps", kindFloat},
	{"TUTELA_HTTP_RATE_LIMIT_BURST", "http.rate_limit.burst", kindInt},
	{"TUTELA_HTTP_RATE_LIMIT_SHARE_EVERY", "http.rate_limit.share_every", kindDuration},
	{"TUTELA_TLS_CERT_FILE", "tls.cert_file", kindString},
	{"TUTELA_TLS_KEY_FILE", "tls.key_file", kindString},
	{"TUTELA_TLS_MIN_VERSION", "tls.min_version", kindString},
	{"TUTELA_DATABASE_URL", "database.url", kindString},
	{"TUTELA_DATABASE_REQUIRE_TLS", "database.require_tls", kindBool},
	{"TUTELA_DATABASE_ALLOW_UNVERIFIED_TLS", "database.allow_unverified_tls", kindBool},
	{"TUTELA_DATABASE_MAX_OPEN_CONNS", "database.max_open_conns", kindInt},
	{"TUTELA_DATABASE_MAX_IDLE_CONNS", "database.max_idle_conns", kindInt},
	{"TUTELA_DATABASE_CONN_MAX_LIFETIME", "database.conn_max_lifetime", kindDuration},
	{"TUTELA_DATABASE_REQUEST_TIMEOUT", "database.request_timeout", kindDuration},
	{"TUTELA_DATABASE_SQLITE_SYNCHRONOUS", "database.sqlite_synchronous", kindString},
	{"TUTELA_LOG_LEVEL", "log.level", kindString},
	{"TUTELA_LOG_FORMAT", "log.format", kindString},
	{"TUTELA_AUTH_ISSUER", "auth.issuer", kindString},
	{"TUTELA_AUTH_SESSION_IDLE", "auth.session_idle", kindDuration},
	{"TUTELA_AUTH_SESSION_ABSOLUTE", "auth.session_absolute", kindDuration},
	{"TUTELA_AUTH_ACCESS_TOKEN_TTL", "auth.access_token_ttl", kindDuration},
	{"TUTELA_AUTH_TOKEN_ALG", "auth.token_alg", kindString},
	{"TUTELA_AUTH_TOKEN_ALGS", "auth.token_algs", kindList},
	{"TUTELA_AUTH_KEY_ROTATION", "auth.key_rotation", kindDuration},
	{"TUTELA_AUTH_RESET_CODE_TTL", "auth.reset_code_ttl", kindDuration},
	{"TUTELA_AUTH_PASSWORD_MIN_LENGTH", "auth.password.min_length", kindInt},
	{"TUTELA_AUTH_PASSWORD_MAX_LENGTH", "auth.password.max_length", kindInt},
	{"TUTELA_AUTH_PASSWORD_MIN_SCORE", "auth.password.min_score", kindInt},
	{"TUTELA_AUTH_PASSWORD_HISTORY", "auth.password.history", kindInt},
	{"TUTELA_AUTH_HASH_MEMORY_KIB", "auth.hash.memory_kib", kindInt},
	{"TUTELA_AUTH_HASH_TIME", "auth.hash.time", kindInt},
	{"TUTELA_AUTH_HASH_THREADS", "auth.hash.threads", kindInt},
	{"TUTELA_AUTH_BREACH_BUILTIN_LIST", "auth.breach.builtin_list", kindBool},
	{"TUTELA_AUTH_BREACH_RANGE_URL", "auth.breach.range_url", kindString},
	{"TUTELA_AUTH_BREACH_INDEX_FILE", "auth.breach.index_file", kindString},
	{"TUTELA_AUTH_BREACH_FAIL_OPEN", "auth.breach.fail_open", kindBool},
	{"TUTELA_AUTH_BREACH_CHECK_AT_LOGIN", "auth.breach.check_at_login", kindBool},
	{"TUTELA_AUTH_MFA_ROLES", "auth.mfa_roles", kindList},
	{"TUTELA_AUTH_MFA_ALL_USERS", "auth.mfa_all_users", kindBool},
	{"TUTELA_AUTH_RESOURCES", "auth.resources", kindList},
	{"TUTELA_AUDIT_CHECKPOINT_DIR", "audit.checkpoint_dir", kindString},
	{"TUTELA_AUDIT_CHECKPOINT_INTERVAL", "audit.checkpoint_interval", kindDuration},
	{"TUTELA_AUDIT_CHECKPOINT_KEEP_HOURLY", "audit.checkpoint_keep_hourly", kindDuration},
	{"TUTELA_AUDIT_CHECKPOINT_URL", "audit.checkpoint_url", kindString},
	{"TUTELA_AUDIT_RETENTION", "audit.retention", kindDuration},
	{"TUTELA_AUDIT_SHIP", "audit.ship", kindList},
	{"TUTELA_PRIVACY_ERASURE_LEDGER_DIR", "privacy.erasure_ledger_dir", kindString},
	{"TUTELA_PRIVACY_UNMERGE_WINDOW", "privacy.unmerge_window", kindDuration},
	{"TUTELA_DSR_PERIODS", "dsr.periods", kindList},
	{"TUTELA_DSR_DEFAULT_JURISDICTION", "dsr.default_jurisdiction", kindString},
	{"TUTELA_DSR_REMINDERS", "dsr.reminders", kindList},
	{"TUTELA_DSR_DOWNLOAD_TTL", "dsr.download_ttl", kindDuration},
	{"TUTELA_DSR_MAX_EXTENSION_DAYS", "dsr.max_extension_days", kindInt},
	{"TUTELA_AI_PRIVATE_NETWORKS", "ai.private_networks", kindList},
	{"TUTELA_FILES_BACKEND", "files.backend", kindString},
	{"TUTELA_FILES_DIR", "files.dir", kindString},
	{"TUTELA_FILES_S3_BUCKET", "files.s3.bucket", kindString},
	{"TUTELA_FILES_S3_PREFIX", "files.s3.prefix", kindString},
	{"TUTELA_FILES_S3_REGION", "files.s3.region", kindString},
	{"TUTELA_FILES_S3_ENDPOINT", "files.s3.endpoint", kindString},
	{"TUTELA_FILES_S3_PATH_STYLE", "files.s3.path_style", kindBool},
	{"TUTELA_FILES_S3_ACCESS_KEY_ID", "files.s3.access_key_id", kindString},
	{"TUTELA_FILES_CLAMD", "files.clamd", kindString},
	{"TUTELA_FILES_SCAN_TIMEOUT", "files.scan_timeout", kindDuration},
	{"TUTELA_FILES_SCAN_MAX_SIZE", "files.scan_max_size", kindInt},
	{"TUTELA_FILES_MALWARE_SCAN", "files.malware_scan", kindBool},
	{"TUTELA_FILES_TRANSFER_TIMEOUT", "files.transfer_timeout", kindDuration},
	{"TUTELA_FILES_MAX_CONCURRENT_UPLOADS", "files.max_concurrent_uploads", kindInt},
	{"TUTELA_RETENTION_LOGIN_HISTORY", "retention.login_history", kindDuration},
	{"TUTELA_RETENTION_SECURITY_EVENTS", "retention.security_events", kindDuration},
	{"TUTELA_RETENTION_ENDED_SESSIONS", "retention.ended_sessions", kindDuration},
	{"TUTELA_RETENTION_USED_TOKENS", "retention.used_tokens", kindDuration},
	{"TUTELA_RETENTION_DEAD_JOBS", "retention.dead_jobs", kindDuration},
	{"TUTELA_SMTP_ADDR", "smtp.addr", kindString},
	{"TUTELA_SMTP_FROM", "smtp.from", kindString},
	{"TUTELA_SMTP_USERNAME", "smtp.username", kindString},
	{"TUTELA_SMTP_TLS", "smtp.tls", kindString},
	{"TUTELA_VAULT_KEK_URI", "vault.kek_uri", kindString},
	{"TUTELA_VAULT_PKCS11_MODULE", "vault.pkcs11_module", kindString},
	{"TUTELA_VAULT_KMS_ENDPOINT", "vault.kms_endpoint", kindString},
	{"TUTELA_VAULT_HCVAULT_CA_FILE", "vault.hcvault_ca_file", kindString},
	{"TUTELA_VAULT_CACHE_TTL", "vault.cache_ttl", kindDuration},
	{"TUTELA_VAULT_ROTATE_EVERY", "vault.rotate_every", kindDuration},
	{"TUTELA_METRICS_ADDR", "metrics.addr", kindString},
	{"TUTELA_RESIDENCY_REGION", "residency.region", kindString},
	{"TUTELA_TRACING_OTLP_ENDPOINT", "tracing.otlp_endpoint", kindString},
	{"TUTELA_TRACING_SAMPLE_RATIO", "tracing.sample_ratio", kindFloat},
	{"TUTELA_TRACING_TRUST_TRACEPARENT", "tracing.trust_traceparent", kindBool},
	{"TUTELA_MONITORING_RULES", "monitoring.rules", kindList},
	{"TUTELA_MONITORING_DISABLE_RULES", "monitoring.disable_rules", kindList},
	{"TUTELA_MONITORING_INTERVAL", "monitoring.interval", kindDuration},
	{"TUTELA_MONITORING_SINKS_WEBHOOK_URL", "monitoring.sinks.webhook.url", kindString},
	{"TUTELA_MONITORING_SINKS_WEBHOOK_RULES", "monitoring.sinks.webhook.rules", kindList},
	{"TUTELA_MONITORING_SINKS_SYSLOG_ADDR", "monitoring.sinks.syslog.addr", kindString},
	{"TUTELA_MONITORING_SINKS_SYSLOG_CA_FILE", "monitoring.sinks.syslog.ca_file", kindString},
	{"TUTELA_MONITORING_SINKS_SYSLOG_SERVER_NAME", "monitoring.sinks.syslog.server_name", kindString},
	{"TUTELA_MONITORING_SINKS_SYSLOG_CERT_FILE", "monitoring.sinks.syslog.cert_file", kindString},
	{"TUTELA_MONITORING_SINKS_SYSLOG_KEY_FILE", "monitoring.sinks.syslog.key_file", kindString},
	{"TUTELA_MONITORING_SINKS_SYSLOG_RULES", "monitoring.sinks.syslog.rules", kindList},
	{"TUTELA_MONITORING_SINKS_EMAIL_TO", "monitoring.sinks.email.to", kindList},
	{"TUTELA_MONITORING_SINKS_EMAIL_RULES", "monitoring.sinks.email.rules", kindList},
}

// secretVars are read from NAME or from the file named by NAME_FILE, never from YAML; fileKey is
// where an operator might wrongly put one in tutela.yaml.
type secretVar struct {
	name    string
	fileKey string
	field   func(*Config) *tutela.Secret
}

var secretVars = []secretVar{
	{"TUTELA_DATABASE_PASSWORD", "database.password", func(c *Config) *tutela.Secret { return &c.DatabasePassword }},
	{"TUTELA_MASTER_KEY", "master_key", func(c *Config) *tutela.Secret { return &c.MasterKey }},
	{"TUTELA_SMTP_PASSWORD", "smtp.password", func(c *Config) *tutela.Secret { return &c.SMTPPassword }},
	{"TUTELA_HSM_PIN", "vault.hsm_pin", func(c *Config) *tutela.Secret { return &c.HSMPIN }},
	{"TUTELA_VAULT_TOKEN", "vault.token", func(c *Config) *tutela.Secret { return &c.VaultToken }},
	{"TUTELA_METRICS_TOKEN", "metrics.token", func(c *Config) *tutela.Secret { return &c.MetricsToken }},
	{"TUTELA_FILES_S3_SECRET_ACCESS_KEY", "files.s3.secret_access_key", func(c *Config) *tutela.Secret { return &c.FilesS3SecretKey }},
	{"TUTELA_TRACING_HEADERS", "tracing.headers", func(c *Config) *tutela.Secret { return &c.TracingHeaders }},
	{"TUTELA_MONITORING_SINKS_WEBHOOK_SECRET", "monitoring.sinks.webhook.secret", func(c *Config) *tutela.Secret { return &c.MonitoringWebhookSecret }},
}

// maxSecretFile bounds a secret file read, so a _FILE pointing at /dev/zero or a log cannot
// exhaust memory.
const maxSecretFile = 64 << 10

// Load returns the defaults overlaid with the YAML file at path (none if path is empty) and then
// with the TUTELA_* variables in environ (as from os.Environ; the process environment is never
// read directly). An empty variable counts as unset.
//
// Load fails on a missing or malformed file, an unknown key in the file, and an environment value
// that does not parse as its key's type. It does not apply the rules: call Validate.
func Load(path string, environ []string) (*Config, error) {
	cfg := Default()
	if path != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config: load %s: %w", path, err)
		}
		cfg.loadProblems = append(cfg.loadProblems, takeFileSecrets(fk)...)
		// An unknown key is reported with every other problem (Validate), and dropped so the
		// rest of the file still loads.
		for _, msg := range checkFileKeys(fk) {
			cfg.loadProblems = append(cfg.loadProblems, path+": "+msg)
		}
		if err := decode(fk, cfg); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}

	byName := make(map[string]int, len(envVars))
	for i, v := range envVars {
		byName[v.name] = i
	}
	ek := koanf.New(".")
	err := ek.Load(env.Provider(".", env.Opt{
		Prefix:      "TUTELA_",
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, raw string) (string, any) {
			i, ok := byName[name]
			if !ok || raw == "" {
				return "", nil
			}
			v, err := parseEnv(envVars[i].kind, raw)
			if err != nil {
				// Reported with every other problem (Validate); the default stays.
				cfg.loadProblems = append(cfg.loadProblems, fmt.Sprintf("%s: %v", name, err))
				return "", nil
			}
			return envVars[i].key, v
		},
	}), nil)
	if err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}
	if err := decode(ek, cfg); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}

	cfg.loadProblems = append(cfg.loadProblems, loadSecrets(cfg, environ)...)
	cfg.unknownEnv = unknownEnv(environ, byName)
	return cfg, nil
}

// secretByRule finds the secret whose key, turned into a variable by the settings' rule, is name
// (vault.hsm_pin: TUTELA_VAULT_HSM_PIN), for secrets whose variable is named otherwise.
func secretByRule(name string) (secretVar, bool) {
	for _, s := range secretVars {
		if "TUTELA_"+strings.ToUpper(strings.ReplaceAll(s.fileKey, ".", "_")) == name {
			return s, true
		}
	}
	return secretVar{}, false
}

// notSettings are TUTELA_* variables read by something other than the service itself.
var notSettings = map[string]bool{"TUTELA_TEST_DATABASE_URL": true,
	// tutela audit receive, which runs on another system without Tutela's configuration.
	"TUTELA_AUDIT_RECEIVE_SECRET": true, "TUTELA_AUDIT_RECEIVE_SECRET_FILE": true}

// unknownEnv lists the TUTELA_* variables in environ that are neither a setting nor a secret
// (NAME or NAME_FILE), sorted.
func unknownEnv(environ []string, settings map[string]int) []string {
	known := make(map[string]bool, 2*len(secretVars))
	for _, s := range secretVars {
		known[s.name], known[s.name+"_FILE"] = true, true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := settings[name]; ok || known[name] || notSettings[name] || !strings.HasPrefix(name, "TUTELA_") ||
			strings.HasPrefix(name, ShipSecretPrefix) {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func parseEnv(k kind, raw string) (any, error) {
	switch k {
	case kindBool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid boolean %q (want true or false)", raw)
		}
		return b, nil
	case kindInt:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid integer %q", raw)
		}
		return n, nil
	case kindFloat:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid number %q", raw)
		}
		return f, nil
	case kindDuration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q (want e.g. 15s, 2m)", raw)
		}
		return d, nil
	case kindList:
		var out []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return out, nil
	default:
		return raw, nil
	}
}

var durationType = reflect.TypeFor[time.Duration]()

// rejectBareDuration refuses `read_timeout: 15` in YAML, which would otherwise decode as 15ns and
// pass the > 0 check while making every request time out.
func rejectBareDuration(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("duration %v has no unit (want e.g. \"15s\")", data)
	}
	return data, nil
}

// rejectFractionalInt refuses `burst: 1.5`, which mapstructure would silently truncate to 1.
func rejectFractionalInt(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.Float64 && from.Kind() != reflect.Float32 {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if f := reflect.ValueOf(data).Float(); f != math.Trunc(f) {
			return nil, fmt.Errorf("%v is not a whole number", data)
		}
	}
	return data, nil
}

// decode overlays the keys present in k onto cfg. Input is strictly typed: a number where a
// string belongs is an error, not a silent conversion.
func decode(k *koanf.Koanf, cfg *Config) error {
	return k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				rejectBareDuration,
				rejectFractionalInt,
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","),
			),
			ErrorUnused: true,
		},
	})
}

// checkFileKeys finds keys the config does not know, names each and removes it from the file
// layer: a misspelt key (http.adr) would otherwise be ignored and leave a security setting at its
// default without a word. Validate reports them with every other problem.
func checkFileKeys(fk *koanf.Koanf) []string {
	known := make(map[string]bool, len(envVars))
	sections := make(map[string]bool)
	for _, v := range envVars {
		known[v.key] = true
		for i := range len(v.key) {
			if v.key[i] == '.' {
				sections[v.key[:i]] = true
			}
		}
	}
	var msgs []string
	for _, key := range fk.Keys() {
		switch {
		case known[key]:
		case sections[key]:
			// An empty or null section (`http:` with every child commented out) is harmless.
			if v := fk.Get(key); v != nil {
				if m, ok := v.(map[string]any); !ok || len(m) != 0 {
					msgs = append(msgs, fmt.Sprintf("%q must be a mapping", key))
					fk.Delete(key)
				}
			}
		default:
			msgs = append(msgs, fmt.Sprintf("unknown key %q", key))
			fk.Delete(key)
		}
	}
	return msgs
}

// takeFileSecrets removes secrets from the file layer and returns a problem for each. The value
// is dropped rather than kept, so it cannot reach a Config, a log line or an error message even if
// a caller skips Validate.
func takeFileSecrets(fk *koanf.Koanf) []string {
	var problems []string
	for _, s := range secretVars {
		if fk.Exists(s.fileKey) {
			problems = append(problems, fmt.Sprintf("secret in config file (%s): use %s or %s_FILE", s.fileKey, s.name, s.name))
			fk.Delete(s.fileKey)
		}
	}
	if raw, ok := fk.Get("database.url").(string); ok && urlHasPassword(raw) {
		problems = append(problems, "secret in config file (database.url contains a password): use TUTELA_DATABASE_PASSWORD or TUTELA_DATABASE_PASSWORD_FILE")
		if u, err := url.Parse(raw); err == nil {
			u.User = url.User(u.User.Username())
			_ = fk.Set("database.url", u.String())
		} else {
			fk.Delete("database.url")
		}
	}
	return problems
}

// urlHasPassword reports whether raw carries a password in its userinfo. An unparseable URL is
// checked textually so a malformed DSN with a password is still caught.
func urlHasPassword(raw string) bool {
	if u, err := url.Parse(raw); err == nil {
		_, ok := u.User.Password()
		return ok
	}
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	at := strings.LastIndex(rest, "@")
	return at >= 0 && strings.Contains(rest[:at], ":")
}

// loadSecrets fills the secret fields from environ and returns the rule violations found.
// Problem text names variables and files, never their contents.
func loadSecrets(cfg *Config, environ []string) []string {
	vars := environVars(environ)
	var problems []string
	for _, s := range secretVars {
		sec, ok, problem := secretFrom(vars, s.name)
		if problem != "" {
			problems = append(problems, problem)
		} else if ok {
			*s.field(cfg) = sec
		}
	}
	return append(problems, loadShipSecrets(cfg, vars)...)
}

// environVars maps the set (non-empty) variables of environ; the last of a name wins, as in
// the koanf layer.
func environVars(environ []string) map[string]string {
	vars := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && v != "" {
			vars[k] = v
		}
	}
	return vars
}

// secretFrom reads the secret NAME, or the file NAME_FILE names, from vars: ok is false when
// neither is set; problem says what is wrong when both are, or the file cannot be read.
func secretFrom(vars map[string]string, name string) (s tutela.Secret, ok bool, problem string) {
	val, hasVal := vars[name]
	path, hasFile := vars[name+"_FILE"]
	switch {
	case hasVal && hasFile:
		return s, false, fmt.Sprintf("both %s and %s_FILE are set: set only one", name, name)
	case hasVal:
		return tutela.NewSecret(val), true, ""
	case hasFile:
		b, err := readSecretFile(path)
		if err != nil {
			return s, false, fmt.Sprintf("%s_FILE: %v", name, err)
		}
		return tutela.NewSecretBytes(b), true, ""
	}
	return s, false, ""
}

// SecretFromEnviron reads one secret the way the configuration reads its own: NAME, or the
// file NAME_FILE names (bounded, one trailing newline dropped), never both. For commands that
// read no configuration (tutela audit receive).
func SecretFromEnviron(environ []string, name string) (tutela.Secret, error) {
	s, ok, problem := secretFrom(environVars(environ), name)
	switch {
	case problem != "":
		return s, errors.New(problem)
	case !ok:
		return s, fmt.Errorf("set %s or %s_FILE", name, name)
	}
	return s, nil
}

// readSecretFile reads a secret file, dropping one trailing newline (editors and `echo` add one;
// it is never part of the secret).
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the configuration file the operator names
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretFile)
	}
	b = trimNewline(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// Problems lists every rule a Config breaks.
type Problems struct {
	List []string
}

func (p *Problems) Error() string { return strings.Join(p.List, "; ") }

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Validate checks every rule and returns a *Problems listing all violations, or nil.
func (c *Config) Validate() error {
	p := problems(append([]string(nil), c.loadProblems...))
	if c.DataDir == "" {
		p.add("data_dir: must not be empty")
	}
	c.validateHTTP(&p)
	c.validateRedirect(&p)
	c.validateTLS(&p)
	c.validateDatabase(&p)
	c.validateLog(&p)
	c.validateAuth(&p)
	c.validateSMTP(&p)
	if a := c.Audit; a.CheckpointInterval < 100*time.Millisecond || a.CheckpointInterval > time.Hour {
		p.add("audit.checkpoint_interval: must be between 100ms and 1h")
	}
	if k := c.Audit.CheckpointKeepHourly; k != 0 && (k < time.Hour || k > 10*365*24*time.Hour) {
		p.add("audit.checkpoint_keep_hourly: must be 0 (keep every checkpoint) or between 1h and 87600h, got %s", k)
	}
	if c.Audit.Retention < 24*time.Hour {
		p.add("audit.retention: must be at least 24h")
	}
	if u := c.Audit.CheckpointURL; u != "" && !httpsURL(u) {
		p.add("audit.checkpoint_url: must be an https URL (http only on loopback)")
	}
	c.validateRetention(&p)
	if w := c.Privacy.UnmergeWindow; w < MinUnmergeWindow || w > MaxUnmergeWindow {
		p.add("privacy.unmerge_window: must be between 1h and 8760h (365 days), such as 720h")
	}
	c.validateVault(&p)
	c.validateMetrics(&p)
	c.validateResidency(&p)
	c.validateDSR(&p)
	c.validateAI(&p)
	c.validateFiles(&p)
	c.validateTracing(&p)
	c.validateMonitoring(&p)
	c.validateAuditShip(&p)
	if len(p) == 0 {
		return nil
	}
	return &Problems{List: p}
}

// Warnings lists settings that are valid but weaken a default protection; `tutela config check`
// prints them and the server logs them at start.
func (c *Config) Warnings() []string {
	var w []string
	if !c.Files.MalwareScan {
		w = append(w, "files.malware_scan is off: uploaded files become downloadable without a malware scan (ASVS 5.0 5.4.3)")
	}
	if b := c.Auth.Breach; !b.BuiltinList {
		msg := "auth.breach.builtin_list is off: new passwords are not checked against the built-in list of common breached passwords (ASVS 6.2.12)"
		if b.RangeURL == "" && b.IndexFile == "" {
			msg += ", and no other breach source is configured, so there is no breached-password check at all"
		}
		w = append(w, msg)
	}
	if msg := c.mailWarning(); msg != "" {
		w = append(w, msg)
	}
	for _, name := range c.unknownEnv {
		if s, ok := secretByRule(name); ok {
			w = append(w, fmt.Sprintf("%s is ignored: the secret %s is read from %s or %s_FILE", name, s.fileKey, s.name, s.name))
			continue
		}
		w = append(w, name+" is not a Tutela setting and is ignored: a setting's variable is TUTELA_ and its key in "+
			"upper case with dots as underscores (auth.session_idle: TUTELA_AUTH_SESSION_IDLE)")
	}
	return w
}

// validateRetention sets floors, not defaults: a retention of 0 would mean "keep for ever" to
// some readers and "delete at once" to others, so it is refused. One-time tokens may go after an
// hour; the rest are kept a day at least, so a sign-in attempt or a revoked session can still be
// investigated the morning after.
func (c *Config) validateRetention(p *problems) {
	r := c.Retention
	for _, f := range []struct {
		key      string
		d, floor time.Duration
		text     string
	}{
		{"retention.login_history", r.LoginHistory, 24 * time.Hour, "24h"},
		{"retention.security_events", r.SecurityEvents, 24 * time.Hour, "24h"},
		{"retention.ended_sessions", r.EndedSessions, 24 * time.Hour, "24h"},
		{"retention.used_tokens", r.UsedTokens, time.Hour, "1h"},
		{"retention.dead_jobs", r.DeadJobs, 24 * time.Hour, "24h"},
	} {
		if f.d < f.floor {
			p.add("%s: must be at least %s", f.key, f.text)
		}
	}
}

const (
	minBodyLimit = 1 << 10
	maxBodyLimit = 64 << 20
)

func (c *Config) validateHTTP(p *problems) {
	h := c.HTTP
	if host, port, err := net.SplitHostPort(h.Addr); err != nil {
		p.add("http.addr: %q is not host:port", h.Addr)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.add("http.addr: %q has an invalid port", h.Addr)
	} else if !tutela.IsLoopbackHost(host) && !c.TLS.enabled() && !h.AllowPlaintext {
		p.add("http.addr: %q is not a loopback address and TLS is off: set tls.cert_file and tls.key_file, "+
			"or set http.allow_plaintext if a TLS-terminating proxy sits in front", h.Addr)
	}
	if h.BodyLimit < minBodyLimit || h.BodyLimit > maxBodyLimit {
		p.add("http.body_limit: %d bytes is outside 1 KiB to 64 MiB", h.BodyLimit)
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{
		{"http.read_header_timeout", h.ReadHeaderTimeout},
		{"http.read_timeout", h.ReadTimeout},
		{"http.write_timeout", h.WriteTimeout},
		{"http.idle_timeout", h.IdleTimeout},
		{"http.shutdown_timeout", h.ShutdownTimeout},
	} {
		if t.d <= 0 {
			p.add("%s: must be > 0, got %s", t.key, t.d)
		}
	}
	if rps := h.RateLimit.RPS; !(rps > 0) || math.IsInf(rps, 1) {
		p.add("http.rate_limit.rps: must be a finite number > 0, got %v", rps)
	}
	if h.RateLimit.Burst < 1 {
		p.add("http.rate_limit.burst: must be >= 1, got %d", h.RateLimit.Burst)
	}
	// Shorter flushes load the database for little; longer ones let the nodes overshoot the
	// limit by more (the shared window is at least a second).
	if d := h.RateLimit.ShareEvery; d != 0 && (d < 10*time.Millisecond || d > time.Second) {
		p.add("http.rate_limit.share_every: must be 0 (each node limits alone) or between 10ms and 1s, got %s", d)
	}
	for _, s := range h.TrustedProxies {
		if _, err := parseProxy(s); err != nil {
			p.add("http.trusted_proxies: %v", err)
		}
	}
}

// minMetricsToken is the shortest metrics bearer token accepted: 128 bits as hex.
const minMetricsToken = 32

// validateMetrics keeps the metrics listener private: on loopback it may be open (only local
// scrapers reach it); anywhere else it needs the bearer token, sent over TLS or, with
// http.allow_plaintext, a network the operator vouches for. It must not share the API's address.
func (c *Config) validateMetrics(p *problems) {
	m := c.Metrics
	if t := c.MetricsToken; !t.IsZero() && len(t.Reveal()) < minMetricsToken {
		p.add("TUTELA_METRICS_TOKEN: must be at least %d characters", minMetricsToken)
	}
	if m.Off() {
		return
	}
	host, port, err := net.SplitHostPort(m.Addr)
	if err != nil {
		p.add("metrics.addr: %q is not host:port (or off to serve no metrics)", m.Addr)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.add("metrics.addr: %q has an invalid port", m.Addr)
		return
	}
	if m.Addr == c.HTTP.Addr && port != "0" {
		p.add("metrics.addr: must differ from http.addr; /metrics is not served on the API listener")
	}
	if tutela.IsLoopbackHost(host) {
		return
	}
	if c.MetricsToken.IsZero() {
		p.add("metrics.addr: %q is not a loopback address: set TUTELA_METRICS_TOKEN (or _FILE) so scrapers must authenticate", m.Addr)
	}
	if !c.TLS.enabled() && !c.HTTP.AllowPlaintext {
		p.add("metrics.addr: %q is not a loopback address and TLS is off: set tls.cert_file and tls.key_file, "+
			"or http.allow_plaintext if the network to the scraper is trusted", m.Addr)
	}
}

func (t TLS) enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// ServedOverTLS reports whether clients reach Tutela over HTTPS: it terminates TLS itself, or it
// listens in plaintext on a non-loopback address, which validation allows only with
// http.allow_plaintext, that is behind a TLS-terminating proxy. Then HSTS is sent (the proxy
// passes it to the browser over HTTPS; browsers ignore it over plain HTTP anyway).
func (c *Config) ServedOverTLS() bool {
	if c.TLS.enabled() {
		return true
	}
	host, _, err := net.SplitHostPort(c.HTTP.Addr)
	return err == nil && c.HTTP.AllowPlaintext && !tutela.IsLoopbackHost(host)
}

func (c *Config) validateTLS(p *problems) {
	t := c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add("tls: set both tls.cert_file and tls.key_file, or neither")
	}
	for _, f := range []struct{ key, path string }{{"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if fi, err := os.Stat(f.path); err != nil {
			p.add("%s: %v", f.key, err)
		} else if fi.IsDir() {
			p.add("%s: %s is a directory", f.key, f.path)
		}
	}
	if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
		p.add("tls.min_version: %q is not 1.2 or 1.3", t.MinVersion)
	}
}

// MinTLSVersion returns the crypto/tls constant for MinVersion; TLS 1.3 unless it is "1.2".
func (t TLS) MinTLSVersion() uint16 {
	if t.MinVersion == "1.2" {
		return tls.VersionTLS12
	}
	return tls.VersionTLS13
}

// unverifiedSSLModes are the libpq sslmode values that encrypt but do not check who answers
// (require: no certificate check; verify-ca: no host name check). Only verify-full also
// defends against an active attacker.
var unverifiedSSLModes = map[string]bool{"require": true, "verify-ca": true}

func (c *Config) validateDatabase(p *problems) {
	d := c.Database
	if d.MaxOpenConns < 1 {
		p.add("database.max_open_conns: must be >= 1, got %d", d.MaxOpenConns)
	}
	if d.MaxIdleConns < 0 || d.MaxIdleConns > d.MaxOpenConns {
		p.add("database.max_idle_conns: must be between 0 and database.max_open_conns, got %d", d.MaxIdleConns)
	}
	if d.ConnMaxLifetime <= 0 {
		p.add("database.conn_max_lifetime: must be > 0, got %s", d.ConnMaxLifetime)
	}
	if d.RequestTimeout < 100*time.Millisecond || d.RequestTimeout > time.Minute {
		p.add("database.request_timeout: must be between 100ms and 1m, got %s", d.RequestTimeout)
	}
	if d.SQLiteSynchronous != "full" && d.SQLiteSynchronous != "normal" {
		p.add("database.sqlite_synchronous: must be full or normal, got %q", d.SQLiteSynchronous)
	}
	if d.URL == "" {
		if d.RequireTLS {
			p.add("database.require_tls: needs a PostgreSQL database.url (the embedded SQLite store has no network link)")
		}
		return
	}
	// The URL may hold a password (allowed from the environment), so no message echoes it or a
	// url.Parse error, which quotes its input.
	u, err := url.Parse(d.URL)
	if err != nil || u.Opaque != "" {
		p.add("database.url: not a valid URL")
		return
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		p.add("database.url: scheme %q is not postgres or postgresql (leave database.url empty for embedded SQLite)", u.Scheme)
		return
	}
	if _, ok := u.User.Password(); ok && !c.DatabasePassword.IsZero() {
		p.add("database.url contains a password and TUTELA_DATABASE_PASSWORD is set: use only one")
	}
	host := u.Hostname()
	local := host == "" || tutela.IsLoopbackHost(host) // "" = Unix socket (host= query) or libpq default
	mode := u.Query().Get("sslmode")
	if (local && !d.RequireTLS) || mode == "verify-full" || (d.AllowUnverifiedTLS && unverifiedSSLModes[mode]) {
		return
	}
	if mode == "" {
		mode = "unset (defaults to prefer, which falls back to plaintext)"
	}
	rule := "database.url: the database is not on this machine"
	if local {
		rule = "database.require_tls"
	}
	hint := "use sslmode=verify-full (with sslrootcert= for a private CA)"
	if !d.AllowUnverifiedTLS && unverifiedSSLModes[mode] {
		hint += ", or set database.allow_unverified_tls to accept " + mode
	}
	p.add("%s and sslmode is %s: %s", rule, mode, hint)
}

func (c *Config) validateLog(p *problems) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		p.add("log.format: %q is not json or text", c.Log.Format)
	}
}

// SlogLevel returns the slog level for Level; info for anything Validate would reject.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// TrustedProxyPrefixes parses HTTP.TrustedProxies. A single IP becomes a /32 or /128.
func (c *Config) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.HTTP.TrustedProxies))
	var errs []error
	for _, s := range c.HTTP.TrustedProxies {
		pfx, err := parseProxy(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, pfx)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// parseProxy is strict because a trusted proxy may set the client address that rate limiting,
// lockout and audit rely on: a prefix with host bits set (10.0.0.1/8) is refused rather than
// widened, and a /0 that would let every client forge X-Forwarded-For is refused outright.
func parseProxy(s string) (netip.Prefix, error) {
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
		}
		pfx = p
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		a = a.Unmap()
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if pfx.Bits() == 0 {
		return netip.Prefix{}, fmt.Errorf("%q trusts every address to set X-Forwarded-For: list the proxies' addresses", s)
	}
	return pfx, nil
}

// DatabaseDSN returns Database.URL with DatabasePassword set as its password when the URL has
// none. It is the only place the password joins the URL; pass the result to the driver and
// nowhere else. An empty URL (embedded SQLite) gives "".
func (c *Config) DatabaseDSN() string {
	if c.Database.URL == "" || c.DatabasePassword.IsZero() {
		return c.Database.URL
	}
	u, err := url.Parse(c.Database.URL)
	if err != nil {
		return c.Database.URL
	}
	if _, ok := u.User.Password(); ok {
		return c.Database.URL
	}
	u.User = url.UserPassword(u.User.Username(), c.DatabasePassword.Reveal())
	return u.String()
}

func (c *Config) validateVault(p *problems) {
	v := c.Vault
	spec, err := vault.ParseKEKURI(v.KEKURI)
	if err != nil {
		p.add("vault.kek_uri: %s", strings.TrimPrefix(err.Error(), "vault: "))
	}
	switch spec.Scheme {
	case vault.SchemePKCS11:
		if v.PKCS11Module == "" {
			p.add("vault.pkcs11_module: a pkcs11 KEK needs the HSM's PKCS#11 library path")
		}
		if c.HSMPIN.IsZero() {
			p.add("TUTELA_HSM_PIN: a pkcs11 KEK needs the token's user PIN")
		}
	case vault.SchemeHCVault:
		if c.VaultToken.IsZero() {
			p.add("TUTELA_VAULT_TOKEN: an hcvault KEK needs a Vault token")
		}
	case vault.SchemeAWSKMS, vault.SchemeGCPKMS:
		if v.KMSEndpoint != "" && !httpsURL(v.KMSEndpoint) {
			p.add("vault.kms_endpoint: must be an https URL (http only on loopback)")
		}
	}
	if v.KMSEndpoint != "" && spec.Scheme != vault.SchemeAWSKMS && spec.Scheme != vault.SchemeGCPKMS {
		p.add("vault.kms_endpoint: only for an aws-kms:// or gcp-kms:// KEK")
	}
	if v.CacheTTL <= 0 || v.CacheTTL > 24*time.Hour {
		p.add("vault.cache_ttl: must be positive and at most 24h, such as 5m")
	}
	if v.RotateEvery < 0 || (v.RotateEvery > 0 && v.RotateEvery < time.Hour) {
		p.add("vault.rotate_every: must be 0 (off) or at least 1h, such as 2160h")
	}
}

// httpsURL reports whether u is an absolute https URL, or http to a loopback host.
func httpsURL(u string) bool {
	pu, err := url.Parse(u)
	return err == nil && pu.Host != "" && (pu.Scheme == "https" || (pu.Scheme == "http" && tutela.IsLoopbackHost(pu.Hostname())))
}

const redacted = "[redacted]"

// Redacted returns the effective configuration as nested maps keyed like tutela.yaml, with
// durations as strings, secrets as "[redacted]" (or "" when unset) and any password in
// database.url masked. It is what `tutela config check` prints.
func (c *Config) Redacted() map[string]any {
	out := structMap(reflect.ValueOf(*c))
	db := out["database"].(map[string]any)
	db["url"] = redactURL(c.Database.URL)
	db["password"] = redactSecret(c.DatabasePassword)
	out["master_key"] = redactSecret(c.MasterKey)
	vs := out["vault"].(map[string]any)
	vs["hsm_pin"] = redactSecret(c.HSMPIN)
	vs["token"] = redactSecret(c.VaultToken)
	out["metrics"].(map[string]any)["token"] = redactSecret(c.MetricsToken)
	out["files"].(map[string]any)["s3"].(map[string]any)["secret_access_key"] = redactSecret(c.FilesS3SecretKey)
	out["tracing"].(map[string]any)["headers"] = redactSecret(c.TracingHeaders)
	out["monitoring"].(map[string]any)["sinks"].(map[string]any)["webhook"].(map[string]any)["secret"] = redactSecret(c.MonitoringWebhookSecret)
	ship := map[string]any{}
	for name, sec := range c.ShipSecrets {
		ship[name] = redactSecret(sec)
	}
	out["audit"].(map[string]any)["ship_secrets"] = ship
	return out
}

// String renders Redacted as YAML, so printing a *Config cannot leak a secret.
func (c *Config) String() string {
	b, err := yaml.Parser().Marshal(c.Redacted())
	if err != nil {
		return fmt.Sprint(c.Redacted())
	}
	return string(b)
}

// LogValue logs the redacted form, so slog handlers that marshal structs field by field (JSON)
// never see database.url.
func (c *Config) LogValue() slog.Value { return slog.AnyValue(c.Redacted()) }

func structMap(v reflect.Value) map[string]any {
	out := make(map[string]any)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		fv := v.Field(i)
		switch x := fv.Interface().(type) {
		case time.Duration:
			out[tag] = x.String()
		case []string:
			out[tag] = append([]string{}, x...)
		default:
			if fv.Kind() == reflect.Struct {
				out[tag] = structMap(fv)
			} else {
				out[tag] = x
			}
		}
	}
	return out
}

func redactSecret(s tutela.Secret) string {
	if s.IsZero() {
		return ""
	}
	return redacted
}

func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL, " + redacted + "]"
	}
	return u.Redacted()
}

func (c *Config) validateAuth(p *problems) {
	a := c.Auth
	seen := map[string]bool{}
	for _, r := range a.Resources {
		u, err := url.Parse(r)
		switch {
		case err != nil || u.Host == "" || u.Fragment != "" || u.User != nil || !httpsURL(r):
			p.add("auth.resources: %q must be an absolute https URI without fragment or user info (http only on loopback)", r)
		case seen[r]:
			p.add("auth.resources: %q is listed twice", r)
		}
		seen[r] = true
	}
	if a.Issuer != "" {
		if u, err := url.Parse(a.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p.add("auth.issuer: must be an absolute http(s) URL")
		}
	}
	if a.SessionIdle < time.Minute || a.SessionIdle > 24*time.Hour {
		p.add("auth.session_idle: must be between 1m and 24h")
	}
	if a.SessionAbsolute < a.SessionIdle || a.SessionAbsolute > 30*24*time.Hour {
		p.add("auth.session_absolute: must be at least auth.session_idle and at most 720h")
	}
	if a.AccessTokenTTL < 30*time.Second || a.AccessTokenTTL > time.Hour {
		p.add("auth.access_token_ttl: must be between 30s and 1h")
	}
	if a.TokenAlg != "EdDSA" && a.TokenAlg != "ES256" {
		p.add("auth.token_alg: must be EdDSA or ES256")
	}
	for _, alg := range a.TokenAlgs {
		if alg != "EdDSA" && alg != "ES256" && alg != "RS256" {
			p.add("auth.token_algs: %.20q must be EdDSA, ES256 or RS256", alg)
		}
	}
	if a.KeyRotation < 2*time.Hour {
		p.add("auth.key_rotation: must be at least 2h")
	}
	if a.ResetCodeTTL < time.Minute || a.ResetCodeTTL > time.Hour {
		p.add("auth.reset_code_ttl: must be between 1m and 1h")
	}
	pw := a.Password
	if pw.MinLength < 8 {
		p.add("auth.password.min_length: must be at least 8 (NIST SP 800-63B)")
	}
	if pw.MaxLength < pw.MinLength || pw.MaxLength > 1024 {
		p.add("auth.password.max_length: must be between min_length and 1024")
	}
	if pw.MaxLength < 64 {
		p.add("auth.password.max_length: must allow at least 64 characters (NIST SP 800-63B)")
	}
	if pw.MinScore < 0 || pw.MinScore > 4 {
		p.add("auth.password.min_score: must be 0-4")
	}
	if pw.History < 0 || pw.History > 24 {
		p.add("auth.password.history: must be 0-24")
	}
	h := a.Hash
	if h.MemoryKiB < 8*1024 || h.MemoryKiB > 1<<20 {
		p.add("auth.hash.memory_kib: must be between 8192 and 1048576 (OWASP minimum is 19456 with t=2)")
	}
	if h.Time < 1 || h.Time > 10 {
		p.add("auth.hash.time: must be 1-10")
	}
	if h.Threads < 1 || h.Threads > 16 {
		p.add("auth.hash.threads: must be 1-16")
	}
	if b := a.Breach; b.RangeURL != "" {
		u, err := url.Parse(b.RangeURL)
		switch {
		case err != nil || u.Host == "":
			p.add("auth.breach.range_url: must be an absolute URL")
		case u.Scheme != "https" && !(u.Scheme == "http" && tutela.IsLoopbackHost(u.Hostname())):
			p.add("auth.breach.range_url: must use https (http only on loopback)")
		}
	}
	for _, r := range a.MFARoles {
		if r == "" || len(r) > 63 || strings.ToLower(r) != r {
			p.add("auth.mfa_roles: %q is not a role key", r)
		}
	}
	if a.Breach.CheckAtLogin && !a.Breach.BuiltinList && a.Breach.RangeURL == "" && a.Breach.IndexFile == "" {
		p.add("auth.breach.check_at_login: needs auth.breach.builtin_list, auth.breach.range_url or auth.breach.index_file")
	}
}

func (c *Config) validateSMTP(p *problems) {
	s := c.SMTP
	if s.Addr == "" {
		return
	}
	if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		p.add("smtp.addr: must be host:port")
	}
	if s.From == "" {
		p.add("smtp.from: required when smtp.addr is set")
	}
	switch s.TLS {
	case "starttls", "implicit", "none":
	default:
		p.add("smtp.tls: must be starttls, implicit or none")
	}
}
