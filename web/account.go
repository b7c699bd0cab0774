package web

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/mfa"
	"tutela/sqlstore"
)

// The account page /t/{tenant}/account: the signed-in user's sessions and devices, second
// factors and passkeys, password, and the applications they consented to. Each change is a POST
// form (CSRF-checked by page) answered with a redirect back here and a notice (?done=), or with
// the re-authentication page when the change needs a fresher sign-in than the session has:
//
//   - ending OTHER sessions: a sign-in, step-up or re-entered password within
//     identity.ReauthWindow (identity.RecentlyAuthenticated), as DELETE /v1/auth/sessions;
//   - changing second factors (add, rename, remove, new recovery codes): a second factor proved
//     within identity.StepUpWindow once the user has one (the API's rule, ASVS 5.0 6.4), and a
//     fresh authentication for the first.

func (p *Pages) accountRoutes(mux *http.ServeMux) {
	mux.Handle("GET /t/{tenant}/account", p.page(p.accountPage))
	mux.Handle("GET /t/{tenant}/account/login", p.page(p.accountLoginPage))
	mux.Handle("POST /t/{tenant}/account/login", p.page(p.accountLoginSubmit))
	mux.Handle("POST /t/{tenant}/account/reauth", p.page(p.accountReauth))
	mux.Handle("POST /t/{tenant}/account/sessions/revoke", p.page(p.accountRevokeSession))
	mux.Handle("POST /t/{tenant}/account/sessions/revoke-others", p.page(p.accountRevokeOthers))
	mux.Handle("POST /t/{tenant}/account/password", p.page(p.accountPassword))
	mux.Handle("POST /t/{tenant}/account/applications/revoke", p.page(p.accountRevokeApp))
	mux.Handle("POST /t/{tenant}/account/factors/rename", p.page(p.accountRenameFactor))
	mux.Handle("POST /t/{tenant}/account/factors/remove", p.page(p.accountRemoveFactor))
	mux.Handle("POST /t/{tenant}/account/recovery", p.page(p.accountRecovery))
	mux.Handle("GET /t/{tenant}/account/totp", p.page(p.accountTOTPPage))
	mux.Handle("POST /t/{tenant}/account/totp", p.page(p.accountTOTPSubmit))
	mux.Handle("GET /t/{tenant}/account/passkeys", p.page(p.accountPasskeyPage))
	mux.Handle("POST /t/{tenant}/account/passkeys", p.page(p.accountAddPasskey))
	mux.Handle("GET /t/{tenant}/passkey/options", p.page(p.passkeyOptions))
	mux.Handle("POST /t/{tenant}/passkey", p.page(p.passkeySubmit))
}

func accountURL(pr *Request, done string) string {
	u := "/t/" + pr.Tenant.Slug + "/account"
	if done != "" {
		u += "?done=" + done
	}
	return u
}

// accountNotices are the notices a redirect back to the account page may ask for; anything else
// in ?done= shows nothing.
var accountNotices = map[string]msgKey{
	"reauth":          msgAccountDoneReauth,
	"session_revoked": msgAccountDoneSessionRevoked,
	"others_revoked":  msgAccountDoneOthersRevoked,
	"password":        msgAccountDonePassword,
	"app_revoked":     msgAccountDoneAppRevoked,
	"factor_renamed":  msgAccountDoneFactorRenamed,
	"factor_removed":  msgAccountDoneFactorRemoved,
	"factor_added":    msgAccountDoneFactorAdded,
}

// accountUser returns the signed-in principal, or sends the browser to the account sign-in and
// reports false.
func (p *Pages) accountUser(pr *Request) (*tutela.Principal, bool) {
	pp := p.session(pr)
	if pp == nil {
		p.redirect(pr, "/t/"+pr.Tenant.Slug+"/account/login")
		return nil, false
	}
	return pp, true
}

type accountSession struct {
	ID, Device, IP    string
	Created, LastSeen string
	Current           bool
	Applications      []accountClientSession
}

type accountClientSession struct {
	ID, Name, Created string
}

type accountFactor struct {
	ID, Type, Name, Created, LastUsed string
	// Named: a passkey or authenticator app (renamable); recovery codes are not.
	Named     bool
	Remaining int
}

