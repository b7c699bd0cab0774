package web

import (
	"errors"
	"net/http"
	"strings"

	"tutela"
	"tutela/identity"
)

// The account page's own sign-in, /t/{tenant}/account/login: the sign-in page serves an
// application's authorization request (?id=), and the account page is reached without one. It
// takes the same steps through identity: the password (identity.Login, throttled, no
// enumeration), then the second factor the user has (identity.CompleteMFA, with the challenge
// in the same cookie as the sign-in page's), or a passkey alone (passkey-login.js, POST
// /t/{tenant}/passkey with next=account).

type accountLoginView struct {
	// Code: the password was right; the second factor is asked.
	Code  bool
	Email string
	Error msgKey
}

func (p *Pages) renderAccountLogin(pr *Request, status int, v accountLoginView) {
	p.render(pr, status, "account_login", msgTitleLogin, v, "passkey-login.js")
}

// accountLoginPage: GET /t/{tenant}/account/login.
func (p *Pages) accountLoginPage(pr *Request) {
	if p.session(pr) != nil {
		p.redirect(pr, accountURL(pr, ""))
		return
	}
	challenge, _ := mfaChallenge(pr.R)
	p.renderAccountLogin(pr, http.StatusOK, accountLoginView{Code: challenge != ""})
}

// accountLoginSubmit: POST /t/{tenant}/account/login (email and password; or code after them).
func (p *Pages) accountLoginSubmit(pr *Request) {
	ctx := pr.R.Context()
	f := pr.R.PostForm
	ip, ua := clientInfo(pr.R)
	var g *identity.Grant
	var err error
	if challenge, _ := mfaChallenge(pr.R); challenge != "" && f.Has("code") {
		code := strings.TrimSpace(f.Get("code"))
		if code == "" || len(code) > 64 {
			p.renderAccountLogin(pr, http.StatusBadRequest, accountLoginView{Code: true, Error: msgErrCodeMissing})
			return
		}
		g, err = p.d.Identity.CompleteMFA(ctx, challenge, code, nil, ip, ua)
		if tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS {
			p.renderAccountLogin(pr, http.StatusUnauthorized, accountLoginView{Code: true, Error: msgErrCode})
			return
		}
		if err == nil {
			clearMFAChallenge(pr)
		}
	} else {
		email := strings.TrimSpace(f.Get("email"))
		pw := tutela.NewSecret(f.Get("password"))
		if email == "" || pw.IsZero() || len(email) > 254 {
			p.renderAccountLogin(pr, http.StatusBadRequest, accountLoginView{Email: email, Error: msgErrMissingCredentials})
			return
		}
		g, err = p.d.Identity.Login(ctx, identity.LoginRequest{Tenant: pr.Tenant.Slug, Email: email, Password: pw, IP: ip, UserAgent: ua})
		var mfaErr *identity.MFARequiredError
		if errors.As(err, &mfaErr) {
			http.SetCookie(pr.W, &http.Cookie{Name: mfaCookie, Value: strings.Join(mfaErr.Methods, "+") + ":" + mfaErr.Challenge.Reveal(),
				Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(mfaErr.ExpiresIn.Seconds())})
			p.renderAccountLogin(pr, http.StatusOK, accountLoginView{Code: true})
			return
		}
		if tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS || tutela.ErrorCode(err) == tutela.EINVALID {
			p.renderAccountLogin(pr, http.StatusUnauthorized, accountLoginView{Email: email, Error: msgErrCredentials})
			return
		}
	}
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
		return
	case tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED:
		clearMFAChallenge(pr)
		p.renderAccountLogin(pr, http.StatusUnauthorized, accountLoginView{Error: msgErrChallengeExpired})
		return
	case err != nil:
		p.internal(pr, err)
		return
	}
	setSession(pr, g.SessionSecret, g.Session.AbsoluteExpiry)
	p.redirect(pr, accountURL(pr, ""))
}
