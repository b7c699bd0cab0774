package web

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"tutela"
	"tutela/identity"
	"tutela/mfa"
	"tutela/sqlstore"
)

type reauthView struct {
	// Factor: a second factor is asked (code or passkey); otherwise the password.
	Factor         bool
	PasskeyOptions string
	Error          msgKey
}

// askReauth shows the re-authentication page: the password, or (factor) a second factor. After
// it the browser comes back to the account page and repeats the change.
func (p *Pages) askReauth(pr *Request, pp *tutela.Principal, factor bool, status int, e msgKey) {
	v := reauthView{Factor: factor, Error: e}
	if factor {
		ctx := pr.R.Context()
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
	p.render(pr, status, "account_reauth", msgTitleReauth, v, "passkey.js")
}

// accountReauth: POST /t/{tenant}/account/reauth (password; or code or webauthn). The session
// records the fresh authentication and gets a new secret (identity.Reauthenticate / StepUp).
func (p *Pages) accountReauth(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok {
		return
	}
	ctx := pr.R.Context()
	ip, _ := clientInfo(pr.R)
	factor := pr.R.PostForm.Get("factor") == "1"
	var secret tutela.Secret
	var err error
	if factor {
		code, wa, ok := factorFromForm(pr)
		if !ok {
			p.askReauth(pr, pp, true, http.StatusBadRequest, msgErrCodeMissing)
			return
		}
		secret, err = p.d.Identity.StepUp(ctx, pp, code, wa, ip)
	} else {
		pw := pr.R.PostForm.Get("password")
		if pw == "" || len(pw) > 1024 {
			p.askReauth(pr, pp, false, http.StatusBadRequest, msgErrPasswordMissing)
			return
		}
		secret, err = p.d.Identity.Reauthenticate(ctx, pp, tutela.NewSecret(pw), ip)
	}
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
		return
	case tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS, tutela.ErrorCode(err) == tutela.EINVALID:
		e := msgErrCurrentPassword
		if factor {
			e = msgErrCode
		}
		p.askReauth(pr, pp, factor, http.StatusUnauthorized, e)
		return
	case err != nil:
		p.internal(pr, err)
		return
	}
	setSession(pr, secret, pp.SessionExpiry)
	p.redirect(pr, accountURL(pr, "reauth"))
}

// changingFactors lets a change to the user's second factors through (true), or shows the
// re-authentication page: once the user has a factor, a second factor proved within
// identity.StepUpWindow (as the API's changingFactors); before, a fresh authentication.
func (p *Pages) changingFactors(pr *Request, pp *tutela.Principal) bool {
	if p.d.Identity.MFA == nil {
		p.fail(pr, http.StatusNotFound, msgErrNotFound)
		return false
	}
	has, err := p.d.Identity.MFA.HasActiveFactor(pr.R.Context(), pp.TenantID, pp.UserID)
	if err != nil {
		p.internal(pr, err)
		return false
	}
	switch {
	case has && !p.d.Identity.StepUpFresh(pp):
		p.askReauth(pr, pp, true, http.StatusOK, "")
		return false
	case !has && !p.d.Identity.RecentlyAuthenticated(pp):
		p.askReauth(pr, pp, false, http.StatusOK, "")
		return false
	}
	return true
}

// factorChanged records the change as a security event and queues the e-mail telling the user.
func (p *Pages) factorChanged(pr *Request, pp *tutela.Principal, kind identity.Change) {
	ip, _ := clientInfo(pr.R)
	u, err := p.user(pr, pp)
	if err == nil {
		err = p.d.Identity.RecordFactorChange(pr.R.Context(), u, kind, ip)
	}
	if err != nil {
		p.d.Log.Error("record security event", "kind", kind, "err", err, "request_id", pr.RequestID)
	}
}

func (p *Pages) user(pr *Request, pp *tutela.Principal) (*tutela.User, error) {
	ctx := pr.R.Context()
	var u *tutela.User
	err := p.d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) { u, err = tx.Users(pp.TenantID).Get(ctx, pp.UserID); return err })
	return u, err
}

