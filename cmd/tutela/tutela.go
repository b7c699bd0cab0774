package main

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	"tutela/mfa"
	"tutela/monitor"
	"tutela/notify"
	"tutela/oidc"
	"tutela/web"

	"tutela"
	"tutela/ai/upstream"
	"tutela/audit"
	"tutela/auditship"
	"tutela/config"
	"tutela/dsr"
	"tutela/httpapi"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/identity/token"
	"tutela/internal/lazyfree"
	"tutela/jobs"
	"tutela/mail"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/tracing"
	"tutela/vault"
)

// Main wires Tutela together: configuration, logger, master key, store and HTTP server. main()
// and the tests both use it, so a test can start the whole service in-process.
type Main struct {
	Config    *config.Config
	Logger    *slog.Logger
	DB        *sqlstore.DB
	MasterKey tutela.Secret

	httpServer *http.Server
	ln         net.Listener
	// metricsServer serves /metrics on metricsLn (config metrics.addr), apart from the API; both
	// nil when metrics are off.
	metricsServer *http.Server
	metricsLn     net.Listener
	// redirectServer answers plain HTTP on redirectLn (config http.redirect_addr) with 308 to
	// https on auth.issuer's host; both nil when the redirect listener is off.
	redirectServer *http.Server
	redirectLn     net.Listener
	ring           *token.Ring
	identity       *identity.Service
	// jobs is the durable queue (e-mail); Serve runs its worker on every node.
	jobs      *jobs.Queue
	closers   []func() error
	sequencer *sqlstore.Sequencer
	// shipper ships the log to audit.ship's destinations; nil when there are none.
	shipper *auditship.Shipper
	// erasures publishes the erasure ledger off the database (docs/backup.md).
	erasures *sqlstore.ErasurePublisher
	// vault seals Tutela's stored secrets (token signing keys, TOTP seeds) under Tink keysets
	// wrapped by the key-encryption key.
	vault       *vault.Vault
	rotateEvery time.Duration
	auditVKey   string
	// signer is the audit signing key (checkpoints, erasure ledger heads, compliance reports).
	signer *audit.Signer
	// masterKeyPath is the master key file used, "" when the key came from the environment.
	masterKeyPath string
	// acceptIssuerChange (serve --accept-issuer-change) replaces the issuer recorded in the
	// database instead of refusing to start.
	acceptIssuerChange bool
	// lastPurge is when this node last ran the retention sweep; only maintenance touches it.
	lastPurge time.Time
	// lastPartitions is when this node last made sure audit_events has its partitions ahead
	// (PostgreSQL); only maintenance touches it.
	lastPartitions time.Time
	// sweepApprovals expires approval requests past their time and reminds approvers half way
	// (httpapi.Server.SweepApprovals); nil until Serve builds the API.
	sweepApprovals func(context.Context) (sqlstore.Sweep, error)
	// shareRateLimit shares the per-client request counts with the other nodes until its
	// context ends (httpapi.Server.ShareRateLimit; returns at once on SQLite); nil until Serve
	// builds the API.
	shareRateLimit func(context.Context)
	// tracer is the OpenTelemetry provider (tracing.Off unless tracing.otlp_endpoint is set),
	// given to the store, the vault and the API.
	tracer *tracing.Provider
	// monitor evaluates security alert rules over the audit log; nil when no sink is configured.
	monitor *monitor.Monitor
	// sweepIncidents sends the breach-clock reminders that are due
	// (httpapi.Server.SweepIncidents); nil until Serve builds the API.
	sweepIncidents func(context.Context) ([]sqlstore.IncidentReminder, error)
}

// startAudit loads the checkpoint signing key (0600 file in the data dir) and builds the
// sequencer that gives committed audit events their log indices and signs checkpoints.
func (m *Main) startAudit(ctx context.Context) error {
	signer, vkey, err := m.loadAuditSigner(ctx)
	if err != nil {
		return err
	}
	m.auditVKey, m.signer = vkey, signer
	opts := sqlstore.SequencerOptions{CheckpointDir: checkpointDir(m.Config), Interval: m.Config.Audit.CheckpointInterval,
		CheckpointKeepHourly: m.Config.Audit.CheckpointKeepHourly, Logger: m.Logger, Heartbeat: true}
	if u := m.Config.Audit.CheckpointURL; u != "" {
		client := outboundClient()
		opts.Publish = func(ctx context.Context, size int64, signed []byte) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(signed))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "text/plain; charset=utf-8")
			res, err := client.Do(req)
			if err != nil {
				return err
			}
			_ = res.Body.Close()
			if res.StatusCode/100 != 2 {
				return fmt.Errorf("checkpoint %d: %s answered %s", size, u, res.Status)
			}
			return nil
		}
	}
	m.sequencer = sqlstore.NewSequencer(m.DB, signer, AuditOrigin, opts)
	if err := m.startShipper(); err != nil {
		return err
	}
	m.erasures = sqlstore.NewErasurePublisher(m.DB, erasureLedgerDir(m.Config), signer, vkey)
	return nil
}

