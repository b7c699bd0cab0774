package web

import (
	"errors"
	"net/http"
	"strings"

	"tutela"
	"tutela/identity"
)

type forgotView struct {
	ID    string // the authorization request to return to, if any
	Email string
	Sent  bool
	Error msgKey
}

type resetView struct {
	ID    string
	Code  string
	Done  bool
	Error msgKey
}

// returnID is the optional authorization request a password page returns to (a link back to
// sign-in); it is only ever put in a URL of ours.
func returnID(v string) string {
	if len(v) > maxRequestID {
		return ""
	}
	return v
}

// forgotPage: GET /t/{tenant}/forgot: ask for a reset code by e-mail.
func (p *Pages) forgotPage(pr *Request) {
	p.render(pr, http.StatusOK, "forgot", msgTitleForgot, forgotView{ID: returnID(pr.R.URL.Query().Get("id"))})
}

// forgotSubmit: POST /t/{tenant}/forgot (email). The answer is the same whether or not the
// account exists (identity.ForgotPassword only queues the request).
func (p *Pages) forgotSubmit(pr *Request) {
	v := forgotView{ID: returnID(pr.R.PostForm.Get("id")), Email: strings.TrimSpace(pr.R.PostForm.Get("email"))}
	if v.Email == "" || len(v.Email) > 254 {
		v.Error = msgErrEmailMissing
		p.render(pr, http.StatusBadRequest, "forgot", msgTitleForgot, v)
		return
	}
	ip, _ := clientInfo(pr.R)
	err := p.d.Identity.ForgotPassword(pr.R.Context(), pr.Tenant.Slug, v.Email, ip)
	switch tutela.ErrorCode(err) {
	case "":
		v.Sent = true
		p.render(pr, http.StatusOK, "forgot", msgTitleForgot, v)
	case tutela.ENOTCONFIGURED:
		p.fail(pr, http.StatusNotImplemented, msgErrResetUnavailable)
	case tutela.EUNAVAILABLE:
		p.fail(pr, http.StatusServiceUnavailable, msgErrBusy)
	case tutela.EINVALID:
		v.Error = msgErrEmailMissing
		p.render(pr, http.StatusBadRequest, "forgot", msgTitleForgot, v)
	default:
		p.internal(pr, err)
	}
}

// resetPage: GET /t/{tenant}/reset: the e-mailed code and a new password.
func (p *Pages) resetPage(pr *Request) {
	p.render(pr, http.StatusOK, "reset", msgTitleReset, resetView{ID: returnID(pr.R.URL.Query().Get("id"))})
}

// resetSubmit: POST /t/{tenant}/reset (code, password, confirm).
func (p *Pages) resetSubmit(pr *Request) {
	f := pr.R.PostForm
	v := resetView{ID: returnID(f.Get("id")), Code: strings.TrimSpace(f.Get("code"))}
	pw := f.Get("password")
	switch {
	case v.Code == "" || len(v.Code) > 256:
		v.Error = msgErrResetCode
	case pw == "":
		v.Error = msgErrPasswordMissing
	case pw != f.Get("confirm"):
		v.Error = msgErrPasswordMismatch
	}
	if v.Error != "" {
		p.render(pr, http.StatusBadRequest, "reset", msgTitleReset, v)
		return
	}
	ip, _ := clientInfo(pr.R)
	err := p.d.Identity.ResetPassword(pr.R.Context(), v.Code, tutela.NewSecret(pw), ip)
	var throttled *identity.ThrottledError
	switch {
	case err == nil:
		p.render(pr, http.StatusOK, "reset", msgTitleReset, resetView{ID: v.ID, Done: true})
		return
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
		return
	case tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED, tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS:
		v.Error = msgErrResetCode
	case tutela.ErrorCode(err) == tutela.EINVALID:
		v.Error = msgErrPasswordWeak
	default:
		p.internal(pr, err)
		return
	}
	p.render(pr, http.StatusBadRequest, "reset", msgTitleReset, v)
}