// accountRenameFactor: POST /t/{tenant}/account/factors/rename (factor_id, name).
func (p *Pages) accountRenameFactor(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok || !p.changingFactors(pr, pp) {
		return
	}
	f := pr.R.PostForm
	err := p.d.Identity.MFA.RenameFactor(pr.R.Context(), pp.TenantID, pp.UserID, f.Get("factor_id"), f.Get("name"))
	switch tutela.ErrorCode(err) {
	case "":
		p.redirect(pr, accountURL(pr, "factor_renamed"))
	case tutela.EINVALID:
		p.showAccount(pr, pp, http.StatusBadRequest, accountView{Error: msgErrFactorName, ErrorField: "name-" + f.Get("factor_id")})
	case tutela.ENOTFOUND:
		p.fail(pr, http.StatusNotFound, msgErrNotFound)
	default:
		p.internal(pr, err)
	}
}

// accountRemoveFactor: POST /t/{tenant}/account/factors/remove (factor_id).
func (p *Pages) accountRemoveFactor(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok || !p.changingFactors(pr, pp) {
		return
	}
	err := p.d.Identity.MFA.RemoveFactor(pr.R.Context(), pp.TenantID, pp.UserID, pr.R.PostForm.Get("factor_id"))
	switch tutela.ErrorCode(err) {
	case "":
		p.factorChanged(pr, pp, identity.ChangeFactorRemoved)
		p.redirect(pr, accountURL(pr, "factor_removed"))
	case tutela.ENOTFOUND:
		p.fail(pr, http.StatusNotFound, msgErrNotFound)
	default:
		p.internal(pr, err)
	}
}

type accountRecoveryView struct{ Codes []string }

// accountRecovery: POST /t/{tenant}/account/recovery: new recovery codes, shown once; the old
// ones stop working. They back up a factor, so the user needs one first (as the API).
func (p *Pages) accountRecovery(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok || !p.changingFactors(pr, pp) {
		return
	}
	ctx := pr.R.Context()
	has, err := p.d.Identity.MFA.HasActiveFactor(ctx, pp.TenantID, pp.UserID)
	if err != nil {
		p.internal(pr, err)
		return
	}
	if !has {
		p.fail(pr, http.StatusConflict, msgErrRecoveryNeedsFactor)
		return
	}
	codes, err := p.d.Identity.MFA.NewRecoveryCodes(ctx, pp.TenantID, pp.UserID)
	if err != nil {
		p.internal(pr, err)
		return
	}
	out := make([]string, len(codes))
	for i, c := range codes {
		out[i] = c.Reveal()
	}
	p.factorChanged(pr, pp, identity.ChangeRecoveryCodes)
	p.render(pr, http.StatusOK, "account_recovery", msgTitleRecovery, accountRecoveryView{Codes: out})
}

type accountTOTPView struct {
	FactorID string
	QR       template.URL
	Secret   string
	Error    msgKey
}

// accountTOTPPage: GET /t/{tenant}/account/totp: a new authenticator app (QR code).
func (p *Pages) accountTOTPPage(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok || !p.changingFactors(pr, pp) {
		return
	}
	p.showTOTP(pr, pp, http.StatusOK, "")
}

func (p *Pages) showTOTP(pr *Request, pp *tutela.Principal, status int, e msgKey) {
	u, err := p.user(pr, pp)
	if err != nil {
		p.internal(pr, err)
		return
	}
	issuer := pr.Tenant.Name
	if pr.Branding.DisplayName != "" {
		issuer = pr.Branding.DisplayName
	}
	en, err := p.d.Identity.MFA.BeginTOTP(pr.R.Context(), pp.TenantID, pp.UserID, u.Email, issuer)
	if err != nil {
		p.internal(pr, err)
		return
	}
	p.render(pr, status, "account_totp", msgTitleAddTOTP, accountTOTPView{FactorID: en.FactorID,
		// The PNG is ours (mfa encodes the otpauth URI), so the data: URL is safe to mark as one.
		QR:     template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(en.QRPNG)), // #nosec G203 -- a data: URL of a PNG the server encoded itself (base64 alphabet only)
		Secret: en.Secret.Reveal(), Error: e})
}

