package web

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"tutela"
	"tutela/identity"
	"tutela/oidc"
	"tutela/sqlstore"
)

type enrollView struct {
	ID string
	// FactorID, QR (a PNG data: URL of the otpauth URI) and Secret (for typing in by hand) are
	// the TOTP factor being enrolled.
	FactorID string
	QR       template.URL
	Secret   string
	// CodeRequired: an administrator reset the user's factors; enrolling needs the enrolment
	// code they were given.
	CodeRequired bool
	// PasskeyOptions are the WebAuthn creation options (JSON).
	PasskeyOptions string
	Error          msgKey
}

type recoveryView struct {
	ID    string
	Codes []string
}

// enrollee returns the signed-in principal who must enrol a first second factor for the
// request, or sends the browser where it belongs: sign-in without a usable session, on through
// the request when the user has a factor already (adding one to an existing set needs a step-up,
// the account page's business, never this page's).
func (p *Pages) enrollee(pr *Request, pd *oidc.Pending) (*tutela.Principal, *tutela.User, bool) {
	pp := p.session(pr)
	if !p.usable(pr, pd, pp) {
		p.redirect(pr, pageURL(pr, "login", pd.ID))
		return nil, nil, false
	}
	if p.d.Identity.MFA == nil {
		p.fail(pr, http.StatusServiceUnavailable, msgErrInternal)
		return nil, nil, false
	}
	ctx := pr.R.Context()
	has, err := p.d.Identity.MFA.HasActiveFactor(ctx, pp.TenantID, pp.UserID)
	if err != nil {
		p.internal(pr, err)
		return nil, nil, false
	}
	if has {
		p.proceed(pr, pd, pp)
		return nil, nil, false
	}
	var u *tutela.User
	if err := p.d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) { u, err = tx.Users(pp.TenantID).Get(ctx, pp.UserID); return err }); err != nil {
		p.internal(pr, err)
		return nil, nil, false
	}
	return pp, u, true
}

// enrollPage: GET /t/{tenant}/enroll?id=: a first second factor — an authenticator app (QR
// code) or a passkey.
func (p *Pages) enrollPage(pr *Request) {
	pd, ok := p.pending(pr, pr.R.URL.Query().Get("id"))
	if !ok {
		return
	}
	pp, u, ok := p.enrollee(pr, pd)
	if !ok {
		return
	}
	p.showEnroll(pr, pd, pp, u, http.StatusOK, "")
}

func (p *Pages) showEnroll(pr *Request, pd *oidc.Pending, pp *tutela.Principal, u *tutela.User, status int, e msgKey) {
	ctx := pr.R.Context()
	required, err := p.d.Identity.EnrollmentCodeRequired(ctx, pp)
	if err != nil {
		p.internal(pr, err)
		return
	}
	issuer := pr.Tenant.Name
	if pr.Branding.DisplayName != "" {
		issuer = pr.Branding.DisplayName
	}
	en, err := p.d.Identity.MFA.BeginTOTP(ctx, pp.TenantID, pp.UserID, u.Email, issuer)
	if err != nil {
		p.internal(pr, err)
		return
	}
	opts, err := p.d.Identity.MFA.BeginWebAuthnRegistration(ctx, pp.TenantID, pp.UserID, u.Email, u.DisplayName)
	if err != nil {
		p.internal(pr, err)
		return
	}
	p.render(pr, status, "enroll", msgTitleEnroll, enrollView{ID: pd.ID, FactorID: en.FactorID,
		// The PNG is ours (mfa encodes the otpauth URI), so the data: URL is safe to mark as one.
		QR:     template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(en.QRPNG)), // #nosec G203 -- a data: URL of a PNG the server encoded itself (base64 alphabet only)
		Secret: en.Secret.Reveal(), CodeRequired: required, PasskeyOptions: string(opts), Error: e}, "passkey.js")
}

// enrollSubmit: POST /t/{tenant}/enroll (id, factor_id and code, or webauthn and name;
// enrollment_code after an administrator's reset). On success the recovery codes are shown,
// once.
func (p *Pages) enrollSubmit(pr *Request) {
	ctx := pr.R.Context()
	f := pr.R.PostForm
	pd, ok := p.pending(pr, f.Get("id"))
	if !ok {
		return
	}
	pp, u, ok := p.enrollee(pr, pd)
	if !ok {
		return
	}
	ip, _ := clientInfo(pr.R)
	code, wa := strings.TrimSpace(f.Get("code")), f.Get("webauthn")
	factorID := f.Get("factor_id")
	if wa == "" && (code == "" || !tutela.ValidID(factorID)) {
		p.showEnroll(pr, pd, pp, u, http.StatusBadRequest, msgErrCodeMissing)
		return
	}
	guard, err := p.d.Identity.EnrollmentGuard(ctx, pp, strings.TrimSpace(f.Get("enrollment_code")), ip)
	if err == nil {
		if wa != "" {
			name := strings.TrimSpace(f.Get("name"))
			if name == "" || len(name) > 100 || !tutela.ValidText(name) {
				name = "Passkey"
			}
			_, err = p.d.Identity.MFA.FinishWebAuthnRegistration(ctx, pp.TenantID, pp.UserID, name, []byte(wa), guard)
		} else {
			err = p.d.Identity.MFA.ConfirmTOTP(ctx, pp.TenantID, pp.UserID, factorID, code, guard)
		}
	}
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
		return
	case tutela.ErrorCode(err) == tutela.EINVALIDCREDENTIALS, tutela.ErrorCode(err) == tutela.EINVALID:
		e := msgErrCode
		var te *tutela.Error
		if errors.As(err, &te) && te.Field == "enrollment_code" {
			e = msgErrEnrollCodeMissing
		} else if required, _ := p.d.Identity.EnrollmentCodeRequired(ctx, pp); required {
			e = msgErrEnrollCode // the enrolment code or the factor's code: which one is not told
		}
		p.showEnroll(pr, pd, pp, u, http.StatusUnauthorized, e)
		return
	case err != nil:
		p.internal(pr, err)
		return
	}
	if err := p.d.Identity.RecordFactorChange(ctx, u, identity.ChangeFactorAdded, ip); err != nil {
		p.d.Log.Error("record security event", "err", err, "request_id", pr.RequestID)
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
	p.render(pr, http.StatusOK, "recovery", msgTitleRecovery, recoveryView{ID: pd.ID, Codes: out})
}
