// Package oidc is Tutela's OpenID Provider: the zitadel/oidc op library (a certified OP)
// over Tutela's store, sessions, tokens and key ring, one issuer per tenant at
// {public_url}/t/{tenant-slug}. The hosted pages (package web) sign the user in and hand the
// result back through Flow.
package oidc

import (
	"context"
	"math"
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
	// Public: the client cannot authenticate (auth method none), so anyone can use its client
	// ID with a redirect they receive (a loopback port, a private-use scheme another app
	// claims): consent is asked every time, never remembered (RFC 8252 §8.6, ASVS 10.7.1).
	Public bool
	// UserID is set when the request carried an id_token_hint: only that user may complete it.
	UserID string
}

// Authenticated is the sign-in that completes a Pending request: the user and the browser's
// Tutela session. The provider reads how and when the session authenticated (amr, the latest
// sign-in, step-up or re-authentication) from the session itself, never from the caller.
type Authenticated struct {
	UserID    string
	SessionID string // the browser's Tutela session
}

// Denial reasons the hosted pages send back to the client (OIDC Core §3.1.2.6).
const (
	DenyAccessDenied        = "access_denied"
	DenyLoginRequired       = "login_required"
	DenyConsentRequired     = "consent_required"
	DenyInteractionRequired = "interaction_required"
)

// Pending returns the tenant's authorization request id while it waits for the user.
func (p *Provider) Pending(ctx context.Context, tenantID, id string) (pd *Pending, err error) {
	err = p.d.DB.View(ctx, func(tx *sqlstore.Tx) error {
		pd, _, err = pending(ctx, tx, tenantID, id)
		return err
	})
	return pd, err
}

// pending reads the tenant's authorization request id, waiting for the user, and its row.
func pending(ctx context.Context, tx *sqlstore.Tx, tenantID, id string) (*Pending, *authRequest, error) {
	row, err := tx.OIDCAuthRequest(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	if row.Done || row.Denied != "" {
		return nil, nil, tutela.Errorf(tutela.ENOTFOUND, "authorization request not found or expired")
	}
	a, err := decodeRequest(row)
	if err != nil {
		return nil, nil, err
	}
	c, err := tx.OIDCClients(tenantID).Get(ctx, row.ClientID)
	if err != nil {
		return nil, nil, err
	}
	if c.Status != "active" {
		// Disabled since the request began: it goes nowhere, not even back to the client.
		return nil, nil, tutela.Errorf(tutela.ENOTFOUND, "authorization request not found or expired")
	}
	pd := &Pending{ID: a.row.ID, TenantID: tenantID, ClientID: c.ID, ClientName: c.Name, Scopes: a.req.Scopes,
		RequireMFA: slices.Contains(a.req.ACRValues, authz.ACRMFA), Prompt: a.req.Prompt, LoginHint: a.req.LoginHint,
		UILocales: a.req.UILocales, SkipConsent: c.SkipConsent && !c.Public(), UserID: a.req.HintUserID, Public: c.Public()}
	if u, err := url.Parse(a.req.RedirectURI); err == nil {
		pd.RedirectHost = u.Host
		if pd.RedirectHost == "" {
			pd.RedirectHost = u.Scheme + ":" // a native app's private-use scheme
		}
	}
	if a.req.MaxAge != nil {
		d := maxAgeDuration(*a.req.MaxAge)
		pd.MaxAge = &d
	}
	return pd, a, nil
}

// Complete binds the sign-in to the request and returns where to send the browser: the
// client's redirect URI with a fresh code, state and iss. Only the browser that completed the
// request gets the code (there is no callback a third party could poll). The sign-in must
// satisfy the request, judged from the session: an active Tutela session of the user, of the
// user of its id_token_hint, with a second factor when acr_values asked for one, and an
// authentication no older than max_age.
func (p *Provider) Complete(ctx context.Context, tenantID, id string, a Authenticated) (string, error) {
	var to string
	err := p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		pd, a2, err := pending(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		if pd.UserID != "" && pd.UserID != a.UserID {
			return errSignInAgain
		}
		t, err := tx.Tenant(ctx, tenantID)
		if err != nil {
			return err
		}
		sess, err := tx.SessionByID(ctx, a.SessionID)
		if err != nil || sess.TenantID != tenantID || sess.UserID != a.UserID || sess.ClientID != "" || !sess.Active(tx.Now()) {
			return errSignInAgain
		}
		row := a2.row
		// max_age is the time since the last active authentication when the request was made
		// (OIDC Core §3.1.2.1): a sign-in after the request began always satisfies it, however
		// long the user then spends enrolling a factor or reading the consent page.
		at := sessionAuthTime(sess)
		acr := acrOf(sess.AMR)
		switch {
		case pd.RequireMFA && acr != authz.ACRMFA:
			return errSignInAgain
		case pd.MaxAge != nil && row.CreatedAt.Sub(at) > *pd.MaxAge:
			return errSignInAgain
		}
		row.UserID, row.SessionID, row.AuthTime, row.AMR, row.ACR = a.UserID, a.SessionID, &at, sess.AMR, acr
		if err := tx.CompleteOIDCAuthRequest(ctx, row); err != nil {
			return err
		}
		code := tutela.RandomB64(32)
		if err := tx.SaveOIDCCode(ctx, tenantID, id, sqlstore.HashToken(code)); err != nil {
			return err
		}
		to = authResponse(a2.req.RedirectURI, url.Values{"code": {code}, "state": {a2.req.State}, "iss": {p.Issuer(t.Slug)}})
		return tx.Record(ctx, "oidc.authorize", tenantID, "oidc_client", pd.ClientID, "",
			map[string]any{"user_id": a.UserID, "session_id": a.SessionID, "scope": scopeString(pd.Scopes), "acr": acr})
	})
	if err != nil {
		return "", err
	}
	return to, nil
}