// breachChecker builds the configured breached-password sources: the built-in list (on by
// default), the offline index and the range API, each when configured. A password any of them
// knows is refused; offline sources are asked first, so a common password never reaches the API.
func (m *Main) breachChecker() (password.Checker, error) {
	b := m.Config.Auth.Breach
	var sources []password.Checker
	if b.BuiltinList {
		common, err := password.CommonPasswords()
		if err != nil {
			return nil, fmt.Errorf("built-in breach list: %w", err)
		}
		sources = append(sources, common)
	}
	if b.IndexFile != "" {
		ix, err := password.OpenIndex(b.IndexFile)
		if err != nil {
			return nil, fmt.Errorf("auth.breach.index_file: %w", err)
		}
		m.closers = append(m.closers, ix.Close)
		sources = append(sources, ix)
	}
	if b.RangeURL != "" {
		c := password.NewRangeClient(b.RangeURL, outboundClient(), b.FailOpen)
		c.Logger = m.Logger
		sources = append(sources, c)
	}
	if len(sources) == 0 {
		return nil, nil
	}
	return password.AnyOf(sources...), nil
}

// maintenance runs every minute: it rotates and reloads the access-token signing keys, so keys
// created by other nodes are picked up and rotation happens on schedule, rotates keysets that
// are due, closes access reviews whose deadline has passed, expires approval requests and
// reminds their approvers and, hourly, purges data past its retention. Every node runs it, so each step must tolerate the others running it at the same
// time.
func (m *Main) maintenance(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.ring.Rotate(ctx); err != nil {
				m.Logger.Error("rotate access-token keys", "err", err)
			}
			if m.vault != nil && m.rotateEvery > 0 {
				if ks, err := m.vault.RotateDue(ctx, m.rotateEvery); err != nil {
					m.Logger.Error("scheduled keyset rotation", "err", err)
				} else if len(ks) > 0 {
					m.Logger.Info("rotated keysets on schedule", "count", len(ks))
				}
			}
			n, err := m.DB.CloseDueAccessReviews(ctx)
			if err != nil {
				m.Logger.Error("close access reviews at their deadline", "err", err)
			}
			if n > 0 {
				m.Logger.Info("closed access reviews at their deadline", "count", n)
			}
			m.sweepApprovalsDue(ctx)
			m.sweepIncidentsDue(ctx)
			m.purgeDue(ctx, m.DB.Now())
			m.auditPartitionsDue(ctx, m.DB.Now())
		}
	}
}

// auditPartitionsEvery is how often a node makes sure audit_events has the partitions of the
// coming months (sqlstore.AuditPartitionsAhead). The first minute after start does it too.
const auditPartitionsEvery = time.Hour

// auditPartitionsDue creates audit_events' missing monthly partitions (PostgreSQL; the owner's
// audit_ensure_partitions, which the runtime role may call) unless this node did less than
// auditPartitionsEvery before now. A failure is logged and retried the next hour: inserts never
// wait for it (a row without its month's partition goes to the default partition, and is moved
// to its month when that partition is created).
func (m *Main) auditPartitionsDue(ctx context.Context, now time.Time) {
	if !m.lastPartitions.IsZero() && now.Sub(m.lastPartitions) < auditPartitionsEvery {
		return
	}
	m.lastPartitions = now
	n, err := m.DB.AuditEnsurePartitions(ctx)
	if err != nil {
		m.Logger.Error("audit partitions ahead", "err", err)
		return
	}
	if n > 0 {
		m.Logger.Info("audit partitions created", "count", n)
	}
}

