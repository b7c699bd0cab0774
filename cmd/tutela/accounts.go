package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"tutela/identity"
	"tutela/password"
)

type breachCmd struct {
	Import breachImportCmd `cmd:"" help:"Convert a file of SHA-1 hashes (HEX or HEX:COUNT per line, as HaveIBeenPwned publishes) into the sorted binary index auth.breach.index_file reads."`
}

type breachImportCmd struct {
	In  string `arg:"" type:"existingfile" help:"Text file of SHA-1 hashes."`
	Out string `arg:"" type:"path" help:"Index file to write (replaced atomically)."`
}

func (c breachImportCmd) Run(e *env) error {
	in, err := os.Open(c.In)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(c.Out), ".breach-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	n, err := password.ImportIndex(bufio.NewReaderSize(in, 1<<20), w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.Out); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %d hashes to %s\n", n, c.Out)
	return nil
}

type saCmd struct {
	Create saCreateCmd `cmd:"" help:"Create a service account and print its client ID and secret (shown once)."`
}

type saCreateCmd struct {
	Tenant string `required:"" help:"Tenant slug."`
	Name   string `required:"" help:"Name of the integration."`
}

func (c saCreateCmd) Run(e *env) error {
	m, err := open(e, true)
	if err != nil {
		return err
	}
	defer m.Close()
	ids := identity.New(identity.Deps{DB: m.DB}, identity.Config{})
	sa, secret, err := ids.CreateServiceAccount(e.ctx, c.Tenant, c.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Created service account %q in tenant %q.\n\n    client_id:     %s\n    client_secret: %s\n\n"+
		"The secret is shown once and stored only as a hash.\n", sa.Name, c.Tenant, sa.ClientID, secret.Reveal())
	return nil
}