// errSignInAgain: the session does not (or no longer) satisfy the request; the pages ask the
// user to sign in again.
var errSignInAgain = tutela.Errorf(tutela.EUNAUTHENTICATED, "sign in again")

// sessionAuthTime is the session's latest authentication: its sign-in, a step-up or a
// re-entered password.
func sessionAuthTime(s *sqlstore.Session) time.Time {
	t := s.CreatedAt
	for _, u := range []*time.Time{s.StepUpAt, s.ReauthAt} {
		if u != nil && u.After(t) {
			t = *u
		}
	}
	return t
}

// authResponse is the redirect URI with the response parameters added to its query (RFC 6749
// §4.1.2: the registered URI's own query is kept). Empty values are left out.
func authResponse(redirectURI string, params url.Values) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	q := u.Query()
	for k, v := range params {
		if len(v) > 0 && v[0] != "" {
			q.Set(k, v[0])
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Deny ends the request with reason (one of the Deny* values) and returns where to send the
// browser: the client's redirect URI with the error, state and iss.
func (p *Provider) Deny(ctx context.Context, tenantID, id, reason string) (string, error) {
	desc, ok := denialText[reason]
	if !ok {
		return "", tutela.FieldErrorf("reason", "unknown denial reason")
	}
	if _, err := p.Pending(ctx, tenantID, id); err != nil {
		return "", err
	}
	var to string
	err := p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.Tenant(ctx, tenantID)
		if err != nil {
			return err
		}
		row, err := tx.OIDCAuthRequest(ctx, tenantID, id)
		if err != nil {
			return err
		}
		a, err := decodeRequest(row)
		if err != nil {
			return err
		}
		if err := tx.DenyOIDCAuthRequest(ctx, tenantID, id, reason); err != nil {
			return err
		}
		to = authResponse(a.req.RedirectURI, url.Values{"error": {reason}, "error_description": {desc},
			"state": {a.req.State}, "iss": {p.Issuer(t.Slug)}})
		return tx.Record(ctx, "oidc.authorize", tenantID, "oidc_client", row.ClientID, "denied",
			map[string]any{"reason": reason})
	})
	if err != nil {
		return "", err
	}
	return to, nil
}

// denialText explains a refusal to the client's developers.
var denialText = map[string]string{
	DenyAccessDenied:        "the user refused",
	DenyLoginRequired:       "the user is not signed in",
	DenyConsentRequired:     "the user has not consented to this client",
	DenyInteractionRequired: "the user must interact with the sign-in page",
}

// maxAgeDuration turns a request's max_age (seconds, any unsigned value a client sends) into a
// bound: past what a time.Duration holds (~292 years) it is the largest Duration rather than a
// product that wrapped around to a small or negative bound.
func maxAgeDuration(sec uint) time.Duration {
	if uint64(sec) > uint64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(sec) * time.Second // #nosec G115 -- bounded on the line above
}
