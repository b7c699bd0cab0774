package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"tutela"
	"tutela/ai"
	"tutela/sqlstore"
)

// aiCmd configures a tenant's AI gateway from the host, with the rules of
// /v1/tenants/{tenant}/ai/…; changes are audited as the system actor (whoever runs the CLI
// holds the database).
type aiCmd struct {
	Provider aiProviderCmd `cmd:"" help:"OpenAI-compatible providers: create, list, update, delete."`
	Key      aiKeyCmd      `cmd:"" help:"Provider API keys: add (rotate), delete."`
	Model    aiModelCmd    `cmd:"" help:"Allowed models: put, delete, list."`
	Purpose  aiPurposeCmd  `cmd:"" help:"Purposes that may use the gateway: put, delete, list."`
	Settings aiSettingsCmd `cmd:"" help:"Limits and detectors: show, set."`
}

// aiCLIActor is who the CLI's keys and purposes are recorded as created or updated by.
const aiCLIActor = "cli"

// withAI runs fn on the tenant's AI store in a transaction (write: a read-write one).
func withAI(e *env, tenant string, write bool, fn func(st sqlstore.AI) error) error {
	return inTenant(e, tenant, write, func(tx *sqlstore.Tx, t *tutela.Tenant) error { return fn(tx.AI(t.ID)) })
}

