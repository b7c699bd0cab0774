package oidc

import (
	"context"
	"slices"
	"strings"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"tutela"
	"tutela/authz"
	"tutela/identity"
	"tutela/sqlstore"
)

// refreshRequest adapts a client session to op.RefreshTokenRequest.
type refreshRequest struct {
	sess   *sqlstore.Session
	scopes []string
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string            { return r.sess.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.sess.ClientID} }
func (r *refreshRequest) GetClientID() string         { return r.sess.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.sess.UserID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }
func (r *refreshRequest) GetAuthTime() time.Time {
	if r.sess.AuthTime != nil {
		return *r.sess.AuthTime
	}
	return r.sess.CreatedAt
}

func (s *storage) ident() *identity.Service { return s.t.p.d.Identity }

// clientInfo is the request's address and user agent, for the client session.
func clientInfo(ctx context.Context) (ip, ua string) {
	if m := tutela.RequestMetaFrom(ctx); m != nil {
		return m.IP, m.UserAgent
	}
	return "unknown", ""
}

// startSession makes the client session of an exchanged code.
func (s *storage) startSession(ctx context.Context, a *authRequest, refresh bool) (*identity.Grant, error) {
	ip, ua := clientInfo(ctx)
	st := state(ctx)
	// A code issued to a request bound to a DPoP key (dpop_jkt) is exchanged only with a proof
	// by that key (RFC 9449 §10).
	if a.row.DPoPJKT != "" && a.row.DPoPJKT != st.jkt {
		return nil, zoidc.ErrInvalidGrant().WithDescription("the DPoP proof is not by the key the authorization was bound to")
	}
	g, err := s.ident().StartClientSession(ctx, identity.ClientSessionRequest{TenantID: s.t.tenantID, UserID: a.row.UserID,
		ParentSessionID: a.row.SessionID, ClientID: a.row.ClientID, Scope: scopeString(a.req.Scopes),
		AuthTime: a.GetAuthTime(), AMR: a.row.AMR, JKT: st.jkt, Audience: []string{UserinfoAudience}, Refresh: refresh,
		IP: ip, UA: ua,
		// In the session's own transaction: a replay of the code that came first makes this
		// fail, and one that comes later finds the session to revoke.
		Created: func(ctx context.Context, tx *sqlstore.Tx, sessionID string) error {
			return tx.SetOIDCIssuedSession(ctx, s.t.tenantID, a.row.ID, sessionID)
		}})
	if err != nil {
		return nil, zoidc.ErrInvalidGrant().WithDescription("invalid, expired or used authorization code, or the sign-in has ended").WithParent(err)
	}
	a.issued = g.Session.ID
	st.user = g.User
	return g, nil
}

// CreateAccessToken makes the client session of a code exchanged without offline_access (an
// access token and no refresh token), or a service account's client credentials token.
func (s *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	if cc, ok := req.(*ccRequest); ok {
		return s.clientCredentialsToken(ctx, cc)
	}
	a, ok := req.(*authRequest)
	if !ok {
		return "", time.Time{}, zoidc.ErrUnsupportedGrantType()
	}
	g, err := s.startSession(ctx, a, false)
	if err != nil {
		return "", time.Time{}, err
	}
	return g.AccessToken.Reveal(), g.AccessExpiry, nil
}

// CreateAccessAndRefreshTokens makes the client session of a code exchanged with
// offline_access, or rotates a refresh token (single use; a reused one revokes the session).
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	var g *identity.Grant
	var err error
	switch r := req.(type) {
	case *authRequest:
		g, err = s.startSession(ctx, r, true)
	case *refreshRequest:
		ip, _ := clientInfo(ctx)
		g, err = s.ident().RefreshClient(ctx, identity.ClientRefresh{TenantID: s.t.tenantID, ClientID: r.sess.ClientID,
			Token: tutela.NewSecret(current), JKT: state(ctx).jkt, Audience: []string{UserinfoAudience}, IP: ip})
		if err != nil {
			err = zoidc.ErrInvalidGrant().WithDescription("invalid, expired or reused refresh token").WithParent(err)
		}
	default:
		err = zoidc.ErrUnsupportedGrantType()
	}
	if err != nil {
		return "", "", time.Time{}, err
	}
	return g.AccessToken.Reveal(), g.RefreshToken.Reveal(), g.AccessExpiry, nil
}

