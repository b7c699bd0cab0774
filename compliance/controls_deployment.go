package compliance

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"tutela/vault"

	"tutela/config"
)

// Thresholds a recorded operation must meet to count as current. They are the report's policy,
// documented in docs/compliance.md: an auditor reads "met" as "done recently", not "done once".
const (
	MaxVerifyAge      = 7 * 24 * time.Hour  // last `tutela audit verify`
	MaxBackupAge      = 7 * 24 * time.Hour  // last encrypted backup
	MaxRestoreTestAge = 92 * 24 * time.Hour // last restore test (quarterly)
	MaxReviewAge      = 92 * 24 * time.Hour // last completed access review (quarterly)
	MaxSessionIdle    = 30 * time.Minute    // NIST SP 800-63B AAL2 inactivity
	MaxSessionLife    = 12 * time.Hour      // NIST SP 800-63B AAL2 reauthentication
	MinPasswordLength = 12
)

type builder struct {
	cfg *config.Config
	rt  Runtime
	st  State
	now time.Time
}

func ev(item, value, source string) Evidence {
	return Evidence{Item: item, Value: value, Source: source}
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// worst is the status of a control made of several findings: any gap is a gap, else any
// partial is partial.
func worst(ss ...Status) Status {
	out := Met
	for _, s := range ss {
		switch {
		case s == Gap:
			return Gap
		case s == Partial:
			out = Partial
		}
	}
	return out
}

// kekLocation says where a KEK URI's key lives, naming the scheme and the non-secret locator.
func (b *builder) kekLocation(uri string) string {
	switch {
	case kekLocal(uri):
		switch b.rt.MasterKeySource {
		case "environment":
			return "local: master key from TUTELA_MASTER_KEY (environment or _FILE), on the Tutela host"
		case "file":
			return "local: master key file data_dir/master.key (0600), on the Tutela host"
		}
		return "local: master key on the Tutela host"
	case kekScheme(uri) == vault.SchemePKCS11:
		return "PKCS#11 HSM, non-extractable key (" + uri + ")"
	}
	switch loc := redactURL(uri); kekScheme(uri) {
	case vault.SchemeAWSKMS:
		return "AWS KMS (" + loc + ")"
	case vault.SchemeGCPKMS:
		return "Google Cloud KMS (" + loc + ")"
	case vault.SchemeHCVault:
		return "HashiCorp Vault transit (" + loc + ")"
	}
	return "unparsable KEK URI"
}

// kekScheme is the KEK URI's scheme as the vault reads it ("" when the vault refuses it).
func kekScheme(uri string) string {
	spec, err := vault.ParseKEKURI(uri)
	if err != nil {
		return ""
	}
	return spec.Scheme
}

func kekLocal(uri string) bool { return kekScheme(uri) == vault.SchemeLocal }

func (b *builder) encryptionAtRest() Control {
	c := Control{ID: CtlEncryptionAtRest}
	every := b.cfg.Vault.RotateEvery
	c.Evidence = append(c.Evidence, ev("automatic rotation", orText(durText(every), "off"), "config vault.rotate_every"))
	if len(b.st.Keysets) == 0 {
		c.Status, c.Summary = Gap, "no keyset exists yet: nothing is encrypted under the vault"
		c.Close = []string{"start the server once (`tutela serve`), which creates the platform keysets"}
		return c
	}
	want := b.cfg.Vault.KEKURI
	if want == "" {
		want = "local:"
	}
	var overdue, otherKEK []string
	for _, k := range b.st.Keysets {
		owner := "platform"
		if k.TenantSlug != "" {
			owner = "tenant " + k.TenantSlug
		}
		c.Evidence = append(c.Evidence, ev(fmt.Sprintf("keyset %s (%s): %s", k.Purpose, owner, orText(PurposeData(k.Purpose), "other data")),
			fmt.Sprintf("%s, %d key(s), version %d, wrapped by %s, last rotation %s", k.Kind, k.Keys, k.Version,
				schemeOf(k.KEKURI), rotationText(k)), "table keysets"))
		if every > 0 && b.now.Sub(k.LastRotation()) > every {
			overdue = append(overdue, fmt.Sprintf("%s (%s)", k.Purpose, owner))
		}
		if k.KEKURI != want {
			otherKEK = append(otherKEK, fmt.Sprintf("%s (%s)", k.Purpose, owner))
		}
	}
	var ss []Status
	switch {
	case every == 0:
		ss = append(ss, Partial)
		c.Close = append(c.Close, "set vault.rotate_every (TUTELA_VAULT_ROTATE_EVERY), e.g. 2160h, or rotate by hand on a schedule: `tutela keys rotate`")
	case len(overdue) > 0:
		ss = append(ss, Partial)
		c.Close = append(c.Close, fmt.Sprintf("rotate the keysets older than vault.rotate_every: `tutela keys rotate` (%s)", strings.Join(overdue, ", ")))
	}
	if len(otherKEK) > 0 {
		ss = append(ss, Gap)
		c.Close = append(c.Close, fmt.Sprintf("rewrap the keysets still under a previous KEK: `tutela keys kek-rewrap` (%s)", strings.Join(otherKEK, ", ")))
	}
	c.Status = worst(ss...)
	c.Summary = fmt.Sprintf("%d keysets (Tink AES-256-GCM, AES-SIV, HMAC-SHA256) encrypt personal data, credentials and Tutela's own keys; see docs/crypto.md", len(b.st.Keysets))
	return c
}

func schemeOf(uri string) string {
	if kekLocal(uri) {
		return "local:"
	}
	if strings.HasPrefix(uri, "pkcs11:") {
		return "pkcs11:"
	}
	if i := strings.Index(uri, "://"); i > 0 {
		return uri[:i+3]
	}
	return "unknown"
}

func rotationText(k Keyset) string {
	if k.RotatedAt.IsZero() {
		return "never (created " + ts(k.CreatedAt) + ")"
	}
	return ts(k.RotatedAt)
}

func durText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func (b *builder) keyManagement() Control {
	c := Control{ID: CtlKeyManagement}
	uri := b.cfg.Vault.KEKURI
	c.Evidence = append(c.Evidence, ev("key-encryption key", b.kekLocation(uri), "config vault.kek_uri"))
	if kekLocal(uri) {
		c.Status = Partial
		c.Summary = "keysets are wrapped by a KEK derived from the master key, which lives on the Tutela host"
		c.Close = []string{"set vault.kek_uri (TUTELA_VAULT_KEK_URI) to a pkcs11:, aws-kms://, gcp-kms:// or hcvault:// KEK, then run `tutela keys kek-rewrap`"}
		if b.rt.MasterKeySource == "file" {
			c.Close = append(c.Close, "or at least give the master key from a secret store: TUTELA_MASTER_KEY_FILE, not data_dir/master.key")
		}
		return c
	}
	c.Status, c.Summary = Met, "keysets are wrapped by a KEK held outside Tutela's host and database"
	return c
}

func (b *builder) tlsListener() Control {
	c := Control{ID: CtlTLS}
	cfg := b.cfg
	direct := cfg.TLS.CertFile != "" && cfg.TLS.KeyFile != ""
	c.Evidence = append(c.Evidence,
		ev("listener", cfg.HTTP.Addr, "config http.addr"),
		ev("TLS served by Tutela", yesNo(direct), "config tls.cert_file, tls.key_file"),
		ev("minimum TLS version", cfg.TLS.MinVersion, "config tls.min_version"),
		ev("plain HTTP behind a proxy allowed", yesNo(cfg.HTTP.AllowPlaintext), "config http.allow_plaintext"))
	switch {
	case direct:
		c.Status = Met
		c.Summary = "Tutela terminates TLS " + cfg.TLS.MinVersion + "+ itself (TLS 1.2 only with forward-secret AEAD suites) and sends HSTS"
	case cfg.ServedOverTLS():
		c.Status = Partial
		c.Summary = "plain HTTP to a TLS-terminating proxy: the proxy's TLS settings are outside what Tutela can show"
		c.Close = []string{"serve TLS from Tutela (tls.cert_file, tls.key_file: TUTELA_TLS_CERT_FILE, TUTELA_TLS_KEY_FILE), or attach the proxy's TLS configuration as evidence"}
	default:
		c.Status = Gap
		c.Summary = "the listener serves plain HTTP on loopback only: no client off this host reaches it over TLS"
		c.Close = []string{"set tls.cert_file and tls.key_file (TUTELA_TLS_CERT_FILE, TUTELA_TLS_KEY_FILE)"}
	}
	return c
}

func (b *builder) databaseTLS() Control {
	c := Control{ID: CtlDatabaseTLS}
	d := b.cfg.Database
	if d.URL == "" {
		c.Status, c.Summary = NotApplicable, "the embedded SQLite store is a file in data_dir: there is no database link"
		c.Evidence = append(c.Evidence, ev("store", "SQLite", "config database.url (empty)"))
		return c
	}
	u, err := url.Parse(d.URL)
	mode, host := "", ""
	if err == nil {
		mode, host = u.Query().Get("sslmode"), u.Hostname()
	}
	c.Evidence = append(c.Evidence,
		ev("database host", orText(host, "local socket"), "config database.url (host only)"),
		ev("sslmode", orText(mode, "unset (prefer)"), "config database.url"),
		ev("TLS required on loopback", yesNo(d.RequireTLS), "config database.require_tls"),
		ev("unverified TLS accepted", yesNo(d.AllowUnverifiedTLS), "config database.allow_unverified_tls"))
	switch mode {
	case "verify-full":
		c.Status, c.Summary = Met, "TLS with the server's certificate and name verified (sslmode=verify-full)"
	case "require", "verify-ca":
		c.Status, c.Summary = Partial, "encrypted, but the server's name (or certificate) is not verified"
		c.Close = []string{"use sslmode=verify-full in database.url (with sslrootcert= for a private CA) and unset database.allow_unverified_tls"}
	default:
		c.Status, c.Summary = Gap, "the database link is not encrypted (a loopback or socket connection without TLS)"
		c.Close = []string{"set sslmode=verify-full in database.url and database.require_tls (TUTELA_DATABASE_REQUIRE_TLS)"}
	}
	return c
}

func (b *builder) passwords() Control {
	c := Control{ID: CtlPasswords}
	a := b.cfg.Auth
	br := a.Breach
	var sources []string
	if br.BuiltinList {
		sources = append(sources, "built-in list of the 100,000 most common breached passwords")
	}
	if br.IndexFile != "" {
		sources = append(sources, "offline index (auth.breach.index_file)")
	}
	if br.RangeURL != "" {
		if u, err := url.Parse(br.RangeURL); err == nil {
			sources = append(sources, "range API at "+u.Host)
		}
	}
	c.Evidence = append(c.Evidence,
		ev("minimum length", fmt.Sprint(a.Password.MinLength), "config auth.password.min_length"),
		ev("maximum length", fmt.Sprint(a.Password.MaxLength), "config auth.password.max_length"),
		ev("minimum strength (zxcvbn 0-4)", fmt.Sprint(a.Password.MinScore), "config auth.password.min_score"),
		ev("hashing", fmt.Sprintf("argon2id m=%d KiB t=%d p=%d, peppered", a.Hash.MemoryKiB, a.Hash.Time, a.Hash.Threads), "config auth.hash"),
		ev("breached-password sources", orText(strings.Join(sources, "; "), "none"), "config auth.breach"),
		ev("accept passwords when the range API is down", yesNo(br.FailOpen), "config auth.breach.fail_open"),
		ev("check at sign-in", yesNo(br.CheckAtLogin), "config auth.breach.check_at_login"))
	var ss []Status
	if len(sources) == 0 {
		ss = append(ss, Gap)
		c.Close = append(c.Close, "turn on auth.breach.builtin_list (TUTELA_AUTH_BREACH_BUILTIN_LIST=true), or set auth.breach.index_file or auth.breach.range_url")
	}
	if a.Password.MinLength < MinPasswordLength {
		ss = append(ss, Partial)
		c.Close = append(c.Close, fmt.Sprintf("raise auth.password.min_length (TUTELA_AUTH_PASSWORD_MIN_LENGTH) to %d or more", MinPasswordLength))
	}
	if br.FailOpen {
		ss = append(ss, Partial)
		c.Close = append(c.Close, "unset auth.breach.fail_open so a password is never accepted unchecked")
	}
	c.Status = worst(ss...)
	c.Summary = fmt.Sprintf("at least %d characters, strength %d of 4, breached passwords refused, argon2id with a pepper", a.Password.MinLength, a.Password.MinScore)
	return c
}

func (b *builder) lockout() Control {
	c := Control{ID: CtlLockout}
	h := b.cfg.HTTP.RateLimit
	locks := 0
	for _, t := range b.st.Tenants {
		locks += t.LockEvents30d
	}
	c.Evidence = append(c.Evidence,
		ev("sign-in throttle", "per account, per source address and per account-and-source, with escalating locks; cannot be turned off", "identity throttle (table auth_throttle)"),
		ev("request rate limit", fmt.Sprintf("%g requests/s, burst %d, per client", h.RPS, h.Burst), "config http.rate_limit"),
		ev("locks in the last 30 days (tenants in scope)", fmt.Sprint(locks), "table security_events (account_locked, ip_locked, source_locked)"),
		ev("lock events kept", b.cfg.Retention.SecurityEvents.String(), "config retention.security_events"))
	c.Status, c.Summary = Met, "failed sign-ins are throttled and locked out; every lock is a security event"
	return c
}

func (b *builder) auditIntegrity() Control {
	c := Control{ID: CtlAuditIntegrity}
	a := b.cfg.Audit
	dir := a.CheckpointDir
	if dir == "" {
		dir = "data_dir/checkpoints"
	}
	cp := "none"
	if b.st.Checkpoint != nil {
		cp = fmt.Sprintf("size %d, signed %s", b.st.Checkpoint.Size, ts(b.st.Checkpoint.CreatedAt))
	}
	c.Evidence = append(c.Evidence,
		ev("latest checkpoint", cp, "table audit_checkpoints"),
		ev("verifier key", orText(b.rt.AuditVerifierKey, "unknown"), "data_dir/audit.key, GET /v1/audit/public-key"),
		ev("checkpoints published to", dir, "config audit.checkpoint_dir"),
		ev("witness or archive", orText(redactURL(a.CheckpointURL), "none"), "config audit.checkpoint_url"),
		ev("retention of event bodies", a.Retention.String(), "config audit.retention"),
		ev("last verification", opText(b.st.AuditVerify), "table compliance_evidence (tutela audit verify)"),
		ev("durability of each commit", commitDurability(b.cfg), "config database.sqlite_synchronous"))
	// Shipping the events themselves to a separate system (ASVS 5.0 16.4.3, docs/audit.md).
	shipped := map[string]Shipping{}
	for _, s := range b.st.Shipping {
		shipped[s.Destination] = s
	}
	dests := b.cfg.ShipDestinations()
	if len(dests) == 0 {
		c.Evidence = append(c.Evidence, ev("log shipped to", "none", "config audit.ship"))
	}
	var behind []string
	for _, d := range dests {
		s := shipped[d.Name]
		where := d.URL
		if d.Type == config.ShipHTTPS {
			where = redactURL(d.URL)
		}
		state := fmt.Sprintf("%d entries acknowledged, last %s", s.Shipped, ts(s.ShippedAt))
		if s.Failures > 0 {
			state += fmt.Sprintf("; failing (%d attempts): %s", s.Failures, s.LastError)
			behind = append(behind, fmt.Sprintf("audit shipping to %s is failing (%s): fix it, `tutela audit shipping` shows its state", d.Name, s.LastError))
		}
		c.Evidence = append(c.Evidence, ev("log shipped to "+d.Name, d.Type+" "+where+": "+state, "config audit.ship, table audit_ship_cursors"))
	}
	var ss []Status
	if b.st.Checkpoint == nil {
		ss = append(ss, Gap)
		c.Close = append(c.Close, "start a node or run `tutela audit sequence` so the log is signed")
	}
	v := b.st.AuditVerify
	switch {
	case v == nil:
		ss = append(ss, Gap)
		c.Close = append(c.Close, "no verification recorded: run `tutela audit verify` (and schedule it daily)")
	case v.Outcome != OutcomeSuccess:
		ss = append(ss, Gap)
		c.Close = append(c.Close, "the last `tutela audit verify` failed: follow the runbook docs/RUNBOOKS.md#audit-verification-failure and verify again")
	case b.now.Sub(v.RecordedAt) > MaxVerifyAge:
		ss = append(ss, Partial)
		c.Close = append(c.Close, fmt.Sprintf("the last verification is older than %s: run `tutela audit verify` on a schedule", durDays(MaxVerifyAge)))
	}
	if a.CheckpointURL == "" && len(dests) == 0 {
		ss = append(ss, Partial)
		c.Close = append(c.Close, "set audit.checkpoint_url (TUTELA_AUDIT_CHECKPOINT_URL) to a witness or archive outside the operator's control, or ship the log with audit.ship (docs/audit.md, \"Shipping the log\"), and keep audit.checkpoint_dir synced off the database host")
	}
	if len(behind) > 0 {
		ss = append(ss, Partial)
		c.Close = append(c.Close, behind...)
	}
	if b.cfg.Database.URL == "" && b.cfg.Database.SQLiteSynchronous != "full" {
		// An event not yet on disk is not yet in any tree: a power loss removes it without a
		// trace the verifier could see.
		ss = append(ss, Partial)
		c.Close = append(c.Close, "set database.sqlite_synchronous to full (TUTELA_DATABASE_SQLITE_SYNCHRONOUS=full): with normal, a power loss can drop audit events already acknowledged (docs/durability.md)")
	}
	c.Status = worst(ss...)
	c.Summary = "an RFC 6962 Merkle tree over every event, checkpoints signed with Ed25519 (C2SP signed notes)"
	return c
}

// commitDurability says what survives a power loss: on SQLite the setting decides; PostgreSQL
// follows its server's synchronous_commit (on by default), which Tutela does not change.
func commitDurability(cfg *config.Config) string {
	if cfg.Database.URL != "" {
		return "PostgreSQL: as the server's synchronous_commit (on by default: the WAL is flushed at every commit)"
	}
	if cfg.Database.SQLiteSynchronous == "full" {
		return "SQLite synchronous=FULL: the write-ahead log is fsynced at every commit; acknowledged events survive a power loss"
	}
	return "SQLite synchronous=NORMAL: fsynced at checkpoints only; a power loss can drop the last acknowledged events"
}

func (b *builder) backups() Control {
	c := Control{ID: CtlBackups}
	c.Evidence = append(c.Evidence,
		ev("last encrypted backup", opText(b.st.Backup), "table compliance_evidence (tutela backup create)"),
		ev("last restore test", opText(b.st.RestoreTest), "table compliance_evidence (tutela backup test)"),
		ev("last restore", opText(b.st.Restore), "table compliance_evidence (tutela backup restore)"))
	var ss []Status
	switch bk := b.st.Backup; {
	case bk == nil:
		ss = append(ss, Gap)
		c.Close = append(c.Close, "no backup recorded: run `tutela backup create --recipient age1… FILE` on a schedule (docs/backup.md)")
	case bk.Outcome != OutcomeSuccess:
		ss = append(ss, Gap)
		c.Close = append(c.Close, "the last backup failed: run `tutela backup create` again")
	case b.now.Sub(bk.RecordedAt) > MaxBackupAge:
		ss = append(ss, Partial)
		c.Close = append(c.Close, fmt.Sprintf("the last backup is older than %s: schedule `tutela backup create`", durDays(MaxBackupAge)))
	}
	switch rt := b.st.RestoreTest; {
	case rt == nil:
		ss = append(ss, Gap)
		c.Close = append(c.Close, "no restore test recorded: run `tutela backup test --identity KEYFILE FILE` against a recent backup")
	case rt.Outcome != OutcomeSuccess:
		ss = append(ss, Gap)
		c.Close = append(c.Close, "the last restore test failed: find why (its details), take a new backup and test it")
	case b.now.Sub(rt.RecordedAt) > MaxRestoreTestAge:
		ss = append(ss, Partial)
		c.Close = append(c.Close, fmt.Sprintf("the last restore test is older than %s: test a recent backup with `tutela backup test`", durDays(MaxRestoreTestAge)))
	case !restoreTestLoaded(rt):
		// `tutela backup test` of a PostgreSQL backup decrypts it and checks every part's
		// hash and the row counts, but loads nothing: restores are not shown to work.
		ss = append(ss, Partial)
		c.Close = append(c.Close, "the last restore test only decrypted the PostgreSQL backup and checked its hashes and row counts; it did not "+
			"load it: do a full restore test with `tutela backup restore --identity KEYFILE FILE` into a scratch database "+
			"(TUTELA_DATABASE_URL of a new, empty database), then `tutela audit verify` there (docs/backup.md)")
	}
	c.Status = worst(ss...)
	c.Summary = "backups are age-encrypted (X25519) archives whose every part is hashed in the manifest"
	return c
}

func (b *builder) secureDefaults() Control {
	c := Control{ID: CtlSecureDefaults}
	dev, test := b.cfg.Deviations(), b.cfg.TestOnly()
	for _, d := range dev {
		c.Evidence = append(c.Evidence, ev("deviation", d, "tutela config check"))
	}
	for _, d := range test {
		c.Evidence = append(c.Evidence, ev("test-only setting", d, "tutela config check"))
	}
	c.Evidence = append(c.Evidence, ev("deployment marker", orText(b.rt.Environment, "unmarked"), "table deployment_settings"))
	switch {
	case len(test) > 0:
		c.Status, c.Summary = Gap, "settings meant for tests are in force"
		c.Close = append(c.Close, "change each test-only setting listed (`tutela config check` names them and what to set)")
	case len(dev) > 0:
		c.Status, c.Summary = Partial, "the configuration departs from a default protection; each deviation must be documented"
		c.Close = append(c.Close, "restore the default of each deviation listed, or document why it is needed")
	default:
		c.Status, c.Summary = Met, "no deviation from a default protection and no test-only setting"
	}
	return c
}

func (b *builder) deploymentSubprocessors() []Subprocessor {
	out := []Subprocessor{}
	cfg := b.cfg
	if cfg.SMTP.Addr != "" {
		host := cfg.SMTP.Addr
		if i := strings.LastIndex(host, ":"); i > 0 {
			host = host[:i]
		}
		out = append(out, Subprocessor{Name: host, Service: "SMTP relay (password reset codes, sign-in and approval notices)", Host: host, Source: "config smtp.addr"})
	}
	if s := kekScheme(cfg.Vault.KEKURI); s != vault.SchemeLocal && s != vault.SchemePKCS11 {
		out = append(out, Subprocessor{Name: schemeOf(cfg.Vault.KEKURI), Service: "key management service (wraps keysets; only 32-byte data keys cross)",
			Host: kmsHost(cfg), Source: "config vault.kek_uri"})
	}
	if cfg.Files.Backend == "s3" {
		// The SDK's default endpoint for the region when no S3-compatible endpoint is set.
		host := "s3.amazonaws.com"
		if cfg.Files.S3.Region != "" {
			host = "s3." + cfg.Files.S3.Region + ".amazonaws.com"
		}
		if u, err := url.Parse(cfg.Files.S3.Endpoint); err == nil && u.Host != "" {
			host = u.Host
		}
		out = append(out, Subprocessor{Name: "S3 bucket " + cfg.Files.S3.Bucket, Service: "object storage of encrypted files", Host: host, Source: "config files.s3"})
	}
	if u, err := url.Parse(cfg.Audit.CheckpointURL); err == nil && u.Host != "" {
		out = append(out, Subprocessor{Name: u.Host, Service: "audit checkpoint witness (signed tree heads only, no personal data)", Host: u.Host, Source: "config audit.checkpoint_url"})
	}
	if u, err := url.Parse(cfg.Auth.Breach.RangeURL); err == nil && u.Host != "" {
		out = append(out, Subprocessor{Name: u.Host, Service: "breached-password range API (5 hex digits of a SHA-1, k-anonymity)", Host: u.Host, Source: "config auth.breach.range_url"})
	}
	// The audit log names actors, subjects and client IP addresses: its shipping destinations
	// receive personal data.
	for _, d := range cfg.ShipDestinations() {
		host := d.URL // syslog: host:port
		if u, err := url.Parse(d.URL); err == nil && u.Host != "" {
			host = u.Host
		}
		out = append(out, Subprocessor{Name: d.Name, Service: "audit log shipping destination (" + d.Type + ")", Host: host, Source: "config audit.ship"})
	}
	return out
}

func kmsHost(cfg *config.Config) string {
	if cfg.Vault.KMSEndpoint != "" {
		if u, err := url.Parse(cfg.Vault.KMSEndpoint); err == nil {
			return u.Host
		}
	}
	if u, err := url.Parse(cfg.Vault.KEKURI); err == nil && u.Scheme == "hcvault" {
		return u.Host
	}
	// The providers' default endpoints: AWS KMS's regional one (the region from the key's ARN,
	// aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID), Google Cloud KMS's global one.
	if arn, ok := strings.CutPrefix(cfg.Vault.KEKURI, "aws-kms://"); ok {
		if parts := strings.Split(arn, ":"); len(parts) > 3 && parts[3] != "" {
			return "kms." + parts[3] + ".amazonaws.com"
		}
	}
	if strings.HasPrefix(cfg.Vault.KEKURI, "gcp-kms://") {
		return "cloudkms.googleapis.com"
	}
	return "the provider's regional endpoint"
}

// restoreTestLoaded reports whether a restore test loaded the backup into a database and opened
// it (recorded as loaded=true), rather than only decrypting it and checking its hashes. A record
// from before "loaded" was recorded loaded only for SQLite.
func restoreTestLoaded(o *Operation) bool {
	if v, ok := o.Details["loaded"].(bool); ok {
		return v
	}
	return o.Details["dialect"] != "postgres"
}

// detailText formats one recorded detail. Details are decoded from JSON, so every number is a
// float64: a whole one prints as an integer (bytes=1381400, not 1.3814e+06).
func detailText(v any) string {
	if f, ok := v.(float64); ok {
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return strconv.FormatInt(int64(f), 10)
		}
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// opText describes a recorded operation: when, its outcome and its details.
func opText(o *Operation) string {
	if o == nil {
		return "none recorded"
	}
	keys := make([]string, 0, len(o.Details))
	for k := range o.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+detailText(o.Details[k]))
	}
	s := fmt.Sprintf("%s at %s", o.Outcome, ts(o.RecordedAt))
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

func durDays(d time.Duration) string { return fmt.Sprintf("%d days", int(d/(24*time.Hour))) }

// redactURL drops user information and the query of a URL shown as evidence.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "unparsable URL"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