// sweepApprovalsDue runs the approval sweep every minute on every node: one indexed query when
// nothing is due, and each request is expired or reminded once however many nodes sweep.
func (m *Main) sweepApprovalsDue(ctx context.Context) {
	if m.sweepApprovals == nil {
		return
	}
	sw, err := m.sweepApprovals(ctx)
	if err != nil {
		m.Logger.Error("approval sweep", "err", err)
		return
	}
	if len(sw.Expired) > 0 || len(sw.Reminders) > 0 {
		m.Logger.Info("approval sweep", "expired", len(sw.Expired), "reminded", len(sw.Reminders))
	}
}

// sweepIncidentsDue sends the due breach-clock reminders, every minute on every node: one
// indexed query when nothing is due, and each reminder goes out once however many nodes sweep.
func (m *Main) sweepIncidentsDue(ctx context.Context) {
	if m.sweepIncidents == nil {
		return
	}
	sent, err := m.sweepIncidents(ctx)
	if err != nil {
		m.Logger.Error("incident breach-clock sweep", "err", err)
		return
	}
	if len(sent) > 0 {
		m.Logger.Info("incident breach-clock sweep", "reminded", len(sent))
	}
}

// retentionEvery is how often a node sweeps expired data. Retentions are days long, so an hour
// late costs nothing, and with every node sweeping the work stays small.
const retentionEvery = time.Hour

// purgeDue runs the retention sweep (ASVS 5.0 14.2.7, docs/data.md) unless this node ran one less
// than retentionEvery before now. A failed sweep also waits the hour: it is logged, and retrying
// every minute would only repeat the error.
func (m *Main) purgeDue(ctx context.Context, now time.Time) {
	if !m.lastPurge.IsZero() && now.Sub(m.lastPurge) < retentionEvery {
		return
	}
	m.lastPurge = now
	r := m.Config.Retention
	c, err := m.DB.PurgeExpired(ctx, now, sqlstore.Retention{LoginHistory: r.LoginHistory,
		SecurityEvents: r.SecurityEvents, EndedSessions: r.EndedSessions, UsedTokens: r.UsedTokens, DeadJobs: r.DeadJobs})
	if err != nil {
		m.Logger.Error("retention purge", "err", err)
	}
	if c.Total() > 0 {
		m.Logger.Info("retention purge deleted expired rows", "rows", c.Total(), "deleted", c.String())
	}
	// Subjects whose retention ended are erased in the same hourly sweep; a run is idempotent
	// and nodes skip each other's locked rows, so every node may run it.
	run, err := m.DB.RunRetentionSchedule(ctx, sqlstore.RetentionBatch, false)
	if err != nil {
		m.Logger.Error("retention schedule", "err", err, "erased", run.Erased, "held", run.Held, "repaired", run.Repaired,
			"failed", run.Failed)
	} else if run.Erased > 0 || run.Held > 0 || run.Repaired > 0 {
		m.Logger.Info("retention schedule ran", "erased", run.Erased, "held", run.Held, "repaired", run.Repaired)
	}
}

// open loads the configuration and opens the store; with serving it also loads (or creates)
// the master key, applies migrations and opens the vault.
func open(e *env, serving bool) (*Main, error) { return openStore(e, serving, serving) }

