package web

import (
	"encoding/json"
	"errors"
	"net/http"

	"tutela"
	"tutela/identity"
	"tutela/oidc"
)

// Passkey sign-in (passwordless, discoverable credentials). The sign-in page loads
// passkey-login.js, which fetches options from GET /t/{t}/passkey/options (no state is written:
// the ceremony travels sealed, see mfa.BeginDiscoverableLogin), offers the passkeys in the
// e-mail field's autofill (conditional mediation: autocomplete="username webauthn"), and posts
// the assertion to POST /t/{t}/passkey with the sign-in form's id and CSRF token.

// passkeyOptions: GET /t/{tenant}/passkey/options: {"options": PublicKeyCredentialRequestOptions,
// "challenge_id": the sealed ceremony, "label": the passkey button's text}.
func (p *Pages) passkeyOptions(pr *Request) {
	opts, handle, err := p.d.Identity.PasskeyLoginOptions(pr.R.Context(), pr.Tenant.Slug)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		http.Error(pr.W, `{"error":"not_found"}`, http.StatusNotFound)
		return
	}
	if err != nil {
		p.d.Log.Error("hosted page: passkey options", "err", err, "request_id", pr.RequestID)
		http.Error(pr.W, `{"error":"internal"}`, http.StatusInternalServerError)
		return
	}
	// The label of the script's passkey button, in the page's language (the sign-in templates
	// stay the framework's).
	label := p.cat.printer(pr.Lang).Sprintf(string(msgLoginPasskeyButton))
	b, err := json.Marshal(struct {
		Options     json.RawMessage `json:"options"`
		ChallengeID string          `json:"challenge_id"`
		Label       string          `json:"label"`
	}{opts, handle, label})
	if err != nil {
		p.internal(pr, err)
		return
	}
	pr.W.Header().Set("Content-Type", "application/json")
	_, _ = pr.W.Write(b)
}

// passkeySubmit: POST /t/{tenant}/passkey (id, challenge_id, webauthn). A passkey with user
// verification is a multi-factor sign-in: no second factor follows, and the request continues
// like one signed in with a password and a second factor (enrolment is not asked, step-up is
// satisfied). Every refusal shows the sign-in page with the one passkey message.
func (p *Pages) passkeySubmit(pr *Request) {
	f := pr.R.PostForm
	id := f.Get("id")
	// Without an authorization request, the sign-in is the account page's (next=account).
	account := id == "" && f.Get("next") == "account"
	var pd *oidc.Pending
	if !account {
		var ok bool
		if pd, ok = p.pending(pr, id); !ok {
			return
		}
	}
	refused := func(status int) {
		if account {
			p.renderAccountLogin(pr, status, accountLoginView{Error: msgErrPasskey})
			return
		}
		p.renderLogin(pr, status, loginView{ID: id, Error: msgErrPasskey})
	}
	handle, wa := f.Get("challenge_id"), f.Get("webauthn")
	if handle == "" || wa == "" {
		refused(http.StatusBadRequest)
		return
	}
	ip, ua := clientInfo(pr.R)
	g, err := p.d.Identity.PasskeyLogin(pr.R.Context(), pr.Tenant.Slug, handle, []byte(wa), ip, ua)
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
		return
	case tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS, tutela.ErrorCode(err) == tutela.EINVALID:
		refused(http.StatusUnauthorized)
		return
	case err != nil:
		p.internal(pr, err)
		return
	}
	setSession(pr, g.SessionSecret, g.Session.AbsoluteExpiry)
	if account {
		p.redirect(pr, accountURL(pr, ""))
		return
	}
	p.signedIn(pr, pd, g.SessionSecret)
}
