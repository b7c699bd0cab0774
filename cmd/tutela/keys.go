package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/mfa"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/vault"
)

// kekConfig is the configured key-encryption key (vault.* and its secrets); uri replaces
// vault.kek_uri when not empty.
func (m *Main) kekConfig(uri string, masterKey tutela.Secret) vault.KEKConfig {
	v := m.Config.Vault
	if uri == "" {
		uri = v.KEKURI
	}
	return vault.KEKConfig{URI: uri, MasterKey: masterKey, PKCS11Module: v.PKCS11Module, PKCS11PIN: m.Config.HSMPIN,
		KMSEndpoint: v.KMSEndpoint, VaultToken: m.Config.VaultToken, VaultCACert: v.HCVaultCAFile}
}

// openVault opens the KEK the configuration names and the vault over the store; with the wrong
// KEK it fails before anything is written. Serve should call it right after migrations.
//
// The store gets the vault too (users' personal data is sealed with it); a second call returns
// the vault already open.
func (m *Main) openVault(e *env) (*vault.Vault, error) {
	if m.vault != nil {
		return m.vault, nil
	}
	kek, err := vault.OpenKEK(e.ctx, m.kekConfig("", m.MasterKey))
	if err != nil {
		return nil, fmt.Errorf("vault.kek_uri: %w", err)
	}
	if c, ok := kek.(io.Closer); ok {
		m.closers = append(m.closers, c.Close)
	}
	v, err := vault.New(e.ctx, kek, sqlstore.KeysetStore{DB: m.DB}, vault.Options{CacheTTL: m.Config.Vault.CacheTTL, Clock: e.clock,
		Tracer: m.tracer})
	if err != nil {
		return nil, m.wrongKEK(err)
	}
	m.DB.SetVault(v)
	return v, nil
}

type keysCmd struct {
	List        keysListCmd        `cmd:"" help:"List keysets: IDs, purposes, dates and where the KEK lives (never key material)."`
	Rotate      keysRotateCmd      `cmd:"" help:"Add a new primary key for new writes; old keys keep decrypting."`
	Rewrap      keysRewrapCmd      `cmd:"" help:"Re-encrypt stored ciphertexts under the primary keys, in batches (resumable); refused until vault.cache_ttl after a rotation."`
	Retire      keysRetireCmd      `cmd:"" help:"Destroy every non-primary key of a keyset (refused while old ciphertexts remain, and until vault.cache_ttl after a rotation)."`
	KEKRewrap   keysKEKRewrapCmd   `cmd:"" name:"kek-rewrap" help:"Rewrap every keyset from an old KEK to the configured one (KEK rotation)."`
	HSMGenerate keysHSMGenerateCmd `cmd:"" name:"hsm-generate" help:"Create a non-extractable AES-256 KEK in a PKCS#11 token."`
}

// openKeys opens the store (migrated), the master key and the vault.
func openKeys(e *env) (*Main, *vault.Vault, error) {
	m, err := open(e, true)
	if err != nil {
		return nil, nil, err
	}
	v, err := m.openVault(e)
	if err != nil {
		_ = m.Close()
		return nil, nil, err
	}
	return m, v, nil
}

type keysListCmd struct {
	JSON bool `help:"Print JSON (the GET /v1/keys view)."`
}

func (c keysListCmd) Run(e *env) error {
	m, v, err := openKeys(e)
	if err != nil {
		return err
	}
	defer m.Close()
	views, err := v.Keys(e.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"kek_uri": v.KEKURI(), "keysets": views})
	}
	fmt.Fprintf(e.stdout, "KEK: %s\n", v.KEKURI())
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEYSET\tTENANT\tPURPOSE\tALGORITHM\tKEYS (primary*)\tCREATED\tROTATED")
	for _, kv := range views {
		var ids []string
		for _, k := range kv.Keys {
			s := fmt.Sprint(k.ID)
			if k.Primary {
				s += "*"
			}
			ids = append(ids, s)
		}
		tenant, rotated := kv.TenantID, "-"
		if tenant == "" {
			tenant = "(platform)"
		}
		if !kv.RotatedAt.IsZero() {
			rotated = kv.RotatedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", kv.KeysetID, tenant, kv.Purpose, kv.Algorithm,
			strings.Join(ids, ","), kv.CreatedAt.Format(time.RFC3339), rotated)
	}
	return tw.Flush()
}

type keysRotateCmd struct {
	Purpose string `help:"Rotate only keysets of this purpose (default: every keyset)."`
	Tenant  string `help:"Rotate only this tenant's keysets (tenant ID or slug; \"platform\" for the platform's)."`
}

