// Package oidc is Tutela's OpenID Provider: the zitadel/oidc op library (a certified OP)
// over Tutela's store, sessions, tokens and key ring, one issuer per tenant at
// {public_url}/t/{tenant-slug}. The hosted pages (package web) sign the user in and hand the
// result back through Flow.
package oidc

import (
	"context"
	"net/url"
	"slices"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/sqlstore"
)

// Pending is an authorization request waiting for the user at the hosted pages.
type Pending struct {
	ID         string
	TenantID   string
	ClientID   string
	ClientName string
	// RedirectHost is the host the browser will be sent back to (shown on the consent page).
	RedirectHost string
	Scopes       []string
	// RequireMFA: acr_values asked for a second factor (authz.ACRMFA, RFC 9470). The sign-in
	// must have proved one; a session without it steps up.
	RequireMFA bool
	// MaxAge (max_age) bounds how long ago the user last authenticated; nil: no bound, 0: the
	// user must authenticate now.
	MaxAge *time.Duration
	// Prompt holds none, login, consent, select_account as asked.
	Prompt    []string
	LoginHint string
	UILocales []string
	// SkipConsent: the client is first-party (registered with skip_consent), so no consent page.
	SkipConsent bool
	// UserID is set when the request carried an id_token_hint: only that user may complete it.
	UserID string
}

// Authenticated is the sign-in that completes a Pending request.
type Authenticated struct {
	UserID    string
	SessionID string // the browser's Tutela session
	// AuthTime is the session's latest authentication event (its sign-in or a later step-up).
	AuthTime time.Time
	AMR      []string
}

// Denial reasons the hosted pages send back to the client (OIDC Core §3.1.2.6).
const (
	DenyAccessDenied        = "access_denied"
	DenyLoginRequired       = "login_required"
	DenyConsentRequired     = "consent_required"
	DenyInteractionRequired = "interaction_required"
)

// Pending returns the tenant's authorization request id while it waits for the user.
func (p *Provider) Pending(ctx context.Context, tenantID, id string) (*Pending, error) {
	var a *authRequest
	var c *sqlstore.OIDCClient
	err := p.d.DB.View(ctx, func(tx *sqlstore.Tx) error {
		row, err := tx.OIDCAuthRequest(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if row.Done || row.Denied != "" {
			return tutela.Errorf(tutela.ENOTFOUND, "authorization request not found or expired")
		}
		if a, err = decodeRequest(row); err != nil {
			return err
		}
		c, err = tx.OIDCClients(tenantID).Get(ctx, row.ClientID)
		return err
	})
	if err != nil {
		return nil, err
	}
	pd := &Pending{ID: a.row.ID, TenantID: tenantID, ClientID: c.ID, ClientName: c.Name, Scopes: a.req.Scopes,
		RequireMFA: slices.Contains(a.req.ACRValues, authz.ACRMFA), Prompt: a.req.Prompt, LoginHint: a.req.LoginHint,
		UILocales: a.req.UILocales, SkipConsent: c.SkipConsent, UserID: a.req.HintUserID}
	if u, err := url.Parse(a.req.RedirectURI); err == nil {
		pd.RedirectHost = u.Host
		if pd.RedirectHost == "" {
			pd.RedirectHost = u.Scheme + ":" // a native app's private-use scheme
		}
	}
	if a.req.MaxAge != nil {
		d := time.Duration(*a.req.MaxAge) * time.Second
		pd.MaxAge = &d
	}
	return pd, nil
}

// Complete binds the sign-in to the request and returns where to send the browser: the
// provider's callback with a key only that browser gets (callback_key.go), which sends the
// client its code. The sign-in must satisfy the
// request: the user of its id_token_hint, a second factor when acr_values asked for one, an
// authentication no older than max_age; the session must be an active Tutela session of the
// user.
func (p *Provider) Complete(ctx context.Context, tenantID, id string, a Authenticated) (string, error) {
	pd, err := p.Pending(ctx, tenantID, id)
	if err != nil {
		return "", err
	}
	now := p.d.Clock()
	switch {
	case pd.UserID != "" && pd.UserID != a.UserID:
		return "", tutela.Errorf(tutela.EFORBIDDEN, "the request is for another user")
	case pd.RequireMFA && acrOf(a.AMR) != authz.ACRMFA:
		return "", tutela.Errorf(tutela.EFORBIDDEN, "the application asked for a second factor")
	case pd.MaxAge != nil && now.Sub(a.AuthTime) > *pd.MaxAge+time.Second:
		return "", tutela.Errorf(tutela.EFORBIDDEN, "the application asked for a more recent sign-in")
	}
	var slug string
	err = p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.Tenant(ctx, tenantID)
		if err != nil {
			return err
		}
		slug = t.Slug
		sess, err := tx.SessionByID(ctx, a.SessionID)
		if err != nil || sess.TenantID != tenantID || sess.UserID != a.UserID || sess.ClientID != "" || !sess.Active(tx.Now()) {
			return tutela.Errorf(tutela.EUNAUTHENTICATED, "sign in again")
		}
		at := a.AuthTime.UTC()
		row := &sqlstore.OIDCAuthRequest{ID: id, TenantID: tenantID, UserID: a.UserID, SessionID: a.SessionID,
			AuthTime: &at, AMR: a.AMR, ACR: acrOf(a.AMR)}
		if err := tx.CompleteOIDCAuthRequest(ctx, row); err != nil {
			return err
		}
		return tx.Record(ctx, "oidc.authorize", tenantID, "oidc_client", pd.ClientID, "",
			map[string]any{"user_id": a.UserID, "session_id": a.SessionID, "scope": scopeString(pd.Scopes), "acr": row.ACR})
	})
	if err != nil {
		return "", err
	}
	return p.callbackURL(slug, id)
}

// Deny ends the request with reason (one of the Deny* values) and returns where to send the
// browser: the provider's callback, which sends the client the error.
func (p *Provider) Deny(ctx context.Context, tenantID, id, reason string) (string, error) {
	if _, ok := denialText[reason]; !ok {
		return "", tutela.FieldErrorf("reason", "unknown denial reason")
	}
	var slug string
	err := p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.Tenant(ctx, tenantID)
		if err != nil {
			return err
		}
		slug = t.Slug
		row, err := tx.OIDCAuthRequest(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if err := tx.DenyOIDCAuthRequest(ctx, tenantID, id, reason); err != nil {
			return err
		}
		return tx.Record(ctx, "oidc.authorize", tenantID, "oidc_client", row.ClientID, "denied",
			map[string]any{"reason": reason})
	})
	if err != nil {
		return "", err
	}
	return p.Issuer(slug) + "/authorize/callback?id=" + url.QueryEscape(id), nil
}