// openStore is open; withVault false leaves the vault closed, for `tutela keys kek-rewrap`,
// whose configured KEK cannot open the keysets until the command has rewrapped them.
func openStore(e *env, serving, withVault bool) (*Main, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	m := &Main{Config: cfg, Logger: newLogger(cfg, e.stderr)}
	if m.tracer, err = m.openTracing(e.ctx); err != nil {
		return nil, err
	}
	dsn := cfg.DatabaseDSN()
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "tutela.db")
		if serving {
			if err := checkDatabaseFile(dsn, cfg.DataDir); err != nil {
				return nil, err
			}
		}
	}
	if serving || cfg.DatabaseDSN() == "" {
		// SQLite keeps its database and WAL in the data directory, serve its key files.
		if err := prepareDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if serving {
		// An existing key is checked before the database is touched; a missing one is created
		// only once the database is known to be new.
		if err := m.loadMasterKey(e.ctx, false); err != nil {
			return nil, err
		}
	}
	m.DB, err = sqlstore.Open(e.ctx, dsn, sqlstore.Options{
		MaxOpenConns:      cfg.Database.MaxOpenConns,
		MaxIdleConns:      cfg.Database.MaxIdleConns,
		ConnMaxLifetime:   cfg.Database.ConnMaxLifetime,
		ConnectTimeout:    cfg.Database.RequestTimeout,
		SQLiteSynchronous: cfg.Database.SQLiteSynchronous,
		Region:            cfg.Residency.Region,
		Tracer:            m.tracer,
		Clock:             e.clock, // nil: the system clock; tests move it
	})
	if err != nil {
		return nil, err
	}
	if serving && m.MasterKey.IsZero() {
		if err := m.loadMasterKey(e.ctx, true); err != nil {
			_ = m.DB.Close()
			return nil, err
		}
	}
	if serving {
		if err := m.DB.Migrate(e.ctx); err != nil {
			_ = m.DB.Close()
			return nil, err
		}
		// A database marked production serves no test-only configuration (deployment.go).
		if err := m.refuseTestOnly(e.ctx); err != nil {
			_ = m.DB.Close()
			return nil, err
		}
	}
	if withVault {
		// Users' personal data is sealed with the vault, so every command that serves or
		// changes data opens it here.
		if m.vault, err = m.openVault(e); err != nil {
			_ = m.DB.Close()
			return nil, err
		}
		// Migration 00018's data step: seal what an older version stored in plaintext.
		if n, err := m.DB.SealPersonalData(e.ctx); err != nil {
			_ = m.DB.Close()
			return nil, fmt.Errorf("seal users' personal data: %w", err)
		} else if n > 0 {
			m.Logger.Info("sealed users' personal data stored in plaintext by an older version", "rows", n)
		}
	}
	return m, nil
}

// utcTime writes each record's time in UTC, whatever the host's zone: logs from several nodes
// and the audit log (UTC) then line up.
func utcTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}

func newLogger(cfg *config.Config, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel(), ReplaceAttr: utcTime}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.Log.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(middleware.NewRedactingHandler(h))
}

// loadMasterKey loads the master key from TUTELA_MASTER_KEY(_FILE) or the data directory's
// master.key. A missing file is created only with create, and only beside a database that holds
// no data yet (refuseNewMasterKey); without create it is left for later.
func (m *Main) loadMasterKey(ctx context.Context, create bool) error {
	if !m.Config.MasterKey.IsZero() {
		k, err := vault.ParseMasterKey(m.Config.MasterKey.Reveal())
		if err != nil {
			return fmt.Errorf("TUTELA_MASTER_KEY: %w", err)
		}
		m.MasterKey = k
		return nil
	}
	path := filepath.Join(m.Config.DataDir, vault.MasterKeyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil
		}
		if err := m.refuseNewMasterKey(ctx, path); err != nil {
			return err
		}
	}
	m.masterKeyPath = path
	k, created, err := vault.LoadOrCreateMasterKey(path)
	if err != nil {
		return err
	}
	if created {
		m.Logger.Info("generated a new master key", "path", path)
	}
	m.Logger.Warn("the master key is a local file; production deployments should keep it in a KMS or HSM",
		"path", path)
	m.MasterKey = k
	return nil
}

