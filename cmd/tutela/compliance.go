package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"tutela"
	"tutela/compliance"
	"tutela/sqlstore"
	"tutela/vault"
)

type complianceCmd struct {
	Report    complianceReportCmd    `cmd:"" help:"Answer the compliance controls from live configuration and state, signed (docs/compliance.md)."`
	Verify    complianceVerifyCmd    `cmd:"" help:"Check a report's signature against the audit verifier key; names what failed."`
	Templates complianceTemplatesCmd `cmd:"" help:"Fill the DPA, BAA, sub-processor list and records-of-processing templates from the report."`
}

// complianceRuntime is what this process knows of itself for the report.
func (m *Main) complianceRuntime() compliance.Runtime {
	rt := compliance.Runtime{Version: tutela.Version, AuditVerifierKey: m.auditVKey}
	switch {
	case !m.Config.MasterKey.IsZero():
		rt.MasterKeySource = "environment"
	case m.masterKeyPath != "":
		rt.MasterKeySource = "file"
	}
	return rt
}

// buildComplianceReport opens the store and the audit signer and builds the report over one
// tenant (slug) or, with slug "", every tenant; it is audited like the API's.
func buildComplianceReport(e *env, slug, format string) (*Main, *compliance.Report, error) {
	m, err := open(e, false)
	if err != nil {
		return nil, nil, err
	}
	signer, vkey, err := m.auditSigner(e)
	if err != nil {
		_ = m.Close()
		return nil, nil, err
	}
	m.signer, m.auditVKey = signer, vkey
	var rep *compliance.Report
	err = m.DB.Update(e.ctx, func(tx *sqlstore.Tx) error {
		var tenants []*tutela.Tenant
		if slug != "" {
			t, err := tx.TenantBySlug(e.ctx, slug)
			if err != nil {
				return fmt.Errorf("tenant %q: %w", slug, err)
			}
			tenants = []*tutela.Tenant{t}
		} else if tenants, err = tx.AllTenants(e.ctx); err != nil {
			return err
		}
		rep, err = tx.ComplianceReport(e.ctx, m.Config, m.complianceRuntime(), tenants, slug == "", format)
		return err
	})
	if err != nil {
		_ = m.Close()
		return nil, nil, err
	}
	return m, rep, nil
}

type complianceReportCmd struct {
	Format string `help:"html (one signed self-contained page) or json (signed envelope)." enum:"html,json" default:"html"`
	Tenant string `help:"Only this tenant (slug); default: the whole deployment." placeholder:"SLUG"`
	Out    string `help:"File to write (default: standard output)." type:"path" placeholder:"FILE"`
}

func (c complianceReportCmd) Run(e *env) error {
	m, rep, err := buildComplianceReport(e, c.Tenant, c.Format)
	if err != nil {
		return err
	}
	defer m.Close()
	out, err := compliance.Encode(rep, c.Format, m.signer)
	if err != nil {
		return err
	}
	if c.Out == "" {
		_, err = e.stdout.Write(out)
		return err
	}
	if err := vault.WriteFileAtomic(c.Out, out, 0o640); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "compliance report written: %s (%d met, %d partial, %d gap, %d not applicable); check it with `tutela compliance verify %s`\n",
		c.Out, rep.Summary[compliance.Met], rep.Summary[compliance.Partial], rep.Summary[compliance.Gap], rep.Summary[compliance.NotApplicable], c.Out)
	return nil
}

type complianceVerifyCmd struct {
	File string `arg:"" help:"Report file (HTML or JSON)." type:"path"`
	Key  string `help:"Verifier key to trust (default: the data directory's audit.key); obtain it independently of the file." placeholder:"VKEY"`
}

func (c complianceVerifyCmd) Run(e *env) error {
	vkey := c.Key
	if vkey == "" {
		cfg, err := e.loadConfig()
		if err != nil {
			return err
		}
		if vkey, err = auditVerifierKey(cfg.DataDir); err != nil {
			return err
		}
	}
	f, err := os.Open(c.File)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, compliance.MaxReportSize+1))
	if err != nil {
		return err
	}
	v, err := compliance.Verify(b, vkey)
	if errors.Is(err, compliance.ErrMalformedKey) {
		// The key is never echoed: a signing key passed by mistake would reach the terminal.
		if c.Key != "" {
			return errors.New("--key is malformed: it takes the verifier key string itself, as `tutela audit key` prints it " +
				"(tutela/audit+…), not a file name")
		}
		return fmt.Errorf("the data directory's audit.key holds a malformed verifier key: pass --key with the verifier key string, as `tutela audit key` prints it")
	}
	if err != nil {
		var ve *compliance.VerifyError
		if errors.As(err, &ve) {
			fmt.Fprintf(e.stdout, "result: FAILED (%s check)\n  %s\n", ve.Check, ve.Detail)
			return fmt.Errorf("%s does not verify: %s check failed", c.File, ve.Check)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "result:  OK\nkind:    %s\nsigned:  %s\nbytes:   %d\nsha256:  %s\nkey:     %s\n",
		v.Kind, v.SignedAt.Format("2006-01-02T15:04:05Z"), v.Size, v.Digest, vkey)
	return nil
}

type complianceTemplatesCmd struct {
	Out    string `required:"" help:"Directory to write the filled documents to (<slug>/<template>.md)." type:"path" placeholder:"DIR"`
	Tenant string `help:"Only this tenant (slug); default: every tenant." placeholder:"SLUG"`
}

func (c complianceTemplatesCmd) Run(e *env) error {
	m, rep, err := buildComplianceReport(e, c.Tenant, "templates")
	if err != nil {
		return err
	}
	defer m.Close()
	docs, err := compliance.RenderTemplates(rep)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(docs))
	for name := range docs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(c.Out, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return err
		}
		if err := vault.WriteFileAtomic(path, docs[name], 0o640); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, path)
	}
	fmt.Fprintf(e.stderr, "%d documents for %d tenant(s) filled from the report of %s\n", len(docs), len(rep.Tenants),
		rep.GeneratedAt.Format("2006-01-02T15:04:05Z"))
	return nil
}

// recordOperation records one run of an operation the compliance report cites (audited). A
// failure to record is reported, not hidden: the report would otherwise miss the run.
func recordOperation(ctx context.Context, db *sqlstore.DB, kind, outcome string, details map[string]any) error {
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.RecordOperation(ctx, kind, outcome, details)
		return err
	})
	if err != nil {
		return fmt.Errorf("recording the %s for the compliance report: %w", strings.ReplaceAll(kind, "_", " "), err)
	}
	return nil
}

// errText is an error's text for an operation's details, bounded.
func errText(err error) string {
	s := err.Error()
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
