// Package oidc is Tutela's OpenID Provider: the zitadel/oidc op library (a certified OP)
// over Tutela's store, sessions, tokens and key ring, one issuer per tenant at
// {public_url}/t/{tenant-slug}. The hosted pages (package web) sign the user in and hand the
// result back through Flow.
package oidc

import "time"

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