// Listen builds the services and the HTTP server and binds its address.
func (m *Main) Listen(ctx context.Context) error {
	cfg := m.Config
	proxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return err
	}
	if err := m.agreeMasterKey(ctx); err != nil {
		return err
	}
	if err := m.agreeRegionKEK(ctx); err != nil {
		return err
	}
	if err := m.startAudit(ctx); err != nil {
		return err
	}
	a := cfg.Auth
	hp := password.DefaultParams()
	hp.Memory, hp.Time, hp.Threads = uint32(a.Hash.MemoryKiB), uint32(a.Hash.Time), uint8(a.Hash.Threads) // #nosec G115 -- config.Validate bounds memory_kib (<= 1 GiB), time (1-10) and threads (1-16)
	// The pepper (ASVS 4.0.3 2.4.5) lives in the vault; the keyset is created on first start
	// only, and a start whose vault cannot serve it (or that lost it) stops.
	pepper := vault.PasswordPepper{Vault: m.vault}
	if err := m.ensurePepper(ctx, pepper); err != nil {
		return err
	}
	hasher, err := password.NewPepperedHasher(hp, pepper, 0, 2*time.Second)
	if err != nil {
		return err
	}
	// Each Argon2id hash allocates its memory afresh; without headroom the collector runs every
	// two or three sign-ins under load (issue 20). GOGC in the environment is the operator's
	// choice and stands.
	if os.Getenv("GOGC") == "" {
		hasher.BoostGC(password.ServeGCBoostPercent, password.ServeGCBoostLinger)
	}
	policy := password.Policy{MinLength: a.Password.MinLength, MaxLength: a.Password.MaxLength,
		MinScore: a.Password.MinScore, History: a.Password.History}
	if err := policy.Validate(); err != nil {
		return err
	}
	breach, err := m.breachChecker()
	if err != nil {
		return err
	}
	var mailer mail.Sender
	if cfg.SMTP.Addr != "" {
		if mailer, err = mail.NewSMTPSender(mail.SMTPConfig{Addr: cfg.SMTP.Addr, From: cfg.SMTP.From,
			Username: cfg.SMTP.Username, Password: cfg.SMTPPassword, TLS: cfg.SMTP.TLS}); err != nil {
			return err
		}
	}
	// Secrets go through the vault; values the interim local sealer wrote still open, and
	// `tutela keys rewrap` moves them under the keysets.
	sealer, err := vault.NewVaultSealer(m.vault, "", vault.PurposeSigningKeys, m.MasterKey)
	if err != nil {
		return err
	}
	mfaSealer, err := vault.NewVaultSealer(m.vault, "", vault.PurposeTOTP, m.MasterKey)
	if err != nil {
		return err
	}
	// Queued payloads are new: nothing was sealed for them before the vault, so no legacy key.
	jobSealer, err := vault.NewVaultSealer(m.vault, "", vault.PurposeJobs, tutela.Secret{})
	if err != nil {
		return err
	}
	m.jobs = jobs.New(m.DB, jobSealer, jobs.Options{Log: m.Logger})
	useTLS := cfg.TLS.CertFile != ""
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return err
	}
	m.ln = ln
	issuer := a.Issuer
	if issuer == "" {
		issuer = m.BaseURL()
	}
	if err := m.agreeIssuer(ctx, issuer); err != nil {
		_ = ln.Close()
		return err
	}
	m.ring, err = token.NewRing(ctx, token.Config{Issuer: issuer, Audience: append([]string{"tutela", oidc.UserinfoAudience}, a.Resources...),
		TTL: a.AccessTokenTTL, Alg: token.Alg(a.TokenAlg), Algs: token.ParseAlgs(a.TokenAlgs), RotateEvery: a.KeyRotation},
		identity.KeyStore{DB: m.DB}, sealer)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("access-token keys: %w", err)
	}
	if err := m.ring.Rotate(ctx); err != nil {
		_ = ln.Close()
		return fmt.Errorf("access-token keys: %w", err)
	}
	rp, err := url.Parse(issuer)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("auth.issuer: %w", err)
	}
	rpID, origins := rp.Hostname(), []string{strings.TrimRight(issuer, "/")}
	if net.ParseIP(rpID) != nil {
		// WebAuthn relying-party IDs are domains, never IP addresses: on a development
		// listener passkeys work through http://localhost only.
		rpID = "localhost"
		origins = append(origins, rp.Scheme+"://localhost:"+rp.Port())
		m.Logger.Warn("auth.issuer is an IP address: passkeys work only via localhost; set auth.issuer to the public https URL")
	}
	mfaSvc, err := mfa.New(m.DB, mfaSealer, nil, mfa.WebAuthnConfig{RPID: rpID, RPDisplayName: "Tutela", RPOrigins: origins})
	if err != nil {
		_ = ln.Close()
		return err
	}
	m.identity = identity.New(identity.Deps{DB: m.DB, Hasher: hasher, Policy: policy, Breach: breach, Tokens: m.ring,
		MFA: mfaSvc, Mailer: mailer, Jobs: m.jobs, PublicURL: issuer, Log: m.Logger},
		identity.Config{SessionIdle: a.SessionIdle, SessionAbsolute: a.SessionAbsolute, BreachCheckAtLogin: a.Breach.CheckAtLogin,
			MFARoles: a.MFARoles, MFAAllUsers: a.MFAAllUsers, Resources: a.Resources, ResetCodeTTL: a.ResetCodeTTL})
	maskKey, err := hkdf.Key(sha256.New, m.MasterKey.Bytes(), nil, "tutela field masking v1", 32)
	if err != nil {
		_ = ln.Close()
		return err
	}
	ids := m.identity
	// Data-subject request deadlines (issue 14): reminders and overdue notices go through the
	// durable queue and the identity service's mail path. Validate has checked the policy.
	dsrPolicy, _ := cfg.DSRPolicy()
	(&dsr.Notifier{DB: m.DB, Mail: ids, Log: m.Logger}).Register(m.jobs)
	// Event notifications (issue 18): e-mail to users and signed webhook deliveries, queued by
	// notify.Enqueue in the transaction of the change they report. Deliveries reach only public
	// addresses (no setting widens that).
	if err := notify.Register(m.jobs, m.DB, mailer, nil, notify.Options{Log: m.Logger}); err != nil {
		_ = ln.Close()
		return err
	}
	// Security monitoring (issue 19): alert rules over the sequenced audit log, delivered to the
	// configured sinks through the queue.
	if err := m.startMonitoring(ctx, cfg); err != nil {
		_ = ln.Close()
		return err
	}
	// The OpenID Provider library logs through slog's default logger: make it this one, so
	// its lines are JSON like every other.
	slog.SetDefault(m.Logger)
	// Each tenant's OpenID Provider (issue 15) at {issuer}/t/{slug}.
	provider, err := oidc.New(oidc.Deps{DB: m.DB, Identity: ids, Tokens: m.ring, PublicURL: issuer, Log: m.Logger,
		DBTimeout: cfg.Database.RequestTimeout})
	if err != nil {
		_ = ln.Close()
		return err
	}
	// The hosted pages (sign-in, consent, account): every node derives the same CSRF key from
	// the master key, so a form rendered by one node can be posted to another.
	csrfKey, err := hkdf.Key(sha256.New, m.MasterKey.Bytes(), nil, "tutela hosted pages csrf v1", 32)
	if err != nil {
		_ = ln.Close()
		return err
	}
	// Back-channel logout: every client session a revocation ends queues a signed logout token
	// for its relying party, in the revoking transaction.
	(&oidc.BackchannelLogout{DB: m.DB, Queue: m.jobs, Signer: provider, PublicURL: issuer}).Register()
	fileSvc, err := m.fileIntake(ctx, cfg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	hosted := http.NewServeMux()
	provider.Register(hosted)
	web.New(web.Deps{DB: m.DB, Identity: ids, Flow: provider, Log: m.Logger, PublicURL: issuer, TLS: cfg.ServedOverTLS(),
		CSRFKey: csrfKey}).Routes(hosted)
	api := httpapi.New(httpapi.Deps{
		Hosted: hosted, HostedPatterns: append(slices.Clone(oidc.Patterns), web.Pattern),
		DB: m.DB, Identity: ids, Logger: m.Logger,
		TLS: cfg.ServedOverTLS(), TrustedProxies: proxies, BodyLimit: cfg.HTTP.BodyLimit,
		RateRPS: cfg.HTTP.RateLimit.RPS, RateBurst: cfg.HTTP.RateLimit.Burst, RateShareEvery: cfg.HTTP.RateLimit.ShareEvery,
		AuditVerifierKey: m.auditVKey, MaskKey: maskKey, EnforceStepUp: true, Keys: m.vault, MetricsToken: cfg.MetricsToken,
		DBTimeout: cfg.Database.RequestTimeout, DSR: dsrPolicy, UnmergeWindow: cfg.Privacy.UnmergeWindow,
		AI:    upstream.New(upstream.Options{PrivateNetworks: cfg.AI.Prefixes()}),
		Files: fileSvc, FileTransferTimeout: cfg.Files.TransferTimeout, MaxConcurrentUploads: cfg.Files.MaxConcurrentUploads,
		Tracer: m.tracer, TrustTraceparent: cfg.Tracing.TrustTraceparent,
		Compliance: &httpapi.ComplianceSource{Config: cfg, Signer: m.signer, Runtime: m.complianceRuntime()},
	})
	m.sweepApprovals = api.SweepApprovals
	m.shareRateLimit = api.ShareRateLimit
	m.sweepIncidents = api.SweepIncidents
	m.httpServer = m.newHTTPServer(api, 64<<10)
	if useTLS {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		m.httpServer.TLSConfig = TLSConfig(cfg.TLS.MinTLSVersion(), cert)
		ln = tls.NewListener(ln, m.httpServer.TLSConfig)
	}
	m.ln = ln
	if !cfg.Metrics.Off() {
		mln, err := net.Listen("tcp", cfg.Metrics.Addr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("metrics.addr: %w", err)
		}
		m.metricsServer = m.newHTTPServer(api.MetricsHandler(), 16<<10)
		if useTLS {
			// A copy: each http.Server adjusts its own TLS config when it starts serving.
			m.metricsServer.TLSConfig = m.httpServer.TLSConfig.Clone()
			mln = tls.NewListener(mln, m.metricsServer.TLSConfig)
		}
		m.metricsLn = mln
	}
	if !cfg.HTTP.RedirectOff() {
		if err := m.listenRedirect(); err != nil {
			_ = ln.Close()
			if m.metricsLn != nil {
				_ = m.metricsLn.Close()
			}
			return err
		}
	}
	return nil
}