type accountView struct {
	Email        string
	Sessions     []accountSession
	Factors      []accountFactor
	HasFactor    bool
	Applications []*sqlstore.OIDCConsent
	Notice       msgKey
	// Error and ErrorField: a refused password change (the field the message belongs to).
	Error      msgKey
	ErrorField string
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// accountPage: GET /t/{tenant}/account.
func (p *Pages) accountPage(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok {
		return
	}
	p.showAccount(pr, pp, http.StatusOK, accountView{Notice: accountNotices[pr.R.URL.Query().Get("done")]})
}

func (p *Pages) showAccount(pr *Request, pp *tutela.Principal, status int, v accountView) {
	ctx := pr.R.Context()
	var sessions []*sqlstore.Session
	var u *tutela.User
	names := map[string]string{}
	err := p.d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if u, err = tx.Users(pp.TenantID).Get(ctx, pp.UserID); err != nil {
			return err
		}
		if sessions, err = tx.Users(pp.TenantID).Sessions(ctx, pp.UserID); err != nil {
			return err
		}
		for _, s := range sessions {
			if s.ClientID == "" || names[s.ClientID] != "" {
				continue
			}
			c, err := tx.OIDCClients(pp.TenantID).Get(ctx, s.ClientID)
			if err != nil && tutela.ErrorCode(err) != tutela.ENOTFOUND {
				return err
			}
			names[s.ClientID] = s.ClientID
			if c != nil {
				names[s.ClientID] = c.Name
			}
		}
		v.Applications, err = tx.OIDCConsents(pp.TenantID).List(ctx, pp.UserID)
		return err
	})
	if err != nil {
		p.internal(pr, err)
		return
	}
	v.Email = u.Email
	now := p.d.Clock()
	children := map[string][]accountClientSession{}
	for _, s := range sessions {
		if s.Active(now) && s.ParentID != "" {
			children[s.ParentID] = append(children[s.ParentID], accountClientSession{ID: s.ID, Name: names[s.ClientID], Created: fmtTime(s.CreatedAt)})
		}
	}
	for _, s := range sessions {
		if !s.Active(now) || s.ParentID != "" {
			continue
		}
		v.Sessions = append(v.Sessions, accountSession{ID: s.ID, Device: s.UserAgent, IP: s.IP, Created: fmtTime(s.CreatedAt),
			LastSeen: fmtTime(s.LastSeenAt), Current: s.ID == pp.SessionID, Applications: children[s.ID]})
	}
	// The current session first, then the others newest first (Sessions' order).
	slices.SortStableFunc(v.Sessions, func(a, b accountSession) int {
		switch {
		case a.Current == b.Current:
			return 0
		case a.Current:
			return -1
		}
		return 1
	})
	if p.d.Identity.MFA != nil {
		fs, err := p.d.Identity.MFA.Factors(ctx, pp.TenantID, pp.UserID)
		if err != nil {
			p.internal(pr, err)
			return
		}
		for _, f := range fs {
			if !f.Active && f.Type != mfa.TypeRecovery {
				continue // an authenticator app whose enrolment was never confirmed
			}
			af := accountFactor{ID: f.ID, Type: f.Type, Name: f.Name, Created: fmtTime(f.CreatedAt),
				Named: f.Type != mfa.TypeRecovery, Remaining: f.Remaining}
			if f.LastUsedAt != nil {
				af.LastUsed = fmtTime(*f.LastUsedAt)
			}
			v.HasFactor = v.HasFactor || af.Named
			v.Factors = append(v.Factors, af)
		}
	}
	p.render(pr, status, "account", msgTitleAccount, v)
}

// accountRevokeSession: POST /t/{tenant}/account/sessions/revoke (session_id). Ending the
// current session is signing out; ending another needs a fresh authentication.
func (p *Pages) accountRevokeSession(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok {
		return
	}
	ctx := pr.R.Context()
	id := pr.R.PostForm.Get("session_id")
	if !tutela.ValidID(id) {
		p.fail(pr, http.StatusBadRequest, msgErrBadRequest)
		return
	}
	if id == pp.SessionID {
		if err := p.d.Identity.Logout(ctx, pp); err != nil {
			p.internal(pr, err)
			return
		}
		middleware.SetSessionCookie(pr.W, "", time.Time{})
		p.redirect(pr, "/t/"+pr.Tenant.Slug+"/logged-out")
		return
	}
	if !p.d.Identity.RecentlyAuthenticated(pp) {
		p.askReauth(pr, pp, false, http.StatusOK, "")
		return
	}
	err := p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		n, err := tx.Users(pp.TenantID).RevokeSessions(ctx, pp.UserID, id, "", "revoked_by_user")
		if err == nil && n == 0 {
			return tutela.Errorf(tutela.ENOTFOUND, "session not found")
		}
		return err
	})
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		p.fail(pr, http.StatusNotFound, msgErrNotFound)
		return
	}
	if err != nil {
		p.internal(pr, err)
		return
	}
	p.redirect(pr, accountURL(pr, "session_revoked"))
}