// accountTOTPSubmit: POST /t/{tenant}/account/totp (factor_id, code).
func (p *Pages) accountTOTPSubmit(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok || !p.changingFactors(pr, pp) {
		return
	}
	ctx := pr.R.Context()
	f := pr.R.PostForm
	code, factorID := strings.TrimSpace(f.Get("code")), f.Get("factor_id")
	if code == "" || !tutela.ValidID(factorID) {
		p.showTOTP(pr, pp, http.StatusBadRequest, msgErrCodeMissing)
		return
	}
	ip, _ := clientInfo(pr.R)
	guard, err := p.d.Identity.EnrollmentGuard(ctx, pp, strings.TrimSpace(f.Get("enrollment_code")), ip)
	if err == nil {
		err = p.d.Identity.MFA.ConfirmTOTP(ctx, pp.TenantID, pp.UserID, factorID, code, guard)
	}
	p.factorAdded(pr, pp, err, func(e msgKey) { p.showTOTP(pr, pp, http.StatusUnauthorized, e) })
}

type accountPasskeyView struct {
	PasskeyOptions string
	Error          msgKey
}

// accountPasskeyPage: GET /t/{tenant}/account/passkeys: adding a passkey (the creation options
// are made here, after the re-authentication, so the ceremony is not begun on every view of the
// account page).
func (p *Pages) accountPasskeyPage(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok || !p.changingFactors(pr, pp) {
		return
	}
	p.showPasskey(pr, pp, http.StatusOK, "")
}

func (p *Pages) showPasskey(pr *Request, pp *tutela.Principal, status int, e msgKey) {
	u, err := p.user(pr, pp)
	if err != nil {
		p.internal(pr, err)
		return
	}
	// Resident key preferred (mfa's configuration): the passkey is discoverable, so it also
	// signs in without a password.
	opts, err := p.d.Identity.MFA.BeginWebAuthnRegistration(pr.R.Context(), pp.TenantID, pp.UserID, u.Email, u.DisplayName)
	if err != nil {
		p.internal(pr, err)
		return
	}
	p.render(pr, status, "account_passkey", msgTitleAddPasskey, accountPasskeyView{PasskeyOptions: string(opts), Error: e}, "passkey.js")
}

// accountAddPasskey: POST /t/{tenant}/account/passkeys (webauthn, name): the attestation from
// navigator.credentials.create with the options of the page above.
func (p *Pages) accountAddPasskey(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok || !p.changingFactors(pr, pp) {
		return
	}
	ctx := pr.R.Context()
	f := pr.R.PostForm
	wa := f.Get("webauthn")
	if wa == "" {
		p.showPasskey(pr, pp, http.StatusBadRequest, msgErrPasskeyAdd)
		return
	}
	name := strings.TrimSpace(f.Get("name"))
	if name == "" || len(name) > 100 || !tutela.ValidText(name) {
		name = "Passkey"
	}
	ip, _ := clientInfo(pr.R)
	guard, err := p.d.Identity.EnrollmentGuard(ctx, pp, strings.TrimSpace(f.Get("enrollment_code")), ip)
	if err == nil {
		_, err = p.d.Identity.MFA.FinishWebAuthnRegistration(ctx, pp.TenantID, pp.UserID, name, []byte(wa), guard)
	}
	p.factorAdded(pr, pp, err, func(e msgKey) {
		if e == msgErrCode {
			e = msgErrPasskeyAdd
		}
		p.showPasskey(pr, pp, http.StatusUnauthorized, e)
	})
}

// factorAdded finishes adding a factor: refused (again calls with the message), or recorded
// and back to the account page.
func (p *Pages) factorAdded(pr *Request, pp *tutela.Principal, err error, again func(msgKey)) {
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
	case tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS, tutela.ErrorCode(err) == tutela.EINVALID:
		again(msgErrCode)
	case tutela.ErrorCode(err) == tutela.ECONFLICT:
		again(msgErrFactorLimit)
	case err != nil:
		p.internal(pr, err)
	default:
		p.factorChanged(pr, pp, identity.ChangeFactorAdded)
		p.redirect(pr, accountURL(pr, "factor_added"))
	}
}