var errInvalidRefresh = zoidc.ErrInvalidGrant().WithDescription("invalid, expired or reused refresh token")

// TokenRequestByRefreshToken reads what a refresh token stands for without using it up. A
// token already used is reuse: the rotation is attempted so that the family is revoked and the
// reuse recorded, and the token is refused.
func (s *storage) TokenRequestByRefreshToken(ctx context.Context, rt string) (op.RefreshTokenRequest, error) {
	st := state(ctx)
	info, err := s.ident().PeekClientRefresh(ctx, s.t.tenantID, st.clientID, tutela.NewSecret(rt))
	if err != nil {
		return nil, errInvalidRefresh
	}
	if info.Used {
		ip, _ := clientInfo(ctx)
		_, _ = s.ident().RefreshClient(ctx, identity.ClientRefresh{TenantID: s.t.tenantID, ClientID: st.clientID,
			Token: tutela.NewSecret(rt), JKT: st.jkt, Audience: []string{UserinfoAudience}, IP: ip})
		return nil, errInvalidRefresh
	}
	return &refreshRequest{sess: info.Session, scopes: strings.Fields(info.Session.Scope)}, nil
}

// GetRefreshTokenInfo names the session of a refresh token of clientID, for revocation.
func (s *storage) GetRefreshTokenInfo(ctx context.Context, clientID, rt string) (string, string, error) {
	info, err := s.ident().PeekClientRefresh(ctx, s.t.tenantID, clientID, tutela.NewSecret(rt))
	if err != nil {
		return "", "", op.ErrInvalidRefreshToken
	}
	// The session travels in the request's state, not in the token ID the library hands back
	// to RevokeToken: a client could send that string itself.
	state(ctx).revokeSession = info.Session.ID
	return info.Session.UserID, refreshMarker, nil
}

// refreshMarker is the token ID GetRefreshTokenInfo gives RevokeToken for a refresh token.
const refreshMarker = "refresh_token"

// RevokeToken ends the client session a refresh or access token belongs to (RFC 7009), when
// it is the asking client's: revoking either ends both, the session being one grant.
func (s *storage) RevokeToken(ctx context.Context, tokenOrID, _, clientID string) *zoidc.Error {
	var sid string
	if st := state(ctx); tokenOrID == refreshMarker && st.revokeSession != "" {
		sid = st.revokeSession
	} else {
		c, err := s.t.p.d.Tokens.Verify(ctx, tokenOrID, UserinfoAudience)
		if err != nil || c.Tenant != s.t.tenantID || c.ClientID != clientID {
			return nil // RFC 7009 §2.2: an invalid token is no error
		}
		sid = c.SessionID
	}
	if err := s.ident().RevokeClientSession(ctx, s.t.tenantID, clientID, sid, "token_revoked"); err != nil {
		return zoidc.ErrServerError()
	}
	return nil
}

// TerminateSession ends the user's sessions of clientID.
func (s *storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	return s.db().Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Users(s.t.tenantID).RevokeClientSessions(ctx, userID, clientID, "logout")
		return err
	})
}

// TerminateSessionFromRequest is RP-initiated logout. With an id_token_hint, the sign-in
// session it names (sid) ends, and with it every application's session made from it (each
// told by back-channel logout); the browser goes to the validated post_logout_redirect_uri.
// Without one, nobody vouches for the request: the hosted page asks the user to confirm.
func (s *storage) TerminateSessionFromRequest(ctx context.Context, r *op.EndSessionRequest) (string, error) {
	if r.IDTokenHintClaims == nil || r.IDTokenHintClaims.SessionID == "" {
		return s.t.issuer + "/logout", nil
	}
	if err := s.ident().EndBrowserSession(ctx, s.t.tenantID, r.UserID, r.IDTokenHintClaims.SessionID); err != nil {
		return "", err
	}
	if r.RedirectURI != "" {
		return r.RedirectURI, nil
	}
	return s.t.issuer + "/logged-out", nil
}