// accountRevokeOthers: POST /t/{tenant}/account/sessions/revoke-others: every session but this
// one ends (and the applications' sessions made from them), after a fresh authentication.
func (p *Pages) accountRevokeOthers(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok {
		return
	}
	if !p.d.Identity.RecentlyAuthenticated(pp) {
		p.askReauth(pr, pp, false, http.StatusOK, "")
		return
	}
	ctx := pr.R.Context()
	ip, _ := clientInfo(pr.R)
	err := p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Users(pp.TenantID).RevokeSessions(ctx, pp.UserID, "", pp.SessionID, "revoked_by_user"); err != nil {
			return err
		}
		return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: pp.TenantID, UserID: pp.UserID,
			Kind: "sessions_revoked", IP: ip, Details: `{"reason":"other_sessions"}`})
	})
	if err != nil {
		p.internal(pr, err)
		return
	}
	p.redirect(pr, accountURL(pr, "others_revoked"))
}

// accountPassword: POST /t/{tenant}/account/password (current_password, new_password,
// confirm). identity.ChangePassword ends every session and opens a new one, whose cookie is set
// here; the policy's refusals are shown at the field they concern.
func (p *Pages) accountPassword(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok {
		return
	}
	f := pr.R.PostForm
	cur, next := tutela.NewSecret(f.Get("current_password")), tutela.NewSecret(f.Get("new_password"))
	refuse := func(status int, field string, m msgKey) {
		p.showAccount(pr, pp, status, accountView{Error: m, ErrorField: field})
	}
	switch {
	case cur.IsZero():
		refuse(http.StatusBadRequest, "current_password", msgErrPasswordMissing)
		return
	case next.IsZero():
		refuse(http.StatusBadRequest, "new_password", msgErrPasswordMissing)
		return
	case f.Get("new_password") != f.Get("confirm"):
		refuse(http.StatusBadRequest, "confirm", msgErrPasswordMismatch)
		return
	}
	ip, ua := clientInfo(pr.R)
	g, err := p.d.Identity.ChangePassword(pr.R.Context(), pp, cur, next, ip, ua)
	var throttled *identity.ThrottledError
	var te *tutela.Error
	switch {
	case errors.As(err, &throttled):
		p.throttled(pr, throttled.Wait)
		return
	case errors.As(err, &te) && te.Field == "current_password":
		refuse(http.StatusUnauthorized, "current_password", msgErrCurrentPassword)
		return
	case tutela.ErrorCode(err) == tutela.EINVALID:
		refuse(http.StatusBadRequest, "new_password", msgErrPasswordWeak)
		return
	case err != nil:
		p.internal(pr, err)
		return
	}
	setSession(pr, g.SessionSecret, g.Session.AbsoluteExpiry)
	p.redirect(pr, accountURL(pr, "password"))
}

// accountRevokeApp: POST /t/{tenant}/account/applications/revoke (client_id): the consent is
// forgotten and the application's sessions of the user end (sqlstore OIDCConsents.Revoke,
// audited).
func (p *Pages) accountRevokeApp(pr *Request) {
	pp, ok := p.accountUser(pr)
	if !ok {
		return
	}
	ctx := pr.R.Context()
	client := strings.TrimSpace(pr.R.PostForm.Get("client_id"))
	if client == "" || len(client) > 64 {
		p.fail(pr, http.StatusBadRequest, msgErrBadRequest)
		return
	}
	err := p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(pp.TenantID).Revoke(ctx, pp.UserID, client) })
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		p.fail(pr, http.StatusNotFound, msgErrNotFound)
		return
	}
	if err != nil {
		p.internal(pr, err)
		return
	}
	p.redirect(pr, accountURL(pr, "app_revoked"))
}
