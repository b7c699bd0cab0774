package web

import (
	"crypto/hmac"
	"net/http"
	"net/url"
	"slices"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/oidc"
	"tutela/sqlstore"
)

// maxRequestID bounds the id parameter before it reaches the provider.
const maxRequestID = 128

// pending loads the authorization request the page continues. Unknown, expired or finished
// requests (and one of another tenant) get the error page; ok is false then.
func (p *Pages) pending(pr *Request, id string) (*oidc.Pending, bool) {
	if id == "" || len(id) > maxRequestID || p.d.Flow == nil {
		p.fail(pr, http.StatusBadRequest, msgErrNoRequest)
		return nil, false
	}
	pd, err := p.d.Flow.Pending(pr.R.Context(), pr.Tenant.ID, id)
	switch {
	case tutela.ErrorCode(err) == tutela.ENOTFOUND:
		p.fail(pr, http.StatusNotFound, msgErrRequestGone)
		return nil, false
	case err != nil:
		p.internal(pr, err)
		return nil, false
	case pd.TenantID != pr.Tenant.ID || pd.ID != id:
		p.fail(pr, http.StatusNotFound, msgErrRequestGone)
		return nil, false
	}
	p.setLanguage(pr, pd.UILocales)
	if src := redirectSource(pd.RedirectHost); src != "" {
		pr.FormAction = append(pr.FormAction, src)
	}
	return pd, true
}

// session returns the browser's signed-in principal of this tenant, or nil: no cookie, an
// ended session, or a session of another tenant (each tenant signs in on its own).
func (p *Pages) session(pr *Request) *tutela.Principal {
	c, err := pr.R.Cookie(middleware.SessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	pp, err := p.d.Identity.AuthenticateSession(pr.R.Context(), c.Value)
	if err != nil || pp.TenantID != pr.Tenant.ID || pp.Kind != tutela.PrincipalUser {
		return nil
	}
	return pp
}

// authTime is the session's latest authentication event: its sign-in, a later step-up or a
// re-entered password (OIDC Core auth_time, checked against max_age).
func authTime(pp *tutela.Principal) time.Time {
	t := pp.AuthTime
	for _, u := range []time.Time{pp.StepUpAt, pp.ReauthAt} {
		if u.After(t) {
			t = u
		}
	}
	return t
}

func hasSecondFactor(amr []string) bool { return slices.ContainsFunc(amr, authz.SecondFactorAMR) }

func prompts(pd *oidc.Pending, v string) bool { return slices.Contains(pd.Prompt, v) }

// reusable reports whether an existing session may answer the request without a password
// (single sign-on): not when the client asked for a fresh login (prompt=login), when the last
// authentication is older than max_age (max_age=0: always), or when the request names another
// user (id_token_hint).
func (p *Pages) reusable(pd *oidc.Pending, pp *tutela.Principal) bool {
	if pp == nil || prompts(pd, "login") || pp.MustChangePassword {
		return false
	}
	if pd.MaxAge != nil && (*pd.MaxAge <= 0 || p.d.Clock().Sub(authTime(pp)) > *pd.MaxAge) {
		return false
	}
	return pd.UserID == "" || pd.UserID == pp.UserID
}

// flowCookie marks that the browser authenticated within one authorization request: the pages
// after the password (second factor, enrolment, consent) must not send a user who just signed in
// because of prompt=login or max_age back to sign in again. Its value names the request and is
// an HMAC over it and the session, so it proves nothing for another request or session.
const flowCookie = "__Host-tutela_flow"

func (p *Pages) flowMark(pr *Request, pdID, sessionID string) string {
	return pdID + "." + p.mac("flow", pr.Tenant.ID, pdID, sessionID)
}

// markFresh records that the session authenticated within request pd.
func (p *Pages) markFresh(pr *Request, pd *oidc.Pending, pp *tutela.Principal) {
	http.SetCookie(pr.W, &http.Cookie{Name: flowCookie, Value: p.flowMark(pr, pd.ID, pp.SessionID), Path: "/", Secure: true,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: 600})
}

// freshIn reports whether the session authenticated within request pd (markFresh).
func (p *Pages) freshIn(pr *Request, pd *oidc.Pending, pp *tutela.Principal) bool {
	c, err := pr.R.Cookie(flowCookie)
	return err == nil && pp != nil && hmac.Equal([]byte(c.Value), []byte(p.flowMark(pr, pd.ID, pp.SessionID)))
}

// usable reports whether the session may continue request pd: reusable for it, or signed in
// within it (for the right user).
func (p *Pages) usable(pr *Request, pd *oidc.Pending, pp *tutela.Principal) bool {
	if p.reusable(pd, pp) {
		return true
	}
	return pp != nil && !pp.MustChangePassword && p.freshIn(pr, pd, pp) && (pd.UserID == "" || pd.UserID == pp.UserID)
}

// step is what the signed-in user must do next for the request.
type step int

const (
	stepEnroll  step = iota // no second factor yet, and one is needed
	stepMFA                 // a second factor must be proved in this session (step-up)
	stepConsent             // the user must allow the client the scopes
	stepDone                // the request can be completed
)

// nextStep decides, for a principal whose session is usable for the request, what is missing.
func (p *Pages) nextStep(pr *Request, pd *oidc.Pending, pp *tutela.Principal) (step, error) {
	ctx := pr.R.Context()
	if pp.MustEnrollMFA {
		return stepEnroll, nil
	}
	if pd.RequireMFA && !hasSecondFactor(pp.AMR) {
		has := false
		if p.d.Identity.MFA != nil {
			var err error
			if has, err = p.d.Identity.MFA.HasActiveFactor(ctx, pp.TenantID, pp.UserID); err != nil {
				return 0, err
			}
		}
		if !has {
			return stepEnroll, nil
		}
		return stepMFA, nil
	}
	if pd.SkipConsent && !prompts(pd, "consent") {
		return stepDone, nil
	}
	if prompts(pd, "consent") {
		return stepConsent, nil
	}
	var covered bool
	err := p.d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		covered, err = tx.OIDCConsents(pr.Tenant.ID).Covers(ctx, pp.UserID, pd.ClientID, pd.Scopes)
		return err
	})
	if err != nil {
		return 0, err
	}
	if covered {
		return stepDone, nil
	}
	return stepConsent, nil
}