// findProvider resolves ref, a provider's name or ID, in the tenant.
func findProvider(e *env, st sqlstore.AI, ref string) (*ai.Provider, error) {
	if tutela.ValidID(ref) {
		return st.Provider(e.ctx, ref)
	}
	list, err := st.Providers(e.ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range list {
		if p.Name == ref {
			return p, nil
		}
	}
	return nil, tutela.Errorf(tutela.ENOTFOUND, "--provider %q: no such provider in this tenant (give its name or ID)", ref)
}

type aiProviderCmd struct {
	Create aiProviderCreateCmd `cmd:"" help:"Add a provider (without a key: add one with tutela ai key add)."`
	List   aiProviderListCmd   `cmd:"" help:"List the providers with their keys' hints."`
	Update aiProviderUpdateCmd `cmd:"" help:"Change a provider; flags not given keep their value."`
	Delete aiProviderDeleteCmd `cmd:"" help:"Delete a provider and its keys (refused while a model uses it)."`
}

type aiProviderCreateCmd struct {
	Tenant     string `required:"" help:"The tenant (slug or ID)."`
	Name       string `required:"" help:"A lowercase name, unique in the tenant (openrouter, azure-eu)."`
	BaseURL    string `name:"base-url" required:"" help:"The API root /chat/completions is appended to (https://openrouter.ai/api/v1); https, or http to a loopback address."`
	AuthStyle  string `name:"auth-style" enum:"bearer,api-key,none" default:"bearer" help:"bearer (Authorization: Bearer), api-key (Azure OpenAI) or none (a local model)."`
	Timeout    int    `default:"60" help:"Seconds one attempt may take (1-600)."`
	MaxRetries int    `name:"max-retries" default:"2" help:"Retries of a 429, a 5xx or a connection failure (0-5)."`
	Disabled   bool   `help:"Create it disabled."`
}

func (c aiProviderCreateCmd) Run(e *env) error {
	p := &ai.Provider{Name: c.Name, BaseURL: c.BaseURL, AuthStyle: ai.AuthStyle(c.AuthStyle), TimeoutSeconds: c.Timeout,
		MaxRetries: c.MaxRetries, Disabled: c.Disabled}
	if c.Timeout == 0 {
		return tutela.FieldErrorf("timeout", "--timeout must be between 1 and %d", ai.MaxTimeoutSeconds)
	}
	if err := withAI(e, c.Tenant, true, func(st sqlstore.AI) error { return st.CreateProvider(e.ctx, p) }); err != nil {
		return err
	}
	if p.AuthStyle == ai.AuthNone {
		fmt.Fprintf(e.stdout, "Created provider %q (%s); it takes no key.\n", p.Name, p.ID)
		return nil
	}
	fmt.Fprintf(e.stdout, "Created provider %q (%s). Give it a key with: tutela ai key add --tenant %s --provider %s\n",
		p.Name, p.ID, c.Tenant, p.Name)
	return nil
}

type aiProviderListCmd struct {
	Tenant string `required:"" help:"The tenant (slug or ID)."`
}

func (c aiProviderListCmd) Run(e *env) error {
	var list []*ai.Provider
	if err := withAI(e, c.Tenant, false, func(st sqlstore.AI) (err error) {
		list, err = st.Providers(e.ctx)
		return err
	}); err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tID\tBASE_URL\tAUTH\tTIMEOUT\tRETRIES\tDISABLED\tKEYS (newest first)")
	for _, p := range list {
		var keys []string
		for _, k := range p.Keys {
			keys = append(keys, k.ID+" "+k.Hint)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%ds\t%d\t%v\t%s\n", p.Name, p.ID, p.BaseURL, p.AuthStyle, p.TimeoutSeconds, p.MaxRetries,
			p.Disabled, strings.Join(keys, ", "))
	}
	return w.Flush()
}

type aiProviderUpdateCmd struct {
	Tenant     string  `required:"" help:"The tenant (slug or ID)."`
	Provider   string  `required:"" help:"The provider's name or ID."`
	Name       *string `help:"A new name."`
	BaseURL    *string `name:"base-url" help:"A new API root (the keys and minimized prompts go there from now on)."`
	AuthStyle  *string `name:"auth-style" enum:"bearer,api-key,none" help:"bearer, api-key or none."`
	Timeout    *int    `help:"Seconds one attempt may take (1-600)."`
	MaxRetries *int    `name:"max-retries" help:"Retries (0-5)."`
	Disabled   *bool   `help:"--disabled or --disabled=false."`
}

func (c aiProviderUpdateCmd) Run(e *env) error {
	var p *ai.Provider
	err := withAI(e, c.Tenant, true, func(st sqlstore.AI) (err error) {
		if p, err = findProvider(e, st, c.Provider); err != nil {
			return err
		}
		if c.Name != nil {
			p.Name = *c.Name
		}
		if c.BaseURL != nil {
			p.BaseURL = *c.BaseURL
		}
		if c.AuthStyle != nil {
			p.AuthStyle = ai.AuthStyle(*c.AuthStyle)
		}
		if c.Timeout != nil {
			if *c.Timeout == 0 {
				return tutela.FieldErrorf("timeout", "--timeout must be between 1 and %d", ai.MaxTimeoutSeconds)
			}
			p.TimeoutSeconds = *c.Timeout
		}
		if c.MaxRetries != nil {
			p.MaxRetries = *c.MaxRetries
		}
		if c.Disabled != nil {
			p.Disabled = *c.Disabled
		}
		return st.UpdateProvider(e.ctx, p)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Updated provider %q (%s).\n", p.Name, p.ID)
	return nil
}

type aiProviderDeleteCmd struct {
	Tenant   string `required:"" help:"The tenant (slug or ID)."`
	Provider string `required:"" help:"The provider's name or ID."`
}

func (c aiProviderDeleteCmd) Run(e *env) error {
	var p *ai.Provider
	err := withAI(e, c.Tenant, true, func(st sqlstore.AI) (err error) {
		if p, err = findProvider(e, st, c.Provider); err != nil {
			return err
		}
		return st.DeleteProvider(e.ctx, p.ID)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Deleted provider %q and its keys.\n", p.Name)
	return nil
}

type aiKeyCmd struct {
	Add    aiKeyAddCmd    `cmd:"" help:"Add a provider API key, read from stdin or --key-file (never an argument: other users see arguments in ps). The new key becomes primary, the previous one stays as fallback, an older one is retired."`
	Delete aiKeyDeleteCmd `cmd:"" help:"Retire one of a provider's keys now (a leaked key)."`
}

type aiKeyAddCmd struct {
	Tenant   string `required:"" help:"The tenant (slug or ID)."`
	Provider string `required:"" help:"The provider's name or ID."`
	KeyFile  string `name:"key-file" type:"path" help:"Read the key from this file instead of stdin. There is no flag for the key itself: a command line is visible to every user of the host (ps, /proc)."`
}

func (c aiKeyAddCmd) Run(e *env) error {
	key, err := readAPIKey(e, c.KeyFile)
	if err != nil {
		return err
	}
	if err := ai.CheckKey(key.Reveal()); err != nil {
		return err
	}
	// The vault seals the key: open the store with it.
	m, _, err := openKeys(e)
	if err != nil {
		return err
	}
	defer m.Close()
	var p *ai.Provider
	var k *ai.KeyInfo
	err = m.inTenant(e, c.Tenant, true, func(tx *sqlstore.Tx, t *tutela.Tenant) error {
		st := tx.AI(t.ID)
		if p, err = findProvider(e, st, c.Provider); err != nil {
			return err
		}
		if k, err = st.AddKey(e.ctx, p.ID, key, aiCLIActor); err != nil {
			return err
		}
		p, err = st.Provider(e.ctx, p.ID)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Added key %s (%s) to provider %q; it is now the primary key.\nActive keys, newest first:\n",
		k.ID, orNoHint(k.Hint), p.Name)
	for _, ki := range p.Keys {
		fmt.Fprintf(e.stdout, "    %s  %s  %s\n", ki.ID, orNoHint(ki.Hint), ki.CreatedAt.Format("2006-01-02 15:04:05Z"))
	}
	return nil
}

func orNoHint(h string) string {
	if h == "" {
		return "no hint: shorter than 16"
	}
	return h
}

// readAPIKey reads one key from file or, without one, stdin: at most ai.MaxKeyBytes, one
// trailing line break dropped. A terminal is refused: what is typed there is echoed on screen.
func readAPIKey(e *env, file string) (tutela.Secret, error) {
	in := e.stdin
	if file != "" {
		f, err := os.Open(file) // #nosec G304 -- a file named by the operator on the command line
		if err != nil {
			return tutela.Secret{}, fmt.Errorf("--key-file: %w", err)
		}
		defer f.Close()
		in = f
	} else if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return tutela.Secret{}, fmt.Errorf("the key is read from stdin: pipe it in (< key.txt) or use --key-file; stdin is a terminal or device, where a typed key would be echoed")
		}
	}
	if in == nil {
		return tutela.Secret{}, fmt.Errorf("no key: pipe it in on stdin or give --key-file")
	}
	// Two bytes more than a key may hold leaves room for a CRLF; any more is too long.
	b, err := io.ReadAll(io.LimitReader(in, ai.MaxKeyBytes+3))
	if err != nil {
		return tutela.Secret{}, fmt.Errorf("read the key: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return tutela.NewSecretBytes(b), nil
}

type aiKeyDeleteCmd struct {
	Tenant   string `required:"" help:"The tenant (slug or ID)."`
	Provider string `required:"" help:"The provider's name or ID."`
	Key      string `required:"" help:"The key's ID (tutela ai provider list shows them)."`
}

func (c aiKeyDeleteCmd) Run(e *env) error {
	err := withAI(e, c.Tenant, true, func(st sqlstore.AI) error {
		p, err := findProvider(e, st, c.Provider)
		if err != nil {
			return err
		}
		return st.DeleteKey(e.ctx, p.ID, c.Key)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Key %s retired.\n", c.Key)
	return nil
}

type aiModelCmd struct {
	Put    aiModelPutCmd    `cmd:"" help:"Allow a model, or change where it is served."`
	Delete aiModelDeleteCmd `cmd:"" help:"Stop allowing a model (refused while a purpose lists it)."`
	List   aiModelListCmd   `cmd:"" help:"List the allowed models."`
}

type aiModelPutCmd struct {
	Tenant   string `required:"" help:"The tenant (slug or ID)."`
	Name     string `required:"" help:"The name callers use (gpt-4o-mini, openai/gpt-4o-mini)."`
	Provider string `required:"" help:"The provider's name or ID."`
	Upstream string `help:"The provider's name for the model (default: --name)."`
	Kind     string `enum:"chat,embedding" default:"chat" help:"chat or embedding."`
}

func (c aiModelPutCmd) Run(e *env) error {
	m := &ai.Model{Name: c.Name, Upstream: c.Upstream, Kind: ai.ModelKind(c.Kind)}
	err := withAI(e, c.Tenant, true, func(st sqlstore.AI) error {
		p, err := findProvider(e, st, c.Provider)
		if err != nil {
			return err
		}
		m.ProviderID = p.ID
		return st.PutModel(e.ctx, m)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Model %q is served by provider %s as %q (%s).\n", m.Name, c.Provider, m.Upstream, m.Kind)
	return nil
}

type aiModelDeleteCmd struct {
	Tenant string `required:"" help:"The tenant (slug or ID)."`
	Name   string `required:"" help:"The model's name."`
}

func (c aiModelDeleteCmd) Run(e *env) error {
	if err := withAI(e, c.Tenant, true, func(st sqlstore.AI) error { return st.DeleteModel(e.ctx, c.Name) }); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Model %q is no longer allowed.\n", c.Name)
	return nil
}

type aiModelListCmd struct {
	Tenant string `required:"" help:"The tenant (slug or ID)."`
}

func (c aiModelListCmd) Run(e *env) error {
	var models []*ai.Model
	names := map[string]string{}
	err := withAI(e, c.Tenant, false, func(st sqlstore.AI) error {
		var err error
		if models, err = st.Models(e.ctx); err != nil {
			return err
		}
		providers, err := st.Providers(e.ctx)
		for _, p := range providers {
			names[p.ID] = p.Name
		}
		return err
	})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tPROVIDER\tUPSTREAM")
	for _, m := range models {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Name, m.Kind, names[m.ProviderID], m.Upstream)
	}
	return w.Flush()
}

type aiPurposeCmd struct {
	Put    aiPurposePutCmd    `cmd:"" help:"Let a purpose use the gateway with the given models (replaces its entry)."`
	Delete aiPurposeDeleteCmd `cmd:"" help:"Stop a purpose using the gateway."`
	List   aiPurposeListCmd   `cmd:"" help:"List the purposes that may use the gateway."`
}

type aiPurposePutCmd struct {
	Tenant          string   `required:"" help:"The tenant (slug or ID)."`
	Purpose         string   `required:"" help:"The processing purpose (case_management)."`
	Model           []string `required:"" help:"An allowed model the purpose may use (repeat for several)."`
	MaxOutputTokens int      `name:"max-output-tokens" help:"Cap on a chat call's output tokens (0: none)."`
}

func (c aiPurposePutCmd) Run(e *env) error {
	p := &ai.Purpose{Purpose: c.Purpose, Models: c.Model, MaxOutputTokens: c.MaxOutputTokens, UpdatedBy: aiCLIActor}
	if err := withAI(e, c.Tenant, true, func(st sqlstore.AI) error { return st.PutPurpose(e.ctx, p) }); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Purpose %q may use %s.\n", p.Purpose, strings.Join(p.Models, ", "))
	return nil
}

type aiPurposeDeleteCmd struct {
	Tenant  string `required:"" help:"The tenant (slug or ID)."`
	Purpose string `required:"" help:"The processing purpose."`
}

func (c aiPurposeDeleteCmd) Run(e *env) error {
	if err := withAI(e, c.Tenant, true, func(st sqlstore.AI) error { return st.DeletePurpose(e.ctx, c.Purpose) }); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Purpose %q may no longer use the gateway.\n", c.Purpose)
	return nil
}

type aiPurposeListCmd struct {
	Tenant string `required:"" help:"The tenant (slug or ID)."`
}

func (c aiPurposeListCmd) Run(e *env) error {
	var list []*ai.Purpose
	if err := withAI(e, c.Tenant, false, func(st sqlstore.AI) (err error) {
		list, err = st.Purposes(e.ctx)
		return err
	}); err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PURPOSE\tMODELS\tMAX_OUTPUT_TOKENS")
	for _, p := range list {
		fmt.Fprintf(w, "%s\t%s\t%d\n", p.Purpose, strings.Join(p.Models, ","), p.MaxOutputTokens)
	}
	return w.Flush()
}

type aiSettingsCmd struct {
	Show aiSettingsShowCmd `cmd:"" help:"Print the limits and detectors (JSON)."`
	Set  aiSettingsSetCmd  `cmd:"" help:"Change the limits and detectors; flags not given keep their value."`
}

type aiSettingsShowCmd struct {
	Tenant string `required:"" help:"The tenant (slug or ID)."`
}

func (c aiSettingsShowCmd) Run(e *env) error {
	var st *ai.Settings
	if err := withAI(e, c.Tenant, false, func(s sqlstore.AI) (err error) {
		st, err = s.Settings(e.ctx)
		return err
	}); err != nil {
		return err
	}
	return writeIndented(e.stdout, st)
}

type aiSettingsSetCmd struct {
	Tenant            string   `required:"" help:"The tenant (slug or ID)."`
	RequestsPerMinute *int     `name:"requests-per-minute" help:"Inferences per minute across every node (0: unlimited)."`
	TokensPerDay      *int64   `name:"tokens-per-day" help:"Prompt plus completion tokens per UTC day (0: unlimited)."`
	TokensPerMonth    *int64   `name:"tokens-per-month" help:"Tokens per calendar month (0: unlimited)."`
	IDCountry         []string `name:"id-country" help:"An ISO 3166-1 alpha-2 code whose national ID formats are detected (repeat for several; replaces the list)." xor:"countries"`
	NoIDCountries     bool     `name:"no-id-countries" help:"Detect no national ID formats (only e-mail, phone, IBAN, card)." xor:"countries"`
}

func (c aiSettingsSetCmd) Run(e *env) error {
	var st *ai.Settings
	err := withAI(e, c.Tenant, true, func(s sqlstore.AI) (err error) {
		if st, err = s.Settings(e.ctx); err != nil {
			return err
		}
		if c.RequestsPerMinute != nil {
			st.RequestsPerMinute = *c.RequestsPerMinute
		}
		if c.TokensPerDay != nil {
			st.TokensPerDay = *c.TokensPerDay
		}
		if c.TokensPerMonth != nil {
			st.TokensPerMonth = *c.TokensPerMonth
		}
		switch {
		case len(c.IDCountry) > 0:
			st.IDCountries = c.IDCountry
		case c.NoIDCountries:
			st.IDCountries = []string{}
		}
		if err := s.PutSettings(e.ctx, st); err != nil {
			return err
		}
		st, err = s.Settings(e.ctx)
		return err
	})
	if err != nil {
		return err
	}
	return writeIndented(e.stdout, st)
}
