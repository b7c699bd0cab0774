package web

import (
	"net/http"

	"tutela/oidc"
	"tutela/sqlstore"
)

// scopeText says in plain words what each scope gives the application; a scope without its own
// words is listed by name.
var scopeText = map[string]msgKey{
	"openid":         msgScopeOpenID,
	"profile":        msgScopeProfile,
	"email":          msgScopeEmail,
	"roles":          msgScopeRoles,
	"offline_access": msgScopeOffline,
}

type scopeLine struct {
	Scope string
	Text  msgKey // "" for a scope listed by name
}

type consentView struct {
	ID, Client, RedirectHost string
	Scopes                   []scopeLine
}

// consentPage: GET /t/{tenant}/consent?id=: what the application asks for, to allow or deny.
// Shown only when the request still needs consent; otherwise the request goes on.
func (p *Pages) consentPage(pr *Request) {
	pd, ok := p.pending(pr, pr.R.URL.Query().Get("id"))
	if !ok {
		return
	}
	pp := p.session(pr)
	if !p.usable(pr, pd, pp) {
		p.redirect(pr, pageURL(pr, "login", pd.ID))
		return
	}
	st, err := p.nextStep(pr, pd, pp)
	if err != nil {
		p.internal(pr, err)
		return
	}
	if st != stepConsent || prompts(pd, "none") {
		p.proceed(pr, pd, pp)
		return
	}
	v := consentView{ID: pd.ID, Client: pd.ClientName, RedirectHost: pd.RedirectHost}
	for _, s := range pd.Scopes {
		v.Scopes = append(v.Scopes, scopeLine{Scope: s, Text: scopeText[s]})
	}
	p.render(pr, http.StatusOK, "consent", msgTitleConsent, v)
}

// consentSubmit: POST /t/{tenant}/consent (id, decision=allow|deny). Allow remembers the
// consent (merged with earlier grants) and completes the request; deny answers the client
// access_denied.
func (p *Pages) consentSubmit(pr *Request) {
	ctx := pr.R.Context()
	pd, ok := p.pending(pr, pr.R.PostForm.Get("id"))
	if !ok {
		return
	}
	pp := p.session(pr)
	if !p.usable(pr, pd, pp) {
		p.redirect(pr, pageURL(pr, "login", pd.ID))
		return
	}
	st, err := p.nextStep(pr, pd, pp)
	if err != nil {
		p.internal(pr, err)
		return
	}
	if st != stepConsent && st != stepDone {
		p.proceed(pr, pd, pp) // a second factor is still missing: that first
		return
	}
	switch pr.R.PostForm.Get("decision") {
	case "deny":
		p.deny(pr, pd, oidc.DenyAccessDenied)
	case "allow":
		if len(pd.Scopes) > 0 {
			err := p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
				return tx.OIDCConsents(pr.Tenant.ID).Grant(ctx, pp.UserID, pd.ClientID, pd.Scopes)
			})
			if err != nil {
				p.internal(pr, err)
				return
			}
		}
		p.complete(pr, pd, pp)
	default:
		p.fail(pr, http.StatusBadRequest, msgErrBadRequest)
	}
}