// TLSConfig returns the server TLS settings: TLS 1.3 by default; when 1.2 is allowed, only
// forward-secret AEAD suites (ASVS 12.1.2). TLS 1.3 suites are not configurable in Go and are

// newHTTPServer is one listener's server with the configured timeouts.
func (m *Main) newHTTPServer(h http.Handler, maxHeaderBytes int) *http.Server {
	cfg := m.Config.HTTP
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
}

// all AEAD.
func TLSConfig(minVersion uint16, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   minVersion,
		Certificates: []tls.Certificate{cert},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// Addr is the bound address (useful with port 0).
func (m *Main) Addr() string { return m.ln.Addr().String() }

// BaseURL is the URL the server can be reached at, as configured.
func (m *Main) BaseURL() string {
	scheme := "http"
	if m.Config.TLS.CertFile != "" {
		scheme = "https"
	}
	addr := m.Config.HTTP.Addr
	if m.ln != nil {
		addr = m.Addr()
	}
	return scheme + "://" + addr
}

// MetricsAddr is the bound metrics address, or "" when metrics are off.
func (m *Main) MetricsAddr() string {
	if m.metricsLn == nil {
		return ""
	}
	return m.metricsLn.Addr().String()
}

// Serve serves until ctx is cancelled, then shuts down gracefully: stop accepting, let
// in-flight requests finish (up to the shutdown timeout), let running jobs finish (up to the
// queue's grace; those cut off are released, not failed) and return. If the listener fails,
// Serve stops the background work the same way and returns the error.
func (m *Main) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- m.httpServer.Serve(m.ln) }()
	if m.metricsServer != nil {
		go func() {
			if err := m.metricsServer.Serve(m.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.Logger.Error("metrics listener stopped", "err", err)
			}
		}()
		defer m.metricsServer.Close() // scrapes need no draining
	}
	if m.redirectServer != nil {
		go func() {
			if err := m.redirectServer.Serve(m.redirectLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.Logger.Error("redirect listener stopped", "err", err)
			}
		}()
		defer m.redirectServer.Close() // a redirect holds nothing worth draining
	}
	// Background work runs under its own context, cancelled on every way out of Serve before
	// it is waited for: a failed listener does not cancel ctx, and waiting on ctx alone would
	// never return.
	bctx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	// Deferred first, so it runs last: the sequencer and the worker stop before the store
	// closes, and running jobs record their outcome.
	defer background.Wait()
	defer stopBackground()
	go m.maintenance(bctx)
	// The authentication caches trust nothing until this watcher has polled (docs/caching.md).
	background.Go(func() { m.DB.AuthEpochs().Run(bctx, sqlstore.AuthEpochPollInterval) })
	background.Go(func() {
		if err := m.sequencer.Run(bctx); err != nil {
			m.Logger.Error("audit sequencer stopped", "err", err)
		}
	})
	background.Go(func() { m.jobs.Run(bctx) })
	if m.shareRateLimit != nil {
		background.Go(func() { m.shareRateLimit(bctx) })
	}
	if m.monitor != nil {
		background.Go(func() { m.monitor.Run(bctx) })
	}
	if m.shipper != nil {
		background.Go(func() { _ = m.shipper.Run(bctx) })
	}
	background.Go(func() {
		m.erasures.Run(bctx, max(m.Config.Audit.CheckpointInterval, time.Second), func(err error) {
			m.Logger.Error("erasure ledger not published; retrying", "err", err)
		})
	})
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	m.Logger.Info("shutting down: draining in-flight requests", "timeout", m.Config.HTTP.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), m.Config.HTTP.ShutdownTimeout)
	defer cancel()
	err := m.httpServer.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Close releases the store and other resources. Serve has already waited for background work;