// pageURL is the URL of one of this tenant's pages continuing request id.
func pageURL(pr *Request, page, id string) string {
	return "/t/" + pr.Tenant.Slug + "/" + page + "?" + url.Values{"id": {id}}.Encode()
}

// proceed takes a signed-in principal through the rest of the request: enrolment, step-up,
// consent, then back to the client. With prompt=none nothing may be shown, so a missing step
// is the client's error instead (OIDC Core §3.1.2.6).
func (p *Pages) proceed(pr *Request, pd *oidc.Pending, pp *tutela.Principal) {
	st, err := p.nextStep(pr, pd, pp)
	if err != nil {
		p.internal(pr, err)
		return
	}
	none := prompts(pd, "none")
	switch st {
	case stepEnroll:
		if none {
			p.deny(pr, pd, oidc.DenyInteractionRequired)
			return
		}
		p.redirect(pr, pageURL(pr, "enroll", pd.ID))
	case stepMFA:
		if none {
			p.deny(pr, pd, oidc.DenyInteractionRequired)
			return
		}
		p.redirect(pr, pageURL(pr, "mfa", pd.ID))
	case stepConsent:
		if none {
			p.deny(pr, pd, oidc.DenyConsentRequired)
			return
		}
		p.redirect(pr, pageURL(pr, "consent", pd.ID))
	default:
		p.complete(pr, pd, pp)
	}
}

// complete hands the sign-in to the provider and sends the browser back to the client.
func (p *Pages) complete(pr *Request, pd *oidc.Pending, pp *tutela.Principal) {
	to, err := p.d.Flow.Complete(pr.R.Context(), pr.Tenant.ID, pd.ID, oidc.Authenticated{
		UserID: pp.UserID, SessionID: pp.SessionID, AuthTime: authTime(pp), AMR: slices.Clone(pp.AMR)})
	if err != nil {
		p.flowError(pr, err)
		return
	}
	p.redirect(pr, to)
}

// deny sends the browser back to the client with an error (reason: oidc.Deny*).
func (p *Pages) deny(pr *Request, pd *oidc.Pending, reason string) {
	to, err := p.d.Flow.Deny(pr.R.Context(), pr.Tenant.ID, pd.ID, reason)
	if err != nil {
		p.flowError(pr, err)
		return
	}
	p.redirect(pr, to)
}

func (p *Pages) flowError(pr *Request, err error) {
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		p.fail(pr, http.StatusNotFound, msgErrRequestGone)
		return
	}
	p.internal(pr, err)
}

// redirect answers with 303 See Other: after a POST the browser follows with a GET.
func (p *Pages) redirect(pr *Request, to string) {
	http.Redirect(pr.W, pr.R, to, http.StatusSeeOther)
}

// setSession sets the session cookie for a new or renewed session secret.
func setSession(pr *Request, secret tutela.Secret, expires time.Time) {
	if !secret.IsZero() {
		middleware.SetSessionCookie(pr.W, secret.Reveal(), expires)
	}
}

func middlewareClientIP(r *http.Request) string {
	if a := middleware.ClientIPFrom(r.Context()); a.IsValid() {
		return a.String()
	}
	return ""
}
