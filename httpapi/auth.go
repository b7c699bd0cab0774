package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"tutela"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/identity/token"
	"tutela/oidc"
	"tutela/sqlstore"
)

// SessionCookie is the session cookie's name (middleware.SessionCookie, which the hosted pages
// share).
const SessionCookie = middleware.SessionCookie

type principalKey struct{}

// authenticate resolves the caller from a bearer access token or the session cookie. Access
// tokens must be for Tutela's own API, except where anyAudience (the decision API, which
// resource servers ask about the tokens presented to them).
func (s *Server) authenticate(r *http.Request, anyAudience bool) (*tutela.Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		switch {
		case !ok || tok == "":
		case strings.EqualFold(scheme, "DPoP"):
			return s.authenticateDPoP(r, tok, anyAudience)
		case !strings.EqualFold(scheme, "Bearer"):
		case anyAudience:
			return s.d.Identity.AuthenticateBearerAnyAudience(r.Context(), tok)
		default:
			return s.d.Identity.AuthenticateBearer(r.Context(), tok)
		}
		return nil, &identity.Refusal{Reason: "malformed",
			Err: tutela.Errorf(tutela.EUNAUTHENTICATED, "authorization must be a Bearer or DPoP access token")}
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, tutela.Errorf(tutela.EUNAUTHENTICATED, "sign in first")
	}
	if crossSite(r) {
		// A cookie rides along on cross-site requests; bearer tokens do not. Refuse every
		// cookie-authenticated request a browser marks as coming from another site, reads
		// included: this is an API, never navigated to from elsewhere, and a cross-site GET
		// could still trigger an export or an audited read (ASVS 3.5.3).
		return nil, &identity.Refusal{Reason: "cross_site", Err: tutela.Errorf(tutela.EFORBIDDEN, "cross-site request refused")}
	}
	return s.d.Identity.AuthenticateSession(r.Context(), c.Value)
}

// crossSite reports whether the browser says the request comes from another origin: Fetch
// Metadata first (Sec-Fetch-Site), else an Origin header that does not match the Host.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "":
	default:
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false // not a browser cross-origin request (browsers send Origin on unsafe methods)
	}
	u, err := url.Parse(origin)
	return err != nil || !strings.EqualFold(u.Host, r.Host)
}

// authed wraps a handler that needs a signed-in principal. A principal who must change their
// password may only reach the routes marked allowRestricted.
func (s *Server) authed(allowRestricted bool, h func(http.ResponseWriter, *http.Request, *tutela.Principal)) http.HandlerFunc {
	return s.authedFor(allowRestricted, false, h)
}

// decisionAPI wraps a decision-API handler: like authed, but it also accepts access tokens
// issued to a registered resource server (auth.resources).
func (s *Server) decisionAPI(h func(http.ResponseWriter, *http.Request, *tutela.Principal)) http.HandlerFunc {
	return s.authedFor(false, true, h)
}

func (s *Server) authedFor(allowRestricted, anyAudience bool, h func(http.ResponseWriter, *http.Request, *tutela.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r, anyAudience)
		if err != nil {
			switch tutela.ErrorCode(err) {
			case tutela.EUNAUTHENTICATED:
				// Both schemes are offered (RFC 9449 §7.1); the one the request used comes first.
				first, second := `Bearer realm="tutela"`, dpopChallenge(r, err)
				if usesDPoP(r) || errors.Is(err, oidc.ErrInvalidDPoPProof) {
					first, second = second, first
				}
				w.Header().Set("WWW-Authenticate", first)
				w.Header().Add("WWW-Authenticate", second)
				noteTokenFailure(r, err)
			case tutela.EFORBIDDEN:
				noteTokenFailure(r, err)
			}
			middleware.WriteError(w, r, err)
			return
		}
		if m := tutela.RequestMetaFrom(r.Context()); m != nil {
			m.Principal = p
		}
		if p.MustChangePassword && !allowRestricted {
			middleware.WriteError(w, r, tutela.Errorf(tutela.EFORBIDDEN, "password change required before anything else"))
			return
		}
		if p.MustEnrollMFA && !allowRestricted {
			middleware.WriteError(w, r, tutela.Errorf(tutela.EFORBIDDEN, "your role requires a second factor: enrol one first (POST /v1/auth/mfa/totp)"))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), p)
	}
}

// tokenReasons name the token package's refusals in the audit log.
var tokenReasons = []struct {
	err    error
	reason string
}{
	{token.ErrExpired, "expired"}, {token.ErrBadSignature, "bad_signature"}, {token.ErrAudience, "wrong_audience"},
	{token.ErrIssuer, "wrong_issuer"}, {token.ErrNotYetValid, "not_yet_valid"}, {token.ErrUnknownKey, "unknown_key"},
	{token.ErrKeyNotActive, "key_not_active"}, {token.ErrAlgorithm, "bad_algorithm"}, {token.ErrMalformed, "malformed"},
}

// noteTokenFailure notes a refused bearer token or session cookie for the audit log: an
// auth.token event with the reason and, when the token or session was genuine, its account and
// session (ASVS 5.0 16.3.1). A request that presented neither is only its api.request's 401.
func noteTokenFailure(r *http.Request, err error) {
	credential := "bearer"
	if usesDPoP(r) {
		credential = "dpop"
	}
	if r.Header.Get("Authorization") == "" {
		if c, cerr := r.Cookie(SessionCookie); cerr != nil || c.Value == "" {
			return
		}
		credential = "session_cookie"
	}
	reason := "invalid"
	for _, m := range tokenReasons {
		if errors.Is(err, m.err) {
			reason = m.reason
			break
		}
	}
	noteAuthFailure(r.Context(), refusalFailure("auth.token", reason, err, map[string]any{"credential": credential}))
}