// queued jobs stay in the store for the next start.
func (m *Main) Close() error {
	err := m.drainAudit()
	if m.erasures != nil {
		// A last full round: an erasure committed during shutdown is published before the
		// store closes, not only at the next start.
		if _, perr := m.erasures.Publish(context.Background(), true); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	for _, c := range m.closers {
		err = errors.Join(err, c())
	}
	if m.DB != nil {
		err = errors.Join(err, m.DB.Close())
	}
	return err
}

type serveCmd struct {
	AcceptIssuerChange bool `help:"Replace the auth.issuer recorded in the database with this node's (the public URL changed on purpose; tokens issued before are refused)."`
}

func (c serveCmd) Run(e *env) error {
	start := time.Now()
	m, err := open(e, true)
	if err != nil {
		return err
	}
	defer m.Close()
	// The vault opens first: a wrong key-encryption key stops the start before anything is
	// written.
	if m.vault, err = m.openVault(e); err != nil {
		return err
	}
	m.rotateEvery = m.Config.Vault.RotateEvery
	m.acceptIssuerChange = c.AcceptIssuerChange
	if err := m.Listen(e.ctx); err != nil {
		return err
	}
	for _, w := range m.Config.Warnings() {
		m.Logger.Warn(w)
	}
	if m.Config.TLS.CertFile == "" {
		m.Logger.Warn("serving plaintext HTTP: only safe on loopback or behind a TLS-terminating proxy",
			"allow_plaintext", m.Config.HTTP.AllowPlaintext)
	}
	if bypass, err := m.DB.BypassesRLS(e.ctx); err != nil {
		m.Logger.Warn("cannot tell whether the database role bypasses row-level security", "err", err)
	} else if bypass {
		m.Logger.Warn("the database role is a superuser or has BYPASSRLS: row-level security between tenants is not " +
			"enforced; serve with a runtime role (docs/audit.md) and migrate as the owner")
	}
	if reexecErr != nil {
		m.Logger.Warn("could not re-execute with lazily freed memory (GODEBUG=madvdontneed=0); sign-ins fault "+
			"their hashing memory back in (internal/lazyfree)", "err", reexecErr)
	}
	m.Logger.Info("tutela ready", "addr", m.Addr(), "metrics_addr", m.MetricsAddr(),
		"redirect_addr", m.RedirectAddr(), "store", string(m.DB.Dialect()),
		"version", tutela.Version, "startup_ms", time.Since(start).Milliseconds(), "lazy_free", lazyfree.Enabled())
	go releaseStartupMemory()
	if err := m.Serve(e.ctx); err != nil {
		return err
	}
	m.Logger.Info("stopped")
	return nil
}

// releaseStartupMemory returns the garbage of start-up to the operating system once the node is
// ready. Start-up allocates far more than a node keeps (goose parses migrations with 4 MiB
// buffers from a sync.Pool, key and template set-up, the first queries), and an idle node runs
// no collection that would free it: without this the idle RSS stays tens of MB above the live
// heap until traffic arrives. Two collections, because pooled buffers survive the first in the
// pool's victim cache. It runs once, beside the first requests; GOGC and GOMEMLIMIT are left as
// the operator sets them.
func releaseStartupMemory() {
	debug.FreeOSMemory()
	debug.FreeOSMemory()
}

// checkpointDir is where signed checkpoints are published: audit.checkpoint_dir, or
// <data_dir>/checkpoints.
func checkpointDir(cfg *config.Config) string {
	if cfg.Audit.CheckpointDir != "" {
		return cfg.Audit.CheckpointDir
	}
	return filepath.Join(cfg.DataDir, auditCheckpointDir)
}

// erasureLedgerDir is where the erasure ledger is published: privacy.erasure_ledger_dir, or
// <data_dir>/erasures.
func erasureLedgerDir(cfg *config.Config) string {
	if cfg.Privacy.ErasureLedgerDir != "" {
		return cfg.Privacy.ErasureLedgerDir
	}
	return filepath.Join(cfg.DataDir, "erasures")
}

// outboundClient is the HTTP client for the endpoints the configuration names (breach range API,
// checkpoint witness): a short timeout, and no redirects, so an answer cannot send a request, or
// a POST body, to another host or downgrade it to plain HTTP (ASVS 15.3.2).
func outboundClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
