package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"text/tabwriter"

	"github.com/alecthomas/kong"

	"tutela"
	"tutela/config"
	"tutela/identity"
	"tutela/sqlstore"
)

// cli is the command grammar.
type cli struct {
	Config string `help:"Path to tutela.yaml." type:"path" placeholder:"FILE"`

	Serve      serveCmd      `cmd:"" help:"Run the HTTP server."`
	Migrate    migrateCmd    `cmd:"" help:"Database schema migrations."`
	ConfigCmd  configCmd     `cmd:"" name:"config" help:"Configuration tools."`
	Bootstrap  bootstrapCmd  `cmd:"" help:"Create the first platform super-admin (once)."`
	Recover    recoverCmd    `cmd:"" help:"Host-only recovery: a new super-admin when every one is lost."`
	Audit      auditCmd      `cmd:"" help:"Tamper-evident audit log: verify, export, prune, sequence, key."`
	Breach     breachCmd     `cmd:"" help:"Breached-password index for deployments without internet."`
	Keys       keysCmd       `cmd:"" help:"Data-encryption keys: list, rotate, rewrap, retire, KEK rotation."`
	Backup     backupCmd     `cmd:"" help:"Encrypted backups (age): create, restore."`
	Jobs       jobsCmd       `cmd:"" help:"The durable job queue: dead jobs."`
	Privacy    privacyCmd    `cmd:"" help:"Privacy vault: the retention schedule, records of processing, sub-processors."`
	Export     exportCmd     `cmd:"" help:"Write an anonymized copy for staging (--anonymize)."`
	SA         saCmd         `cmd:"" name:"service-account" help:"Service accounts (integration clients)."`
	Client     clientCmd     `cmd:"" help:"OpenID clients (relying parties) of a tenant: create, list, rotate-secret, disable, enable, delete."`
	AI         aiCmd         `cmd:"" name:"ai" help:"The AI gateway's configuration of a tenant: providers, their API keys, models, purposes, settings."`
	Deployment deploymentCmd `cmd:"" help:"The deployment's environment marker: mark-production."`
	Compliance complianceCmd `cmd:"" help:"Compliance report (signed), its verification, and document templates filled from it."`
	Version    versionCmd    `cmd:"" help:"Print the version."`
	Health     healthCmd     `cmd:"" help:"Probe this node's own listener (/healthz or /readyz) on loopback: a container health check."`
	Loadgen    loadgenCmd    `cmd:"" help:"Send mixed traffic at fixed rates to a running server on this machine; report throughput, latency and errors."`
}

// env is what every command gets: its streams and the process environment, injected so tests
// run commands in-process.
type env struct {
	ctx     context.Context
	environ []string
	// stdin is where a secret is read from (tutela ai key add), never argv, which other users
	// see in ps; nil reads nothing.
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	cfgPath string
	// clock is the vault's clock (nil: the system clock); tests move it past vault.cache_ttl
	// between a rotation and its rewrap or retire.
	clock tutela.Clock
}

// loadConfig loads and validates the configuration, printing every problem at once.
func (e *env) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(e.cfgPath, e.environ)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		var p *config.Problems
		if errors.As(err, &p) {
			fmt.Fprintln(e.stderr, "configuration problems:")
			for _, s := range p.List {
				fmt.Fprintln(e.stderr, "  -", s)
			}
			return nil, errReported
		}
		return nil, err
	}
	return cfg, nil
}

// errReported means the command already told the user what went wrong.
var errReported = errors.New("reported")

// run parses args and runs the command, returning the process exit code.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	return runEnv(args, &env{ctx: ctx, environ: environ, stdin: os.Stdin, stdout: stdout, stderr: stderr})
}

// runEnv is run with the environment given whole, so tests can set its clock and still go
// through the command grammar (the runbook rehearsals type the commands operators type).
func runEnv(args []string, e *env) int {
	stdout, stderr := e.stdout, e.stderr
	var c cli
	exit := -1
	parser, err := kong.New(&c, kong.Name("tutela"),
		kong.Description("Tutela: the security and privacy core for organisations holding sensitive personal data."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code }),
		kong.UsageOnError())
	if err != nil {
		fmt.Fprintln(stderr, "tutela:", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 { // --help and friends
		return exit
	}
	if err != nil {
		fmt.Fprintln(stderr, "tutela:", err)
		return 2
	}
	e.cfgPath = c.Config
	if err := kctx.Run(e); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(stderr, "tutela:", clientMessage(err))
		}
		return 1
	}
	return 0
}