type loginRequest struct {
	Tenant   string `json:"tenant"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

type grantResponse struct {
	AccessToken        string    `json:"access_token"`
	TokenType          string    `json:"token_type"`
	ExpiresIn          int64     `json:"expires_in"`
	RefreshToken       string    `json:"refresh_token"`
	SessionID          string    `json:"session_id"`
	SessionExpiresAt   time.Time `json:"session_expires_at"`
	UserID             string    `json:"user_id"`
	TenantID           string    `json:"tenant_id"`
	MustChangePassword bool      `json:"must_change_password"`
}

// renewCookie sets the session cookie to a renewed secret (after a step-up or re-authentication
// by cookie), keeping its attributes and the session's absolute expiry; a zero secret (bearer
// clients) leaves the cookie alone.
func (s *Server) renewCookie(w http.ResponseWriter, p *tutela.Principal, secret tutela.Secret) {
	if !secret.IsZero() {
		middleware.SetSessionCookie(w, secret.Reveal(), p.SessionExpiry)
	}
}

// writeGrant answers with the grant's tokens, and sets the session cookie only for a new
// session: a refresh keeps the same session, whose secret it never sees, and must leave the
// browser's cookie alone rather than overwrite it with an empty one.
func (s *Server) writeGrant(w http.ResponseWriter, g *identity.Grant) {
	if !g.SessionSecret.IsZero() {
		middleware.SetSessionCookie(w, g.SessionSecret.Reveal(), g.Session.AbsoluteExpiry)
	}
	middleware.WriteJSON(w, http.StatusOK, grantResponse{
		AccessToken: g.AccessToken.Reveal(), TokenType: "Bearer",
		ExpiresIn:    int64(g.AccessExpiry.Sub(s.d.Clock()).Round(time.Second) / time.Second),
		RefreshToken: g.RefreshToken.Reveal(), SessionID: g.Session.ID, SessionExpiresAt: g.Session.AbsoluteExpiry,
		UserID: g.User.ID, TenantID: g.User.TenantID, MustChangePassword: g.MustChangePassword,
	})
}

func clientInfo(r *http.Request) (ip, ua string) {
	ip = "unknown"
	if a := middleware.ClientIPFrom(r.Context()); a.IsValid() {
		ip = a.String()
	}
	return ip, r.UserAgent()
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, ua := clientInfo(r)
	g, err := s.d.Identity.Login(r.Context(), identity.LoginRequest{Tenant: req.Tenant, Email: req.Email,
		Password: tutela.NewSecret(req.Password), IP: ip, UserAgent: ua})
	var mfaErr *identity.MFARequiredError
	if errors.As(err, &mfaErr) {
		writeMFARequired(w, r, mfaErr)
		return
	}
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.writeGrant(w, g)
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
	// Resource asks for an access token for a registered resource server (RFC 8707).
	Resource string `json:"resource"`
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, ua := clientInfo(r)
	g, err := s.d.Identity.Refresh(r.Context(), tutela.NewSecret(req.RefreshToken), req.Resource, ip, ua)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.writeGrant(w, g)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := s.d.Identity.Logout(r.Context(), p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.SetSessionCookie(w, "", time.Time{})
	w.WriteHeader(http.StatusNoContent)
}

type sessionView struct {
	*sqlstore.Session
	Current bool `json:"current"`
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var list []*sqlstore.Session
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
		list, err = tx.Users(p.TenantID).Sessions(r.Context(), p.UserID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	now := s.d.Clock()
	out := []sessionView{}
	for _, sess := range list {
		if sess.Active(now) {
			out = append(out, sessionView{Session: sess, Current: sess.ID == p.SessionID})
		}
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	id := r.PathValue("id")
	if id != p.SessionID { // ending the current session is signing out; another needs a fresh authentication
		if err := s.requireRecentAuth(p); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		n, err := tx.Users(p.TenantID).RevokeSessions(r.Context(), p.UserID, id, "", "revoked_by_user")
		if err == nil && n == 0 {
			return tutela.Errorf(tutela.ENOTFOUND, "session not found")
		}
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteOtherSessions(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := s.requireRecentAuth(p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var n int64
	ip, _ := clientInfo(r)
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) (err error) {
		if n, err = tx.Users(p.TenantID).RevokeSessions(r.Context(), p.UserID, "", p.SessionID, "revoked_by_user"); err != nil {
			return err
		}
		return tx.RecordSecurityEvent(r.Context(), &sqlstore.SecurityEvent{TenantID: p.TenantID, UserID: p.UserID,
			Kind: "sessions_revoked", IP: ip, Details: `{"reason":"other_sessions"}`})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]int64{"revoked": n})
}

type passwordChangeRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req passwordChangeRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, ua := clientInfo(r)
	g, err := s.d.Identity.ChangePassword(r.Context(), p, tutela.NewSecret(req.CurrentPassword),
		tutela.NewSecret(req.NewPassword), ip, ua)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.writeGrant(w, g)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var u *tutela.User
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
		u, err = tx.Users(p.TenantID).Get(r.Context(), p.UserID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"user": u, "roles": nonNil(p.Roles), "session_id": p.SessionID,
		"amr": nonNil(p.AMR), "auth_time": p.AuthTime, "must_change_password": p.MustChangePassword,
		"must_enroll_mfa": p.MustEnrollMFA})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	b, err := s.d.Identity.Tokens.JWKS()
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// Public keys may be cached briefly; rotation pre-publishes new keys for longer than this.
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(b)
}
