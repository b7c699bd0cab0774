package web

import (
	"errors"
	"net/http"
	"strings"

	"tutela"
	"tutela/identity"
	"tutela/oidc"
)

// mfaCookie carries a pending sign-in's second-factor challenge (identity.MFARequiredError)
// from the password page to the second-factor page: HttpOnly, so no script reads it, and it
// expires with the challenge. Its value is "methods:challenge", methods joined by "+".
const mfaCookie = "__Host-tutela_mfa"

type loginView struct {
	ID    string
	Email string
	// Error is the form's error (the one answer for every wrong e-mail or password).
	Error msgKey
}

// loginPage: GET /t/{tenant}/login?id=. A session that can answer the request signs the user
// in without a password (SSO); prompt=none without one goes back to the client with
// login_required; otherwise the form.
func (p *Pages) loginPage(pr *Request) {
	id := pr.R.URL.Query().Get("id")
	pd, ok := p.pending(pr, id)
	if !ok {
		return
	}
	if pp := p.session(pr); p.usable(pr, pd, pp) {
		p.proceed(pr, pd, pp)
		return
	}
	if prompts(pd, "none") {
		p.deny(pr, pd, oidc.DenyLoginRequired)
		return
	}
	p.renderLogin(pr, http.StatusOK, loginView{ID: id, Email: pd.LoginHint})
}

func (p *Pages) renderLogin(pr *Request, status int, v loginView) {
	p.render(pr, status, "login", msgTitleLogin, v, "passkey-login.js")
}

// loginSubmit: POST /t/{tenant}/login (id, email, password). Every refused sign-in shows the
// same page with the same message (identity.ErrInvalidCredentials: no account enumeration).
func (p *Pages) loginSubmit(pr *Request) {
	f := pr.R.PostForm
	id := f.Get("id")
	pd, ok := p.pending(pr, id)
	if !ok {
		return
	}
	email := strings.TrimSpace(f.Get("email"))
	pw := tutela.NewSecret(f.Get("password"))
	if email == "" || pw.IsZero() || len(email) > 254 {
		p.renderLogin(pr, http.StatusBadRequest, loginView{ID: id, Email: email, Error: msgErrMissingCredentials})
		return
	}
	ip, ua := clientInfo(pr.R)
	g, err := p.d.Identity.Login(pr.R.Context(), identity.LoginRequest{Tenant: pr.Tenant.Slug, Email: email,
		Password: pw, IP: ip, UserAgent: ua})
	var mfaErr *identity.MFARequiredError
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &mfaErr):
		http.SetCookie(pr.W, &http.Cookie{Name: mfaCookie, Value: strings.Join(mfaErr.Methods, "+") + ":" + mfaErr.Challenge.Reveal(),
			Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(mfaErr.ExpiresIn.Seconds())})
		p.redirect(pr, pageURL(pr, "mfa", id))
		return
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
		return
	case tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS, tutela.ErrorCode(err) == tutela.EINVALID:
		p.renderLogin(pr, http.StatusUnauthorized, loginView{ID: id, Email: email, Error: msgErrCredentials})
		return
	case err != nil:
		p.internal(pr, err)
		return
	}
	setSession(pr, g.SessionSecret, g.Session.AbsoluteExpiry)
	p.signedIn(pr, pd, g.SessionSecret)
}

// signedIn continues the request with the session whose secret was just issued or renewed.
func (p *Pages) signedIn(pr *Request, pd *oidc.Pending, secret tutela.Secret) {
	pp, err := p.d.Identity.AuthenticateSession(pr.R.Context(), secret.Reveal())
	if err != nil {
		p.internal(pr, err)
		return
	}
	if pp.MustChangePassword {
		p.fail(pr, http.StatusForbidden, msgErrPasswordChange)
		return
	}
	if pd.UserID != "" && pd.UserID != pp.UserID {
		// The client asked for another user (id_token_hint): this sign-in cannot answer it.
		p.deny(pr, pd, oidc.DenyLoginRequired)
		return
	}
	p.markFresh(pr, pd, pp)
	p.proceed(pr, pd, pp)
}

// clientInfo is the client's address (as the middleware resolved it) and user agent.
func clientInfo(r *http.Request) (ip, ua string) {
	ip = "unknown"
	if a := middlewareClientIP(r); a != "" {
		ip = a
	}
	return ip, r.UserAgent()
}
