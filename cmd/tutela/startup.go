package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/vault"
)

// Start-up checks that stop a node before it writes anything it cannot take back: a new master
// key or audit key beside a database that already depends on the old one, a node whose settings
// disagree with the other nodes', a data directory it cannot write. Each error names the file or
// setting, the problem and the fix, because the operator reading it has to act on it.

// prepareDataDir creates the data directory (0700) and checks this process can write in it,
// which SQLite (database, WAL) and the key files need; "unable to open database file (14)" would
// otherwise be the only clue.
func prepareDataDir(dir string) error {
	fix := fmt.Sprintf("give uid %d write access to it (chown, chmod 700) or set TUTELA_DATA_DIR (data_dir) to a directory it can write", os.Geteuid())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s cannot be created: %v; %s", dir, err, fix)
	}
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable by uid %d: %v; %s", dir, os.Geteuid(), errors.Unwrap(err), fix)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// checkDatabaseFile refuses to open the SQLite database as a new one when it is plainly lost: an
// empty file beside an existing master key (truncated, or never copied), or no file at all beside
// an existing audit.key. Opening it would silently start a new, empty deployment (migrations, new
// keysets) under the old keys. audit.key is created only once the database exists (serve opens the
// store before it loads or creates the audit key; `backup restore` writes the database before the
// key files), so a first start that stopped early leaves no audit.key and is not refused.
func checkDatabaseFile(sqlitePath, dataDir string) error {
	masterPath, auditPath := filepath.Join(dataDir, vault.MasterKeyFile), filepath.Join(dataDir, audit.KeyFile)
	fresh := fmt.Sprintf("or, to start a new deployment on purpose, remove %s and %s (and tutela.db if present)",
		vault.MasterKeyFile, audit.KeyFile)
	fi, err := os.Stat(sqlitePath)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(auditPath); err != nil {
			return nil
		}
		return fmt.Errorf("database file %s is missing but %s is there: the database was deleted, moved or not copied; "+
			"restore tutela.db from a backup (`tutela backup restore`) or point TUTELA_DATA_DIR (data_dir) at the "+
			"directory that holds it, %s", sqlitePath, auditPath, fresh)
	}
	if err != nil || fi.Size() > 0 {
		return nil
	}
	if _, err := os.Stat(masterPath); err != nil {
		return nil
	}
	return fmt.Errorf("database file %s is empty (0 bytes) but %s is there: the database was truncated or not copied; "+
		"restore tutela.db from a backup (`tutela backup restore`), %s", sqlitePath, masterPath, fresh)
}

// refuseNewMasterKey is called before a master key file would be created: a database that
// already holds data was set up with another master key (its keysets, masking and sealed
// secrets depend on it), so a new key would only make it unreadable.
func (m *Main) refuseNewMasterKey(ctx context.Context, path string) error {
	if m.DB == nil {
		return nil
	}
	used, err := m.DB.HoldsKeys(ctx)
	if err != nil {
		return fmt.Errorf("checking whether the database is new before creating %s: %w", path, err)
	}
	if !used {
		return nil
	}
	return fmt.Errorf("%s is missing, but the database already holds keys sealed under a master key: "+
		"restore the master.key that was used with this database (mode 0600), copy it from another node of this "+
		"deployment, or set TUTELA_MASTER_KEY_FILE to it; Tutela does not create a new key, which would leave "+
		"every keyset and secret in the database unreadable", path)
}

// masterKeyOrigin names where the master key came from, for messages.
func (m *Main) masterKeyOrigin() string {
	if m.masterKeyPath == "" {
		return "the master key from TUTELA_MASTER_KEY(_FILE)"
	}
	return m.masterKeyPath
}

// wrongKEK rewrites the vault's "wrong KEK" refusal for the local master key into what to do.
// On a node bound to a data region it also names the region's database: one database holds the
// keysets of one KEK (vault.Check), so each region has a database of its own (docs/residency.md),
// and a node on another region's KEK, or pointed at another region's database, ends here.
func (m *Main) wrongKEK(err error) error {
	wrong, region := errors.Is(err, vault.ErrWrongKEK), ""
	if r := m.Config.Residency.Region; r != "" && wrong {
		region = fmt.Sprintf("; this node serves data region %q, and each region has its own database whose keysets "+
			"only its region's KEK opens: check that database.url is region %q's database and vault.kek_uri its KEK", r, r)
	}
	spec, perr := vault.ParseKEKURI(m.Config.Vault.KEKURI)
	if !wrong || perr != nil || spec.Scheme != vault.SchemeLocal {
		return fmt.Errorf("%w (set vault.kek_uri to the KEK the keysets were wrapped with, or run `tutela keys kek-rewrap`%s)", err, region)
	}
	return fmt.Errorf("%s does not open the keysets in the database: restore the master.key that was used with "+
		"this database (or copy it from another node of this deployment), or set TUTELA_MASTER_KEY_FILE to it%s "+
		"(detail: %w)", m.masterKeyOrigin(), region, err)
}