// clientMessage prints tutela errors by their safe message and anything else in full (CLI
// errors are for the operator running the command).
func clientMessage(err error) string {
	var te *tutela.Error
	if errors.As(err, &te) && te.Code != tutela.EINTERNAL {
		return te.Message
	}
	return err.Error()
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	fmt.Fprintf(e.stdout, "tutela %s (%s %s/%s)\n", tutela.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

type configCmd struct {
	Check configCheckCmd `cmd:"" help:"Validate the configuration; print every problem at once (exit 1) or the effective configuration."`
}

type configCheckCmd struct{}

func (configCheckCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	for _, w := range cfg.Deviations() {
		fmt.Fprintln(e.stderr, "warning: deviation from a default protection:", w)
	}
	for _, w := range cfg.TestOnly() {
		fmt.Fprintln(e.stderr, "warning: test-only setting (a database marked production refuses to serve with it):", w)
	}
	fmt.Fprintln(e.stdout, "configuration OK; effective values (secrets redacted):")
	fmt.Fprint(e.stdout, cfg.String())
	return nil
}

type migrateCmd struct {
	Up     migrateUpCmd     `cmd:"" help:"Apply pending migrations."`
	Status migrateStatusCmd `cmd:"" help:"List migrations and whether each is applied."`
}

type migrateUpCmd struct{}

func (migrateUpCmd) Run(e *env) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.DB.Migrate(e.ctx); err != nil {
		return err
	}
	// PostgreSQL: the audit_events partitions of this month and the next ones (nodes keep them
	// ahead hourly; an upgrade creates them at once).
	if _, err := m.DB.AuditEnsurePartitions(e.ctx); err != nil {
		return fmt.Errorf("audit partitions: %w", err)
	}
	fmt.Fprintln(e.stdout, "migrations applied")
	return nil
}

type migrateStatusCmd struct{}

func (migrateStatusCmd) Run(e *env) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	st, err := m.DB.MigrationStatus(e.ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	for _, s := range st {
		applied := "pending"
		if !s.AppliedAt.IsZero() {
			applied = s.AppliedAt.Format("2006-01-02 15:04:05Z")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Version, s.Name, applied)
	}
	return tw.Flush()
}

type bootstrapCmd struct {
	Tenant string `required:"" help:"Slug of the tenant the super-admin belongs to (created if missing)."`
	Email  string `required:"" help:"E-mail address of the first super-admin."`
	Region string `help:"Data region of the tenant, when it is created (default: residency.region, or \"default\" on a node bound to no region)."`
}

func (b bootstrapCmd) Run(e *env) error {
	m, err := open(e, true)
	if err != nil {
		return err
	}
	defer m.Close()
	region := b.Region
	if region == "" {
		region = cmp.Or(m.Config.Residency.Region, sqlstore.DefaultRegion)
	}
	res, err := identity.Bootstrap(e.ctx, m.DB, b.Tenant, b.Email, region)
	if err != nil {
		return err
	}
	if res.TenantCreated {
		fmt.Fprintf(e.stdout, "Created tenant %q.\n", res.Tenant.Slug)
	}
	fmt.Fprintf(e.stdout, "Created super-admin %s in tenant %q.\n\n", res.User.Email, res.Tenant.Slug)
	fmt.Fprintf(e.stdout, "One-time setup token (shown once, valid until %s):\n\n    %s\n\n",
		res.ExpiresAt.Format("2006-01-02 15:04:05 UTC"), res.Token.Reveal())
	fmt.Fprintf(e.stdout, "Exchange it for a password:\n\n    curl -X POST %s/v1/auth/setup -H 'Content-Type: application/json' \\\n"+
		"      -d '{\"token\":\"<token>\",\"password\":\"<your password>\"}'\n", m.BaseURL())
	return nil
}
