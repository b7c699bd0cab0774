package identity

import (
	"context"
	"time"

	"tutela"
	"tutela/identity/token"
	"tutela/sqlstore"
)

// ClientSessionRequest starts a relying party's session from a completed authorization
// request: the code exchange at a tenant's OpenID Provider.
type ClientSessionRequest struct {
	TenantID string
	UserID   string
	// ParentSessionID is the browser's sign-in session that completed the request; the client
	// session ends with it and never outlives it.
	ParentSessionID string
	ClientID        string
	Scope           string
	// AuthTime and AMR are of the authentication the request was completed with.
	AuthTime time.Time
	AMR      []string
	// JKT binds the session's tokens to a DPoP key (RFC 9449); "" for bearer tokens.
	JKT      string
	Audience []string
	// Refresh: the client asked for offline_access and may refresh.
	Refresh bool
	IP, UA  string
	// Created runs in the transaction that creates the session (nil: nothing); its error
	// undoes the session.
	Created func(ctx context.Context, tx *sqlstore.Tx, sessionID string) error
}

// StartClientSession creates the client session, its access token and, when asked, the first
// refresh token of its family. The parent session, the user and the tenant must all still be
// active, so a sign-in revoked between the login page and the code exchange gives nothing.
func (s *Service) StartClientSession(ctx context.Context, req ClientSessionRequest) (*Grant, error) {
	if err := s.ensureSigner(ctx); err != nil {
		return nil, err
	}
	var g *Grant
	err := s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		parent, err := tx.SessionByID(ctx, req.ParentSessionID)
		if err != nil || parent.TenantID != req.TenantID || parent.UserID != req.UserID || parent.ClientID != "" {
			return refuse(errSession, "unknown_session")
		}
		if reason := parent.EndReason(tx.Now()); reason != "" {
			return sessionRefused(errSession, reason, parent)
		}
		p, err := s.principal(ctx, tx, req.TenantID, req.UserID, parent.TokenVersion)
		if err != nil {
			return err
		}
		// A user who must first change their password or enrol a second factor may use only
		// Tutela until then (ASVS 2.3.1), not an application.
		if p.MustChangePassword || p.MustEnrollMFA {
			return errRestricted
		}
		cred, err := tx.Users(req.TenantID).Credentials(ctx, req.UserID)
		if err != nil {
			return err
		}
		authTime := req.AuthTime.UTC()
		child := &sqlstore.Session{TenantID: req.TenantID, UserID: req.UserID, TokenVersion: parent.TokenVersion,
			AMR: req.AMR, IP: req.IP, UserAgent: req.UA, IdleTimeout: parent.IdleTimeout,
			AbsoluteExpiry: parent.AbsoluteExpiry, StepUpAt: parent.StepUpAt, ClientID: req.ClientID,
			ParentID: parent.ID, Scope: req.Scope, DPoPJKT: req.JKT, AuthTime: &authTime}
		// A client session has no cookie: its secret is never handed out.
		if err := tx.CreateSession(ctx, child, sqlstore.HashToken(newSecret())); err != nil {
			return err
		}
		if req.Created != nil {
			if err := req.Created(ctx, tx, child.ID); err != nil {
				return err
			}
		}
		g = &Grant{User: cred.User, Session: child, Audience: req.Audience, NoRefresh: !req.Refresh}
		return s.issue(ctx, tx, g, parent.TokenVersion)
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// ClientRefresh is a refresh-token exchange at a tenant's OpenID Provider.
type ClientRefresh struct {
	TenantID string
	ClientID string
	Token    tutela.Secret
	// JKT is the key of the request's DPoP proof ("" without one).
	JKT      string
	Audience []string
	IP       string
}

// RefreshClient rotates a relying party's refresh token: the same machinery as Refresh
// (single use, reuse revokes the family), plus the token must be of this client's session in
// this tenant, and of its DPoP key when the session is bound to one.
func (s *Service) RefreshClient(ctx context.Context, req ClientRefresh) (*Grant, error) {
	return s.refresh(ctx, refreshRequest{token: req.Token, audience: req.Audience, ip: req.IP,
		clientID: req.ClientID, dpopJKT: req.JKT, tenantID: req.TenantID})
}

// ClientRefreshInfo is what a refresh token stands for, read without using it up.
type ClientRefreshInfo struct {
	Session *sqlstore.Session
	Used    bool
}

// PeekClientRefresh reads the session of a relying party's refresh token without using it:
// the provider checks the client and scopes before RefreshClient rotates it. An unknown token,
// or one of another tenant or client, is ErrUnknownRefresh.
func (s *Service) PeekClientRefresh(ctx context.Context, tenantID, clientID string, refresh tutela.Secret) (*ClientRefreshInfo, error) {
	if len(refresh.Bytes()) != 43 {
		return nil, ErrUnknownRefresh
	}
	var info *ClientRefreshInfo
	err := s.db.View(ctx, func(tx *sqlstore.Tx) error {
		rt, err := tx.PeekRefreshToken(ctx, sqlstore.HashToken(refresh.Reveal()))
		if err != nil {
			return ErrUnknownRefresh
		}
		sess, err := tx.SessionByID(ctx, rt.SessionID)
		if err != nil || sess.TenantID != tenantID || sess.ClientID == "" || sess.ClientID != clientID {
			return ErrUnknownRefresh
		}
		info = &ClientRefreshInfo{Session: sess, Used: rt.UsedAt != nil}
		return nil
	})
	return info, err
}

// ErrUnknownRefresh answers a refresh token that is not one of the asking client's.
var ErrUnknownRefresh = tutela.Errorf(tutela.EUNAUTHENTICATED, "refresh token is invalid or expired")

// RevokeClientSession ends a relying party's session (token revocation, RFC 7009): only the
// client it belongs to may end it.
func (s *Service) RevokeClientSession(ctx context.Context, tenantID, clientID, sessionID, reason string) error {
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		sess, err := tx.SessionByID(ctx, sessionID)
		if err != nil || sess.TenantID != tenantID || sess.ClientID == "" || sess.ClientID != clientID {
			return nil // RFC 7009 §2.2: an invalid token is no error
		}
		return tx.RevokeSessionByID(ctx, sess.ID, reason)
	})
}

// VerifyClientToken checks an access token issued by a tenant's OpenID Provider for audience:
// signature, expiry, and that its user, tenant and session are still active (the same checks
// as every bearer token). It returns the claims.
func (s *Service) VerifyClientToken(ctx context.Context, tok, audience string) (*token.Claims, error) {
	c, err := s.Tokens.Verify(ctx, tok, audience)
	if err != nil {
		return nil, err
	}
	if c.ClientID == "" || c.Service() {
		return nil, errSession
	}
	if _, err := s.bearerPrincipal(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// EndBrowserSession ends the sign-in session sid (RP-initiated logout): it and every client
// session made from it. sid must be a Tutela session of the tenant's user.
func (s *Service) EndBrowserSession(ctx context.Context, tenantID, userID, sid string) error {
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		sess, err := tx.SessionByID(ctx, sid)
		if err != nil || sess.TenantID != tenantID || sess.UserID != userID {
			return nil
		}
		if sess.ParentID != "" {
			sid = sess.ParentID
		}
		return tx.RevokeSessionByID(ctx, sid, "logout")
	})
}
