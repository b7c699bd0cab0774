package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxIntrospectionSize bounds an introspection response.
const maxIntrospectionSize = 64 << 10

// introspection is the part of an RFC 7662 response the client uses.
type introspection struct {
	Active  bool   `json:"active"`
	Subject string `json:"sub"`
	Tenant  string `json:"tenant"`
}

// checkRevocation asks Tutela whether the token is still active — the user's token version
// and the session's state are known only there — and caches the answer per jti for
// RevocationTTL (never beyond the token's expiry). "Inactive" is cached too: a revoked token
// stays revoked. With no ClientID configured there is nothing to ask and every verified token
// passes.
func (c *Client) checkRevocation(ctx context.Context, tok string, cl *Claims) error {
	if c.cfg.ClientID == "" {
		return nil
	}
	res, err := c.revocation.do(ctx, cl.ID, c.cfg.Clock, func() (introspection, time.Time, error) {
		// Other requests with this token may be waiting for the answer: the first one
		// leaving must not cancel it for them.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		in, err := c.introspect(lctx, tok)
		exp := c.cfg.Clock().Add(c.cfg.RevocationTTL)
		if end := cl.Expiry.Add(leeway); end.Before(exp) {
			exp = end
		}
		return in, exp, err
	})
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return unavailable(err)
		}
		return err
	}
	// Tutela answers for the token as it verified it; a response about another principal (a
	// confused or hostile endpoint) counts as inactive.
	if !res.Active || res.Subject != cl.Subject || res.Tenant != cl.Tenant {
		return unauthenticated(ErrRevoked)
	}
	return nil
}

// introspect calls POST /v1/auth/introspect (RFC 7662 §2.1) with client_secret_basic.
func (c *Client) introspect(ctx context.Context, tok string) (introspection, error) {
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/v1/auth/introspect",
		strings.NewReader(form.Encode()))
	if err != nil {
		return introspection{}, fmt.Errorf("client: introspect: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client_id and secret are form-encoded before Basic. Tutela's IDs and
	// secrets use only unreserved characters, so this changes nothing for them.
	req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret.Reveal()))
	status, body, err := c.do(req, maxIntrospectionSize)
	if err != nil {
		return introspection{}, unavailable(fmt.Errorf("client: introspect: %w", err))
	}
	if status != http.StatusOK {
		return introspection{}, statusError("client: introspect", status)
	}
	var in introspection
	if err := json.Unmarshal(body, &in); err != nil {
		return introspection{}, unavailable(fmt.Errorf("client: introspect: response: %w", err))
	}
	return in, nil
}
