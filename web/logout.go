package web

import (
	"net/http"
	"time"

	"tutela/httpapi/middleware"
)

// logoutPage: GET /t/{tenant}/logout: a confirmation (the provider's end_session endpoint
// sends the browser here when the client gave no id_token_hint, so a link alone must not sign
// anyone out). Without a session there is nothing to confirm.
func (p *Pages) logoutPage(pr *Request) {
	if p.session(pr) == nil {
		p.redirect(pr, "/t/"+pr.Tenant.Slug+"/logged-out")
		return
	}
	p.render(pr, http.StatusOK, "logout", msgTitleLogout, nil)
}

// logoutSubmit: POST /t/{tenant}/logout: ends the session (and the client sessions made from
// it) and deletes the cookie.
func (p *Pages) logoutSubmit(pr *Request) {
	if pp := p.session(pr); pp != nil {
		if err := p.d.Identity.Logout(pr.R.Context(), pp); err != nil {
			p.internal(pr, err)
			return
		}
	}
	middleware.SetSessionCookie(pr.W, "", time.Time{})
	p.redirect(pr, "/t/"+pr.Tenant.Slug+"/logged-out")
}

// loggedOutPage: GET /t/{tenant}/logged-out.
func (p *Pages) loggedOutPage(pr *Request) {
	p.render(pr, http.StatusOK, "loggedout", msgTitleLoggedOut, nil)
}