// SetUserinfoFromScopes fills the claims scopes name.
func (s *storage) SetUserinfoFromScopes(ctx context.Context, ui *zoidc.UserInfo, userID, _ string, scopes []string) error {
	u := state(ctx).user
	if u != nil && u.ID != userID {
		u = nil
	}
	var pol *authz.Policy
	if roles := slices.Contains(scopes, "roles"); u == nil || roles {
		err := s.db().View(ctx, func(tx *sqlstore.Tx) (err error) {
			if u == nil {
				if u, err = tx.Users(s.t.tenantID).Get(ctx, userID); err != nil {
					return err
				}
			}
			if roles {
				pol, err = tx.Policy(ctx, s.t.tenantID, userID)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	ui.Subject = u.ID
	if slices.Contains(scopes, zoidc.ScopeProfile) {
		ui.Name = u.DisplayName
	}
	if slices.Contains(scopes, zoidc.ScopeEmail) {
		// Addresses are entered by administrators; Tutela does not verify them.
		ui.Email, ui.EmailVerified = u.Email, false
	}
	if pol != nil {
		perms := []string{}
		now := s.t.p.d.Clock()
		for _, g := range pol.Grants {
			if g.Effect == authz.Allow && (g.Expires.IsZero() || now.Before(g.Expires)) {
				perms = append(perms, permString(g.Permission))
			}
		}
		slices.Sort(perms)
		ui.AppendClaims("roles", pol.Roles)
		ui.AppendClaims("permissions", slices.Compact(perms))
		ui.AppendClaims("tenant", s.t.slug)
	}
	return nil
}

func permString(p authz.Permission) string {
	s := p.Resource + ":" + string(p.Action)
	if p.MaxClass != "" {
		s += ":" + string(p.MaxClass)
	}
	return s
}

// SetUserinfoFromRequest adds sid to ID tokens: the sign-in session, shared by every
// application the user signed in to from it (back-channel logout names it).
func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	switch r := req.(type) {
	case *authRequest:
		ui.AppendClaims("sid", r.row.SessionID)
	case *refreshRequest:
		ui.AppendClaims("sid", r.sess.ParentID)
	}
	return nil
}

// SetUserinfoFromToken answers userinfo for a live access token of this tenant.
func (s *storage) SetUserinfoFromToken(ctx context.Context, ui *zoidc.UserInfo, tokenID, _, _ string) error {
	c, err := s.ident().VerifyClientToken(ctx, tokenID, UserinfoAudience)
	if err != nil || c.Tenant != s.t.tenantID {
		return zoidc.ErrAccessDenied().WithDescription("access token invalid")
	}
	if c.JKT != "" && c.JKT != state(ctx).jkt {
		return zoidc.ErrAccessDenied().WithDescription("DPoP proof required")
	}
	return s.SetUserinfoFromScopes(ctx, ui, c.Subject, c.ClientID, strings.Fields(c.Scope))
}

// SetIntrospectionFromToken answers introspection (RFC 7662) to the client the token was
// issued to; for any other caller, and for a token no longer live, it is inactive.
func (s *storage) SetIntrospectionFromToken(ctx context.Context, r *zoidc.IntrospectionResponse, tokenID, _, clientID string) error {
	c, err := s.ident().VerifyClientToken(ctx, tokenID, UserinfoAudience)
	if err != nil || c.Tenant != s.t.tenantID || c.ClientID != clientID {
		return zoidc.ErrAccessDenied()
	}
	r.Scope, r.ClientID, r.Subject = strings.Fields(c.Scope), c.ClientID, c.Subject
	r.TokenType = "Bearer"
	if c.JKT != "" {
		r.TokenType = "DPoP"
	}
	r.Expiration, r.IssuedAt, r.NotBefore = zoidc.FromTime(c.Expiry), zoidc.FromTime(c.IssuedAt), zoidc.FromTime(c.NotBefore)
	r.AuthTime, r.Audience, r.Issuer, r.JWTID = zoidc.FromTime(c.AuthTime), c.Audience, c.Issuer, c.ID
	r.AuthenticationMethodsReferences = c.AMR
	return nil
}
