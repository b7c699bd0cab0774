package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"tutela"
	"tutela/oidc"
	"tutela/sqlstore"
)

// clientCmd manages the relying parties registered with a tenant's OpenID Provider, for
// operators on the host (the same rules as POST /v1/tenants/{tenant}/oidc-clients). Changes
// are audited as the system actor: whoever runs the CLI holds the database.
type clientCmd struct {
	Create       clientCreateCmd       `cmd:"" help:"Register a client and print its client_id and, for a confidential client, its secret (shown once)."`
	List         clientListCmd         `cmd:"" help:"List a tenant's clients."`
	RotateSecret clientRotateSecretCmd `cmd:"" name:"rotate-secret" help:"Issue a new secret; the old ones keep working for the overlap, then stop."`
	Disable      clientDisableCmd      `cmd:"" help:"Disable a client (its sessions end at once)."`
	Enable       clientEnableCmd       `cmd:"" help:"Enable a disabled client."`
	Delete       clientDeleteCmd       `cmd:"" help:"Delete a client with its secrets, keys and consents (its sessions end)."`
}

type clientCreateCmd struct {
	Tenant      string   `required:"" help:"The tenant (slug or ID)."`
	Name        string   `required:"" help:"The application's name, shown on the consent page."`
	Type        string   `required:"" enum:"web,native,user_agent" help:"web (a server), native (a mobile or desktop app) or user_agent (a single-page application)."`
	RedirectURI []string `name:"redirect-uri" required:"" help:"A redirect URI, matched exactly (repeat for several)."`
	PostLogout  []string `name:"post-logout-uri" help:"A post-logout redirect URI (repeatable)."`
	Backchannel string   `name:"backchannel-logout-uri" help:"Where logout tokens are sent (OIDC Back-Channel Logout)."`
	AuthMethod  string   `name:"auth-method" enum:",client_secret_basic,private_key_jwt,none" default:"" help:"Default: client_secret_basic for web, none for native and user_agent."`
	Scope       []string `help:"A scope the client may ask for (repeatable; default openid)."`
	IDTokenAlg  string   `name:"id-token-alg" enum:",EdDSA,ES256,RS256" default:"" help:"ID token signature algorithm (default EdDSA)."`
	RequireDPoP bool     `name:"require-dpop" help:"Bind its tokens to a DPoP key (RFC 9449)."`
	RequirePAR  bool     `name:"require-par" help:"Require pushed authorization requests (RFC 9126)."`
	SkipConsent bool     `name:"skip-consent" help:"A first-party application: no consent page."`
	AccessTTL   int64    `name:"access-token-ttl" help:"Access-token lifetime in seconds (0: the server's; else 60-3600)."`
}

