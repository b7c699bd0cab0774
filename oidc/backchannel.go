package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"tutela"
	"tutela/jobs"
	"tutela/sqlstore"
)

// OpenID Connect Back-Channel Logout 1.0: when a user's session with a relying party ends at
// Tutela (sign-out, revocation, password change, refresh-token reuse, an admin's action), the
// relying party is sent a signed logout token server to server, so it can end its own session
// too. Delivery is a durable job: it survives restarts and is retried with the queue's backoff
// until the relying party acknowledges it.

const (
	// JobBackchannelLogout is the job kind that delivers one logout token.
	JobBackchannelLogout = "oidc.backchannel_logout"
	// BackchannelLogoutEvent is the member of a logout token's events claim (§2.4).
	BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"
	// LogoutTokenTTL is a logout token's lifetime (exp - iat): the relying party acts on it at
	// once, and a short life limits what a captured one could do.
	LogoutTokenTTL = 2 * time.Minute
	// BackchannelTimeout bounds one delivery: a relying party that does not answer in time is
	// tried again later rather than holding a worker.
	BackchannelTimeout = 5 * time.Second
	// backchannelAttempts: with the queue's backoff (30 s doubling, at most an hour), about
	// four hours of retries before the job is dead.
	backchannelAttempts = 8
	// maxRPResponse bounds how much of a relying party's answer is read (and discarded).
	maxRPResponse = 4 << 10
)

// LogoutSigner signs logout tokens with the tenant issuer's key (JOSE header typ logout+jwt,
// §2.4). The provider implements it with the key ring.
type LogoutSigner interface {
	SignLogoutToken(ctx context.Context, claims map[string]any) (string, error)
}

// backchannelPayload is a logout job's payload: identifiers only, no personal data, so it is
// not sealed.
type backchannelPayload struct {
	ClientID string `json:"client_id"`
	TenantID string `json:"tenant_id"`
	Sub      string `json:"sub"`
	SID      string `json:"sid"`
}

// EnqueueBackchannelLogout adds, in the caller's transaction, a job telling the tenant's client
// clientID that the session sid of user userID has ended. A client without a
// backchannel_logout_uri (or no longer registered) gets none. The job kind must be registered
// on q (BackchannelLogout.Register).
func EnqueueBackchannelLogout(ctx context.Context, tx *sqlstore.Tx, q *jobs.Queue, tenantID, clientID, userID, sid string) error {
	if userID == "" && sid == "" {
		return tutela.Errorf(tutela.EINVALID, "a logout token names a subject or a session")
	}
	c, err := tx.OIDCClients(tenantID).Get(ctx, clientID)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	if c.BackchannelLogoutURI == "" {
		return nil
	}
	payload, err := json.Marshal(backchannelPayload{ClientID: clientID, TenantID: tenantID, Sub: userID, SID: sid})
	if err != nil {
		return tutela.Wrap(err, "logout job unreadable")
	}
	// The kind is not sealed, so Prepare neither reads the vault nor reaches a KMS: it is safe
	// inside the transaction.
	j, err := q.Prepare(JobBackchannelLogout, tenantID, payload)
	if err != nil {
		return tutela.Wrap(err, "cannot queue the back-channel logout")
	}
	return tx.EnqueueJob(ctx, j)
}

// BackchannelLogout delivers logout tokens to relying parties.
type BackchannelLogout struct {
	DB     *sqlstore.DB
	Queue  *jobs.Queue
	Signer LogoutSigner
	// PublicURL is the server's public base URL; a tenant's issuer is PublicURL/t/{slug}.
	PublicURL string
	// HTTPClient sends the logout requests (nil: http.DefaultTransport). Its timeout and
	// redirect policy are replaced: BackchannelTimeout, and redirects never followed (a
	// relying party's answer is its registered URI's, not wherever that points the server).
	HTTPClient *http.Client
}

