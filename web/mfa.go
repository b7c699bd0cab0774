package web

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"tutela"
	"tutela/identity"
	"tutela/mfa"
	"tutela/oidc"
)

type mfaView struct {
	ID string
	// StepUp: the user is signed in and proves a second factor again (acr_values asked for
	// one); otherwise this completes a password sign-in.
	StepUp bool
	// PasskeyOptions are the WebAuthn request options (JSON) when the user has a passkey.
	PasskeyOptions string
	Error          msgKey
}

// mfaChallenge reads the pending sign-in's challenge cookie.
func mfaChallenge(r *http.Request) (challenge string, methods []string) {
	c, err := r.Cookie(mfaCookie)
	if err != nil {
		return "", nil
	}
	m, ch, ok := strings.Cut(c.Value, ":")
	if !ok || ch == "" || len(ch) > 128 {
		return "", nil
	}
	return ch, strings.Split(m, "+")
}

func clearMFAChallenge(pr *Request) {
	http.SetCookie(pr.W, &http.Cookie{Name: mfaCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// mfaPage: GET /t/{tenant}/mfa?id=: the second factor of a password sign-in, or a step-up of
// the current session when the request needs one (acr_values). Without either, back to sign-in.
func (p *Pages) mfaPage(pr *Request) {
	id := pr.R.URL.Query().Get("id")
	pd, ok := p.pending(pr, id)
	if !ok {
		return
	}
	p.showMFA(pr, pd, http.StatusOK, "")
}

func (p *Pages) showMFA(pr *Request, pd *oidc.Pending, status int, e msgKey) {
	ctx := pr.R.Context()
	v := mfaView{ID: pd.ID, Error: e}
	if challenge, methods := mfaChallenge(pr.R); challenge != "" {
		if slices.Contains(methods, mfa.TypeWebAuthn) {
			opts, err := p.d.Identity.MFAWebAuthnOptions(ctx, challenge)
			if tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
				clearMFAChallenge(pr)
				p.renderLogin(pr, http.StatusUnauthorized, loginView{ID: pd.ID, Error: msgErrChallengeExpired})
				return
			}
			if err != nil {
				p.internal(pr, err)
				return
			}
			v.PasskeyOptions = string(opts)
		}
		p.render(pr, status, "mfa", msgTitleMFA, v, "passkey.js")
		return
	}
	pp := p.session(pr)
	if !p.usable(pr, pd, pp) {
		p.redirect(pr, pageURL(pr, "login", pd.ID))
		return
	}
	v.StepUp = true
	if p.d.Identity.MFA != nil {
		fs, err := p.d.Identity.MFA.Factors(ctx, pp.TenantID, pp.UserID)
		if err != nil {
			p.internal(pr, err)
			return
		}
		if slices.ContainsFunc(fs, func(f *mfa.Factor) bool { return f.Active && f.Type == mfa.TypeWebAuthn }) {
			opts, err := p.d.Identity.MFA.BeginWebAuthnLogin(ctx, pp.TenantID, pp.UserID)
			if err != nil {
				p.internal(pr, err)
				return
			}
			v.PasskeyOptions = string(opts)
		}
	}
	p.render(pr, status, "mfa", msgTitleMFA, v, "passkey.js")
}

// factorFromForm returns the code or the passkey assertion the form carries (one of them).
func factorFromForm(pr *Request) (code string, assertion []byte, ok bool) {
	code, wa := strings.TrimSpace(pr.R.PostForm.Get("code")), pr.R.PostForm.Get("webauthn")
	switch {
	case wa != "":
		return "", []byte(wa), true
	case code != "" && len(code) <= 64:
		return code, nil, true
	}
	return "", nil, false
}

// mfaSubmit: POST /t/{tenant}/mfa (id, code or webauthn).
func (p *Pages) mfaSubmit(pr *Request) {
	ctx := pr.R.Context()
	pd, ok := p.pending(pr, pr.R.PostForm.Get("id"))
	if !ok {
		return
	}
	code, wa, ok := factorFromForm(pr)
	if !ok {
		p.showMFA(pr, pd, http.StatusBadRequest, msgErrCodeMissing)
		return
	}
	ip, ua := clientInfo(pr.R)
	var secret tutela.Secret
	var err error
	if challenge, _ := mfaChallenge(pr.R); challenge != "" {
		var g *identity.Grant
		if g, err = p.d.Identity.CompleteMFA(ctx, challenge, code, wa, ip, ua); err == nil {
			clearMFAChallenge(pr)
			secret = g.SessionSecret
			setSession(pr, secret, g.Session.AbsoluteExpiry)
		}
	} else {
		pp := p.session(pr)
		if !p.usable(pr, pd, pp) {
			p.redirect(pr, pageURL(pr, "login", pd.ID))
			return
		}
		if secret, err = p.d.Identity.StepUp(ctx, pp, code, wa, ip); err == nil {
			setSession(pr, secret, pp.SessionExpiry)
		}
	}
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
		return
	case tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED:
		clearMFAChallenge(pr)
		p.renderLogin(pr, http.StatusUnauthorized, loginView{ID: pd.ID, Error: msgErrChallengeExpired})
		return
	case tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS, tutela.ErrorCode(err) == tutela.EINVALID:
		p.showMFA(pr, pd, http.StatusUnauthorized, msgErrCode)
		return
	case err != nil:
		p.internal(pr, err)
		return
	}
	p.signedIn(pr, pd, secret)
}