// errPepperedHash stops the scan of stored hashes at the first one that names a pepper key.
var errPepperedHash = errors.New("a stored password hash names a pepper key")

// ensurePepper makes sure the password pepper keyset exists, creating it only for a deployment
// none of whose stored password hashes names a pepper key. A keyset lost from a database whose
// hashes were made under it (a partial restore, a deleted row) must be restored: a new one would
// make every peppered hash fail, and each sign-in would then look like a wrong password.
func (m *Main) ensurePepper(ctx context.Context, pepper vault.PasswordPepper) error {
	_, err := pepper.PrimaryKeyID(ctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, vault.ErrNoKeyset) {
		return fmt.Errorf("password pepper: %w", err)
	}
	example := uint32(0)
	err = m.DB.EachPepperedHash(ctx, func(h string) error {
		if id, ok := password.PepperKeyID(h); ok {
			example = id
			return errPepperedHash
		}
		return nil
	})
	if errors.Is(err, errPepperedHash) {
		return fmt.Errorf("the password_pepper keyset is missing from the database, but stored password hashes were "+
			"made under it (pepper key %d, for one): the database was restored or copied without its keysets table, or "+
			"the keyset row was deleted; restore the database (keysets table included) from a backup "+
			"(`tutela backup restore`); Tutela does not create a new pepper, under which no stored password would "+
			"verify and every sign-in would count as a wrong password", example)
	}
	if err != nil {
		return fmt.Errorf("password pepper: checking stored hashes: %w", err)
	}
	if _, err := pepper.Create(ctx); err != nil {
		return fmt.Errorf("password pepper: %w", err)
	}
	return nil
}

// masterKeyFingerprintLabel is the HKDF info of the master key's fingerprint. Its own label makes
// the fingerprint independent of every key derived from the master key (the local KEK, the
// field-masking key), so recording it in the database reveals nothing usable (docs/crypto.md).
const masterKeyFingerprintLabel = "tutela master key fingerprint v1"

// masterKeyFingerprint names a master key without revealing it: 128 bits of HKDF-SHA256 output
// under masterKeyFingerprintLabel, enough to tell two random 256-bit keys apart.
func masterKeyFingerprint(k tutela.Secret) (string, error) {
	fp, err := hkdf.Key(sha256.New, k.Bytes(), nil, masterKeyFingerprintLabel, 16)
	if err != nil {
		return "", err
	}
	return "hkdf-sha256:" + hex.EncodeToString(fp), nil
}

// agreeMasterKey records the master key's fingerprint at first start and refuses a node whose
// master key differs. With the local KEK another key cannot open the keysets anyway; with a KMS
// or HSM KEK it can, but the field-masking key (HKDF of the master key) and the legacy sealer
// would differ from the other nodes', so the same hidden value would be masked differently from
// node to node. Both stores record it: a single SQLite node's key swapped between starts is the
// same mistake.
func (m *Main) agreeMasterKey(ctx context.Context) error {
	fp, err := masterKeyFingerprint(m.MasterKey)
	if err != nil {
		return err
	}
	recorded, err := m.DB.AgreeSetting(ctx, sqlstore.SettingMasterKeyFingerprint, fp)
	if err != nil {
		return err
	}
	if recorded == fp {
		return nil
	}
	return fmt.Errorf("%s is not this deployment's master key (fingerprint %s; the database records %s, from the "+
		"first start): every node needs the same master key, also with a KMS or HSM KEK, because the field-masking "+
		"key is derived from it; copy master.key from another node of this deployment (mode 0600) or restore it "+
		"from your backup, or set TUTELA_MASTER_KEY / TUTELA_MASTER_KEY_FILE to that key; a master key replaced on "+
		"purpose is recorded by `tutela keys kek-rewrap --from-master-key-file OLD`", m.masterKeyOrigin(), fp, recorded)
}

// recordMasterKeyChange records a deliberate master key replacement (kek-rewrap with
// --from-master-key-file) so the next start agrees with the new key, audited in the same
// transaction.
func recordMasterKeyChange(ctx context.Context, db *sqlstore.DB, old, next tutela.Secret) error {
	if old.Equal(next) {
		return nil
	}
	from, err := masterKeyFingerprint(old)
	if err != nil {
		return err
	}
	to, err := masterKeyFingerprint(next)
	if err != nil {
		return err
	}
	return db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.SwapSetting(ctx, sqlstore.SettingMasterKeyFingerprint, from, to); err != nil {
			if tutela.ErrorCode(err) == tutela.ECONFLICT {
				return fmt.Errorf("the old master key given (fingerprint %s) is not the one this deployment records "+
					"(%v): give --from-master-key-file the key the deployment used until now", from, err)
			}
			return err
		}
		return tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "deployment.master_key_change",
			Outcome: audit.OutcomeSuccess, TargetType: "deployment", Reason: "tutela keys kek-rewrap --from-master-key-file",
			Details: map[string]any{"from": from, "to": to}})
	})
}