// resolveTenant turns a --tenant value into the tenant ID keysets are stored under: "platform"
// is the platform (""), anything else a tenant ID or slug that must exist. An unknown tenant is
// an error, never an empty selection that reports success.
func resolveTenant(ctx context.Context, db *sqlstore.DB, tenant string) (string, error) {
	if tenant == "platform" {
		return "", nil
	}
	var id string
	err := db.View(ctx, func(tx *sqlstore.Tx) error {
		var t *tutela.Tenant
		var err error
		if tutela.ValidID(tenant) {
			t, err = tx.Tenant(ctx, tenant)
		} else {
			t, err = tx.TenantBySlug(ctx, tenant)
		}
		if err != nil {
			return err
		}
		id = t.ID
		return nil
	})
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return "", fmt.Errorf("--tenant %q: no such tenant (give a tenant ID or slug, or \"platform\")", tenant)
	}
	return id, err
}

// matches selects a keyset by purpose ("" any) and tenant (all false: any; else the tenant ID,
// "" for the platform).
func matches(ks vault.KeyView, purpose string, all bool, tenantID string) bool {
	if purpose != "" && ks.Purpose != purpose {
		return false
	}
	return all || ks.TenantID == tenantID
}

func (c keysRotateCmd) Run(e *env) error {
	m, v, err := openKeys(e)
	if err != nil {
		return err
	}
	defer m.Close()
	tenantID, all := "", c.Tenant == ""
	if !all {
		if tenantID, err = resolveTenant(e.ctx, m.DB, c.Tenant); err != nil {
			return err
		}
	}
	views, err := v.Keys(e.ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, kv := range views {
		if !matches(kv, c.Purpose, all, tenantID) {
			continue
		}
		ks, err := v.Rotate(e.ctx, kv.TenantID, kv.Purpose)
		if err != nil {
			return err
		}
		for _, k := range ks.Keys {
			if k.Primary {
				fmt.Fprintf(e.stdout, "rotated keyset %s (%s): new primary key %d\n", ks.ID, ks.Purpose, k.ID)
			}
		}
		n++
	}
	if n == 0 && c.Purpose == vault.PurposePasswordPepper {
		// Never made here: stored hashes may name keys of a lost pepper keyset, and a new one
		// would fail every one of them. serve makes it when no stored hash needs another.
		return fmt.Errorf("the password_pepper keyset does not exist: `tutela serve` creates it when no stored " +
			"password hash names a pepper key; if hashes do, restore the database (keysets table included) from a backup")
	}
	if n == 0 && c.Purpose != "" && tenantID == "" {
		// A platform purpose not used yet: rotating creates it with a first key and rotates.
		if _, err := v.Rotate(e.ctx, "", c.Purpose); err != nil {
			return err
		}
		n++
	}
	wait := "run `tutela keys rewrap` to re-encrypt existing data"
	if n > 0 {
		// Every node keeps its cached keysets for vault.cache_ttl: rewrap and retire wait for that.
		wait = fmt.Sprintf("after %s (vault.cache_ttl plus %s, when every node uses the new keys) run `tutela keys rewrap` "+
			"to re-encrypt existing data, then `tutela keys retire`", v.CacheTTL()+vault.RotationSettleMargin, vault.RotationSettleMargin)
	}
	fmt.Fprintf(e.stdout, "%d keyset(s) rotated; %s\n", n, wait)
	return nil
}

// rewrapSource is a place holding vault ciphertexts and the keyset purpose they are sealed under.
type rewrapSource struct {
	purpose string
	vault.RewrapSource
}

// rewrapSources lists every place holding vault ciphertexts. A new encrypted column adds its
// source here; `keys retire` refuses a purpose no source covers, since nothing could prove its
// old ciphertexts are gone.
func (m *Main) rewrapSources() []rewrapSource {
	db := m.DB
	srcs := []rewrapSource{
		{vault.PurposeSigningKeys, sqlstore.SigningKeysSource(db)},
		{vault.PurposeTOTP, mfa.SeedSource(db)},
		{vault.PurposeAuditKey, audit.KeyFileSource{Path: filepath.Join(m.Config.DataDir, audit.KeyFile), Origin: AuditOrigin,
			Record: func(ctx context.Context) error {
				return db.Update(ctx, func(tx *sqlstore.Tx) error {
					return tx.Record(ctx, "key.rewrap", "", "file", audit.KeyFile, "", map[string]any{"rows": 1})
				})
			}}},
		// Privacy vault (issue 13). person_keys first: the digest sources open person keys.
		{vault.PurposePersonKeys, sqlstore.PersonKeysSource(db)},
		{vault.PurposeBlindIndex, sqlstore.SubjectIndexSource(db)},
		{vault.PurposeBlindIndex, sqlstore.UserEmailSource(db)},
		{vault.PurposeTokens, sqlstore.TokenDigestSource(db)},
		// AI gateway (issue 16).
		{vault.PurposeAIKeys, sqlstore.AIKeysSource(db)},
		// Webhook signing secrets (issue 18).
		{vault.PurposeWebhooks, sqlstore.WebhookSecretsSource(db)},
	}
	for _, src := range sqlstore.FilesSources(db) { // safe file intake (issue 17)
		srcs = append(srcs, rewrapSource{vault.PurposeFiles, src})
	}
	// Download-link tokens are never stored: retiring the old key revokes the links it signed.
	srcs = append(srcs, rewrapSource{vault.PurposeFileLinks, sqlstore.FileLinkKeysSource()})
	// Referral tokens neither (issue 18): retiring the old key ends the referrals it signed.
	srcs = append(srcs, rewrapSource{vault.PurposeReferrals, sqlstore.ReferralKeysSource()})
	for _, src := range sqlstore.PersonalDataSources(db) {
		srcs = append(srcs, rewrapSource{vault.PurposePersonalData, src})
	}
	return srcs
}

type keysRewrapCmd struct {
	Batch  int    `default:"500" help:"Rows per transaction."`
	Source string `help:"Only this table (default: all)."`
	After  string `help:"Resume after this row ID (printed by an interrupted run)."`
}

func (c keysRewrapCmd) Run(e *env) error {
	m, v, err := openKeys(e)
	if err != nil {
		return err
	}
	defer m.Close()
	legacy, err := vault.NewLocalSealer(m.MasterKey)
	if err != nil {
		return err
	}
	for _, src := range m.rewrapSources() {
		if c.Source != "" && src.Name() != c.Source {
			continue
		}
		p, err := v.Rewrap(e.ctx, src, vault.RewrapOptions{BatchSize: c.Batch, After: c.After, Legacy: legacy,
			Progress: func(p vault.RewrapProgress) {
				fmt.Fprintf(e.stdout, "%s: %d rows checked, %d re-encrypted (resume with --after %s)\n", p.Source, p.Seen, p.Rewrapped, p.After)
			}})
		if err != nil {
			return fmt.Errorf("%w (resume with --source %s --after %q)", err, p.Source, p.After)
		}
		fmt.Fprintf(e.stdout, "%s: done, %d rows checked, %d re-encrypted\n", p.Source, p.Seen, p.Rewrapped)
		if p.Stuck > 0 {
			fmt.Fprintf(e.stdout, "%s: %d value(s) under old keys cannot be rewrapped (append-only); they leave with `tutela audit prune`, "+
				"and their keys cannot be retired until then\n", p.Source, p.Stuck)
		}
	}
	return nil
}

type keysRetireCmd struct {
	Purpose string `required:"" help:"Keyset purpose."`
	Tenant  string `help:"Tenant ID or slug (default: the platform)."`
}

func (c keysRetireCmd) Run(e *env) error {
	m, v, err := openKeys(e)
	if err != nil {
		return err
	}
	defer m.Close()
	tenant := ""
	if c.Tenant != "" {
		if tenant, err = resolveTenant(e.ctx, m.DB, c.Tenant); err != nil {
			return err
		}
	}
	// The keyset must have settled before the scans below begin (RetireScannedAt).
	scanStart := time.Now()
	if e.clock != nil {
		scanStart = e.clock()
	}
	covered := false
	if c.Purpose == vault.PurposePasswordPepper {
		// Password hashes cannot be rewrapped: a hash moves to the new pepper key only when
		// its user next signs in (or the password is reset), so retiring waits for that.
		if tenant != "" {
			return fmt.Errorf("the password pepper is a platform keyset; retire it without --tenant")
		}
		n, err := outdatedPepperedHashes(e.ctx, m.DB, v)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%d stored password hash(es) still use an old pepper key; they move to the new key at each "+
				"user's next sign-in or password reset; not retiring", n)
		}
		covered = true
	}
	for _, src := range m.rewrapSources() {
		if src.purpose != c.Purpose {
			continue
		}
		covered = true
		n, err := v.Outdated(e.ctx, src, tenant, c.Purpose)
		if err != nil {
			return err
		}
		if n > 0 && src.Name() == "audit_events" {
			return fmt.Errorf("audit_events still holds %d sealed value(s) under old keys; the audit log is append-only, so they "+
				"cannot be rewrapped and leave only through `tutela audit prune` (retention); not retiring", n)
		}
		if n > 0 {
			what := "ciphertext(s)"
			if vault.KindOf(c.Purpose) == vault.KindPRF {
				what = "digest(s)"
			}
			return fmt.Errorf("%s still holds %d %s under old keys; run `tutela keys rewrap` first", src.Name(), n, what)
		}
	}
	if !covered {
		return fmt.Errorf("no rewrap source covers purpose %q, so nothing can prove its old ciphertexts are gone; not retiring", c.Purpose)
	}
	ks, err := v.RetireScannedAt(e.ctx, tenant, c.Purpose, scanStart)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "keyset %s (%s): old keys destroyed, %d key(s) left\n", ks.ID, ks.Purpose, len(ks.Keys))
	return nil
}

