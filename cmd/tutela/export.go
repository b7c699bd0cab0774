package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// exportCmd writes an anonymized copy of the deployment for staging (docs/staging.md).
type exportCmd struct {
	Anonymize bool   `help:"Replace every user's and subject's personal data by synthetic values (required: there is no plain export)."`
	Out       string `required:"" type:"path" placeholder:"FILE" help:"The new SQLite database to write; must not exist."`
	MasterKey string `name:"master-key" type:"path" placeholder:"FILE" help:"The copy's master key file (base64, mode 0600), for a staging deployment that has one already. Default: a new random key written to <out>.master-key."`
}

// Run reads the deployment with its own vault, writes the copy under a new vault whose local
// master key is not the production one, and records the run in both audit logs. A failed run
// leaves no copy and no key file behind.
func (c exportCmd) Run(e *env) (err error) {
	if !c.Anonymize {
		return errors.New("tutela export writes anonymized copies only: pass --anonymize")
	}
	keyPath, newKey := c.MasterKey, c.MasterKey == ""
	if newKey {
		keyPath = c.Out + ".master-key"
	}
	for _, p := range []string{c.Out, c.Out + "-wal", c.Out + "-shm"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s already exists: the copy is always a new database (remove it, or choose another --out)", p)
		}
	}
	if newKey {
		if _, err := os.Lstat(keyPath); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s already exists: pass it with --master-key to reuse it, or remove it", keyPath)
		}
	} else if _, err := os.Stat(keyPath); err != nil {
		return fmt.Errorf("--master-key: %w", err)
	}
	m, _, err := openKeys(e)
	if err != nil {
		return err
	}
	defer m.Close()
	// The file exists from here on (0600: it holds the copy's data); any failure removes it.
	if err := os.MkdirAll(filepath.Dir(c.Out), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(c.Out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(c.Out)
		return err
	}
	defer func() {
		if err != nil {
			for _, p := range []string{c.Out, c.Out + "-wal", c.Out + "-shm"} {
				_ = os.Remove(p)
			}
			if newKey {
				_ = os.Remove(keyPath)
			}
		}
	}()
	key, _, err := vault.LoadOrCreateMasterKey(keyPath)
	if err != nil {
		return err
	}
	// Staging must never be able to open production data: a copy under the production master
	// key would put every production keyset one restore away from a staging host.
	if bytes.Equal(key.Bytes(), m.MasterKey.Bytes()) {
		return errors.New("--master-key is the production master key: the copy needs a key of its own")
	}
	dst, err := sqlstore.Open(e.ctx, c.Out, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, dst.Close()) }()
	if err := dst.Migrate(e.ctx); err != nil {
		return err
	}
	kek, err := vault.NewLocalKEK(key)
	if err != nil {
		return err
	}
	v, err := vault.New(e.ctx, kek, sqlstore.KeysetStore{DB: dst}, vault.Options{})
	if err != nil {
		return err
	}
	dst.SetVault(v)
	syn, err := privacy.NewSynthesizer()
	if err != nil {
		return err
	}
	defer syn.Forget()
	runID := tutela.NewID()
	counts, err := m.DB.AnonymizeInto(e.ctx, dst, syn, runID)
	if err != nil {
		return fmt.Errorf("anonymized export (run %s): %w; nothing was kept", runID, err)
	}
	fmt.Fprintf(e.stdout, "anonymized copy written: %s (run %s)\n", c.Out, runID)
	fmt.Fprintf(e.stdout, "  %d tenant(s), %d custom role(s), %d user(s) with %d grant(s), %d subject(s) with %d value(s); %d skipped (erased or empty)\n",
		counts.Tenants, counts.Roles, counts.Users, counts.Grants, counts.Subjects, counts.Values, counts.Skipped)
	if newKey {
		fmt.Fprintf(e.stdout, "  its master key: %s (mode 0600; the production key cannot open the copy, nor this key production)\n", keyPath)
	}
	fmt.Fprintln(e.stdout, "  staging: put the copy in its data directory as tutela.db and the key as master.key (vault.kek_uri local:); "+
		"users have no credentials: bootstrap or reset them there")
	return nil
}