// checkAuditKeyFile runs before the audit key is loaded or created. A missing audit.key beside a
// log that already has signed checkpoints must not be replaced: checkpoints signed by a new key
// would fail `tutela audit verify` for good.
func (m *Main) checkAuditKeyFile(ctx context.Context, path string) error {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	recorded, err := m.DB.Setting(ctx, sqlstore.SettingAuditVerifierKey)
	if err != nil {
		return err
	}
	_, cperr := m.DB.AuditCheckpoint(ctx)
	if recorded == "" && cperr != nil {
		return nil // a new log: the key is created now
	}
	if recorded == "" {
		recorded = "see `tutela audit key` on another node"
	}
	return fmt.Errorf("%s is missing, but this database's audit log is already signed with an audit key "+
		"(verifier key %s): copy audit.key from another node of this deployment, or restore it from your backup, "+
		"into %s (mode 0600); Tutela does not create a new key, whose checkpoints `tutela audit verify` would reject",
		path, recorded, filepath.Dir(path))
}

// agreeAuditKey checks the loaded audit key is the one this database's log is signed with and
// records it at first start. Every node signs checkpoints of the same log, so all need one key.
func (m *Main) agreeAuditKey(ctx context.Context, path, vkey string) error {
	mismatch := func(want string) error {
		return fmt.Errorf("%s holds the verifier key %s, but this database's audit log is signed with %s: "+
			"copy audit.key from another node of this deployment (every node needs the same file) or restore it "+
			"from your backup", path, vkey, want)
	}
	recorded, err := m.DB.Setting(ctx, sqlstore.SettingAuditVerifierKey)
	if err != nil {
		return err
	}
	if recorded == "" {
		// A log from before the key was recorded: its latest checkpoint must verify under the key.
		if cp, err := m.DB.AuditCheckpoint(ctx); err == nil {
			if _, err := audit.OpenCheckpoint(cp, vkey, AuditOrigin); err != nil {
				return mismatch("another key (its latest checkpoint does not verify)")
			}
		}
	}
	if recorded, err = m.DB.AgreeSetting(ctx, sqlstore.SettingAuditVerifierKey, vkey); err != nil {
		return err
	}
	if recorded != vkey {
		return mismatch(recorded)
	}
	return nil
}

// agreeIssuer records the access tokens' issuer at first start and refuses a node that would
// issue tokens under another one: nodes behind one load balancer must accept each other's tokens,
// and a token whose "iss" differs is refused (401, audited as auth.token wrong_issuer). Only
// nodes sharing a PostgreSQL database can disagree; an embedded SQLite store has one node, which
// may change its address (and so its default issuer) between starts.
func (m *Main) agreeIssuer(ctx context.Context, issuer string) error {
	if m.DB.Dialect() != sqlstore.Postgres {
		return nil
	}
	if m.acceptIssuerChange {
		old, err := m.DB.Setting(ctx, sqlstore.SettingIssuer)
		if err != nil {
			return err
		}
		if old != "" && old != issuer {
			m.Logger.Warn("auth.issuer changed on purpose (--accept-issuer-change): tokens issued before are refused",
				"from", old, "to", issuer)
			return m.DB.Update(ctx, func(tx *sqlstore.Tx) error {
				if err := tx.ReplaceSetting(ctx, sqlstore.SettingIssuer, issuer); err != nil {
					return err
				}
				return tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "deployment.issuer_change",
					Outcome: audit.OutcomeSuccess, TargetType: "deployment", Reason: "tutela serve --accept-issuer-change",
					Details: map[string]any{"from": old, "to": issuer}})
			})
		}
	}
	recorded, err := m.DB.AgreeSetting(ctx, sqlstore.SettingIssuer, issuer)
	if err != nil {
		return err
	}
	if recorded == issuer {
		return nil
	}
	what := fmt.Sprintf("auth.issuer is %q", issuer)
	if m.Config.Auth.Issuer == "" {
		what = fmt.Sprintf("auth.issuer is not set, so this node would issue tokens as %q (its own address)", issuer)
	}
	return fmt.Errorf("%s, but this deployment issues tokens as %q (recorded when its first node started): "+
		"set auth.issuer (TUTELA_AUTH_ISSUER) to %q on every node, since nodes that disagree reject each other's tokens; "+
		"if the public URL really changed, start one node with `tutela serve --accept-issuer-change`",
		what, recorded, recorded)
}

// drainAudit runs sequencer rounds until nothing is pending, so a stopping node leaves no event
// outside the Merkle log (where nothing would protect it until some node starts again). It runs
// after the HTTP server has drained and before the store closes. On PostgreSQL a round that finds
// another node holding the sequencing lock appends nothing: that live node sequences them.
func (m *Main) drainAudit() error {
	if m.sequencer == nil || m.DB == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	total := 0
	for {
		n, err := m.sequencer.Step(ctx)
		if err != nil {
			return fmt.Errorf("audit: final sequencing round: %w", err)
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total > 0 {
		m.Logger.Info("sequenced the remaining audit events before stopping", "count", total)
	}
	return nil
}