// outdatedPepperedHashes counts stored password hashes (current and history) that name a pepper
// key other than the primary. A hash whose key cannot be read counts too: retiring must not
// destroy what something might still need.
func outdatedPepperedHashes(ctx context.Context, db *sqlstore.DB, v *vault.Vault) (int, error) {
	primary, err := vault.PasswordPepper{Vault: v}.PrimaryKeyID(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	err = db.EachPepperedHash(ctx, func(h string) error {
		if id, ok := password.PepperKeyID(h); !ok || id != primary {
			n++
		}
		return nil
	})
	return n, err
}

type keysKEKRewrapCmd struct {
	FromURI           string `name:"from-uri" default:"local:" help:"Where the old KEK lives."`
	FromMasterKeyFile string `name:"from-master-key-file" type:"path" help:"Old local master key file (when --from-uri is local:)."`
}

func (c keysKEKRewrapCmd) Run(e *env) error {
	// Not open: it would open the vault with the new KEK, which unwraps nothing until this
	// command has run (docs/RUNBOOKS.md, TestRunbook_MasterKeyCompromise).
	m, err := openStore(e, true, false)
	if err != nil {
		return err
	}
	defer m.Close()
	oldMaster := m.MasterKey
	if c.FromMasterKeyFile != "" {
		b, err := os.ReadFile(c.FromMasterKeyFile)
		if err != nil {
			return err
		}
		if oldMaster, err = vault.ParseMasterKey(string(b)); err != nil {
			return fmt.Errorf("%s: %w", c.FromMasterKeyFile, err)
		}
	}
	old, err := vault.OpenKEK(e.ctx, m.kekConfig(c.FromURI, oldMaster))
	if err != nil {
		return fmt.Errorf("old KEK: %w", err)
	}
	next, err := vault.OpenKEK(e.ctx, m.kekConfig("", m.MasterKey))
	if err != nil {
		return fmt.Errorf("new KEK: %w", err)
	}
	for _, k := range []vault.KEK{old, next} {
		if c, ok := k.(io.Closer); ok {
			defer c.Close()
		}
	}
	n, err := vault.RewrapKEK(e.ctx, sqlstore.KeysetStore{DB: m.DB}, old, next)
	if err != nil {
		return err
	}
	if err := recordMasterKeyChange(e.ctx, m.DB, oldMaster, m.MasterKey); err != nil {
		return fmt.Errorf("keysets rewrapped, but recording the new master key failed (rerun the command): %w", err)
	}
	fmt.Fprintf(e.stdout, "%d keyset(s) rewrapped from %s to %s\n", n, old.URI(), next.URI())
	return nil
}

type keysHSMGenerateCmd struct {
	Token string `required:"" help:"PKCS#11 token label."`
	Label string `default:"tutela-kek" help:"Key label."`
}

func (c keysHSMGenerateCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if cfg.Vault.PKCS11Module == "" || cfg.HSMPIN.IsZero() {
		return errors.New("set vault.pkcs11_module (TUTELA_VAULT_PKCS11_MODULE) and TUTELA_HSM_PIN")
	}
	if err := vault.GeneratePKCS11Key(cfg.Vault.PKCS11Module, c.Token, c.Label, cfg.HSMPIN); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created AES-256 key %q on token %q; set vault.kek_uri to pkcs11:token=%s;object=%s\n",
		c.Label, c.Token, c.Token, c.Label)
	return nil
}