// Register adds the delivery job kind to the queue and has the store enqueue a logout for every
// client session a revocation ends, in the revoking transaction (sqlstore
// DB.OnClientSessionEnded), so no revocation path can forget it. The sid is the sign-in
// session's, as in the relying party's ID tokens.
func (b *BackchannelLogout) Register() {
	b.Queue.Register(jobs.Kind{Name: JobBackchannelLogout, MaxAttempts: backchannelAttempts,
		Timeout: BackchannelTimeout + 10*time.Second, Handle: b.deliver})
	b.DB.OnClientSessionEnded(func(ctx context.Context, tx *sqlstore.Tx, s sqlstore.EndedSession) error {
		// sid is the sign-in session the client's ID tokens name (storage.SetUserinfoFromRequest):
		// the OP session every application signed in from it shares.
		sid := s.ParentID
		if sid == "" {
			sid = s.ID
		}
		return EnqueueBackchannelLogout(ctx, tx, b.Queue, s.TenantID, s.ClientID, s.UserID, sid)
	})
}

// deliveryError is a failed delivery as the queue records it: a fixed class with the relying
// party's status code, never its answer's text.
type deliveryError struct{ class string }

func (e deliveryError) Error() string { return e.class }
func (e deliveryError) Class() string { return e.class }

// deliver is the job handler: it signs a fresh logout token and POSTs it to the client's
// back-channel logout URI. 200 or 204 is done; anything else (an error status, a redirect, no
// answer in time) fails the attempt and the queue retries it after its backoff.
func (b *BackchannelLogout) deliver(ctx context.Context, tenantID string, raw []byte) error {
	var p backchannelPayload
	if err := json.Unmarshal(raw, &p); err != nil || p.TenantID != tenantID || p.ClientID == "" {
		return deliveryError{"backchannel logout: payload unreadable"}
	}
	var client *sqlstore.OIDCClient
	var tenant *tutela.Tenant
	err := b.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if tenant, err = tx.Tenant(ctx, tenantID); err != nil {
			return err
		}
		client, err = tx.OIDCClients(tenantID).Get(ctx, p.ClientID)
		return err
	})
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil // the client (or tenant) is gone: nobody is left to tell
	}
	if err != nil {
		return err
	}
	if client.BackchannelLogoutURI == "" || client.Status != "active" {
		return nil
	}
	target, err := url.Parse(client.BackchannelLogoutURI)
	if err != nil || target.Scheme != "https" || target.Host == "" || target.User != nil || target.Fragment != "" {
		// §2.2: an absolute https URL without a fragment. Registration refuses others; one in
		// the store anyway is not sent a token.
		return deliveryError{"backchannel logout: the client's backchannel_logout_uri is not an https URL"}
	}
	now := b.DB.Now()
	claims := map[string]any{
		"iss":    strings.TrimRight(b.PublicURL, "/") + "/t/" + tenant.Slug,
		"aud":    p.ClientID,
		"iat":    now.Unix(),
		"exp":    now.Add(LogoutTokenTTL).Unix(),
		"jti":    tutela.RandomToken(16),
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	}
	if p.Sub != "" {
		claims["sub"] = p.Sub
	}
	if p.SID != "" {
		claims["sid"] = p.SID
	}
	tok, err := b.Signer.SignLogoutToken(ctx, claims)
	if err != nil {
		return fmt.Errorf("backchannel logout: sign: %w", err)
	}
	return b.post(ctx, target.String(), tok)
}

func (b *BackchannelLogout) post(ctx context.Context, target, logoutToken string) error {
	ctx, cancel := context.WithTimeout(ctx, BackchannelTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target,
		strings.NewReader(url.Values{"logout_token": {logoutToken}}.Encode()))
	if err != nil {
		return deliveryError{"backchannel logout: request not built"}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := http.Client{Timeout: BackchannelTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if b.HTTPClient != nil {
		hc.Transport, hc.Jar = b.HTTPClient.Transport, nil
	}
	res, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return deliveryError{"backchannel logout: the client did not answer in time"}
		}
		return deliveryError{"backchannel logout: the client could not be reached"}
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxRPResponse))
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNoContent {
		return deliveryError{fmt.Sprintf("backchannel logout: the client answered %d", res.StatusCode)}
	}
	return nil
}