func (c clientCreateCmd) Run(e *env) error {
	cl := &sqlstore.OIDCClient{Name: c.Name, AppType: c.Type, AuthMethod: c.AuthMethod, RedirectURIs: c.RedirectURI,
		PostLogoutRedirectURIs: c.PostLogout, BackchannelLogoutURI: c.Backchannel, Scopes: c.Scope, IDTokenAlg: c.IDTokenAlg,
		RequireDPoP: c.RequireDPoP, RequirePAR: c.RequirePAR, SkipConsent: c.SkipConsent, AccessTokenTTL: c.AccessTTL,
		CreatedBy: "cli"}
	oidc.ClientDefaults(cl)
	if err := oidc.ValidateClient(cl); err != nil {
		return clientProblems(e, err)
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if err := oidc.CheckSigningAlg(cl, cfg.Auth.TokenAlgs); err != nil {
		return clientProblems(e, err)
	}
	var secret tutela.Secret
	err = withTenantTx(e, c.Tenant, func(tx *sqlstore.Tx, t *tutela.Tenant) (err error) {
		secret, err = tx.OIDCClients(t.ID).Create(e.ctx, cl)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Registered client %q in tenant %q.\n\n    client_id:     %s\n", cl.Name, c.Tenant, cl.ID)
	if !secret.IsZero() {
		fmt.Fprintf(e.stdout, "    client_secret: %s\n\nThe secret is shown once and stored only as a hash.\n", secret.Reveal())
	} else {
		fmt.Fprintf(e.stdout, "\nThe client authenticates with %s; it has no secret.\n", cl.AuthMethod)
	}
	return nil
}

// clientProblems prints every registration problem, one a line, to stderr.
func clientProblems(e *env, err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	fmt.Fprintln(e.stderr, "the client registration is refused:")
	for _, p := range list {
		var field string
		if te, ok := p.(*tutela.Error); ok {
			field = te.Field
		}
		fmt.Fprintf(e.stderr, "  - %s: %s\n", field, tutela.ErrorMessage(p))
	}
	return errReported
}

type clientListCmd struct {
	Tenant string `required:"" help:"The tenant (slug or ID)."`
}

func (c clientListCmd) Run(e *env) error {
	var all []*sqlstore.OIDCClient
	err := withTenant(e, c.Tenant, func(tx *sqlstore.Tx, t *tutela.Tenant) error {
		cursor := ""
		for {
			page, err := tx.OIDCClients(t.ID).List(e.ctx, cursor, sqlstore.MaxPageSize)
			if err != nil {
				return err
			}
			all = append(all, page...)
			if len(page) < sqlstore.MaxPageSize {
				return nil
			}
			cursor = page[len(page)-1].ID
		}
	})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLIENT_ID\tNAME\tTYPE\tAUTH\tSTATUS\tREDIRECT_URIS")
	for _, cl := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", cl.ID, cl.Name, cl.AppType, cl.AuthMethod, cl.Status,
			strings.Join(cl.RedirectURIs, " "))
	}
	return w.Flush()
}

type clientRotateSecretCmd struct {
	Tenant  string        `required:"" help:"The tenant (slug or ID)."`
	Client  string        `required:"" help:"The client_id."`
	Overlap time.Duration `default:"24h" help:"How long the previous secrets keep working (0 to 720h)."`
}

func (c clientRotateSecretCmd) Run(e *env) error {
	var secret tutela.Secret
	err := withTenantTx(e, c.Tenant, func(tx *sqlstore.Tx, t *tutela.Tenant) (err error) {
		secret, _, err = tx.OIDCClients(t.ID).RotateSecret(e.ctx, c.Client, c.Overlap)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "New secret for client %s:\n\n    client_secret: %s\n\nThe secret is shown once and stored only as a hash. "+
		"The previous secrets stop working in %s.\n", c.Client, secret.Reveal(), c.Overlap)
	return nil
}

type clientRef struct {
	Tenant string `required:"" help:"The tenant (slug or ID)."`
	Client string `required:"" help:"The client_id."`
}

type (
	clientDisableCmd struct{ clientRef }
	clientEnableCmd  struct{ clientRef }
	clientDeleteCmd  struct{ clientRef }
)

func (c clientDisableCmd) Run(e *env) error { return c.setStatus(e, sqlstore.ClientDisabled) }
func (c clientEnableCmd) Run(e *env) error  { return c.setStatus(e, sqlstore.ClientActive) }

func (c clientRef) setStatus(e *env, status string) error {
	if err := withTenantTx(e, c.Tenant, func(tx *sqlstore.Tx, t *tutela.Tenant) error {
		return tx.OIDCClients(t.ID).SetStatus(e.ctx, c.Client, status)
	}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Client %s is %s.\n", c.Client, status)
	return nil
}

func (c clientDeleteCmd) Run(e *env) error {
	if err := withTenantTx(e, c.Tenant, func(tx *sqlstore.Tx, t *tutela.Tenant) error {
		return tx.OIDCClients(t.ID).Delete(e.ctx, c.Client)
	}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Client %s deleted.\n", c.Client)
	return nil
}
