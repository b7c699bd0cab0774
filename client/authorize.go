package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"tutela"
	"tutela/authz"
)

// maxDecisionSize bounds a check API response.
const maxDecisionSize = 64 << 10

// Authorize decides whether the caller authenticated by this client's middleware (Authenticate
// or Require, earlier in the chain) may make req: locally from the policy snapshot when there
// is one, else by asking Tutela. Use it in a handler when the classification or purpose
// depends on the record. A deny is a Decision with Allow false and a reason, not an error;
// errors are EUNAUTHENTICATED (no caller), EUNAVAILABLE (Tutela unreachable) or EINTERNAL.
func (c *Client) Authorize(ctx context.Context, req authz.Request) (authz.Decision, error) {
	a := authFrom(ctx)
	if a == nil || a.client != c {
		return authz.Decision{}, unauthenticated(errors.New("no caller authenticated by this client"))
	}
	return c.decide(ctx, a.token, a.claims, req)
}

func (c *Client) decide(ctx context.Context, tok string, cl *Claims, req authz.Request) (authz.Decision, error) {
	if req.StepUpAt.IsZero() {
		req.StepUpAt = cl.stepUpAt()
	}
	// The same questions the check API refuses as malformed are denied here without asking.
	if reason := invalidRequest(req); reason != "" {
		return authz.Decision{Reason: reason}, nil
	}
	if c.cfg.Policies != nil {
		pol, err := c.cfg.Policies(ctx, cl.Tenant, cl.Subject)
		switch {
		case err != nil:
			c.cfg.Logger.WarnContext(ctx, "tutela client: policy snapshot failed; asking Tutela", "err", err)
		case pol != nil:
			// A snapshot of someone else's policy would answer for the wrong principal.
			if pol.TenantID != cl.Tenant || pol.Subject != cl.Subject {
				return authz.Decision{}, tutela.Wrap(fmt.Errorf("client: policy source returned the policy of %q in tenant %q for %q in tenant %q",
					pol.Subject, pol.TenantID, cl.Subject, cl.Tenant), "authorization misconfigured")
			}
			return authz.Decide(pol, req, c.cfg.Clock()), nil
		}
	}
	return c.check(ctx, tok, cl, req)
}

func invalidRequest(r authz.Request) string {
	switch {
	case !r.Action.Valid():
		return fmt.Sprintf("unknown action %q", r.Action)
	case r.Resource == "" || r.Resource == authz.Any || len(r.Resource) > 63:
		return "a resource type is required"
	case r.Class != "" && !r.Class.Valid():
		return fmt.Sprintf("unknown classification %q", r.Class)
	}
	return ""
}

// checkRequest is the body of POST /v1/authz/check; user_id is left out, so Tutela answers
// for the caller the token belongs to.
type checkRequest struct {
	Action         authz.Action         `json:"action"`
	Resource       string               `json:"resource"`
	Classification authz.Classification `json:"classification,omitempty"`
	Purpose        string               `json:"purpose,omitempty"`
}

// check asks POST /v1/authz/check with the caller's own token and caches the decision per
// (jti, request) for CheckTTL.
func (c *Client) check(ctx context.Context, tok string, cl *Claims, req authz.Request) (authz.Decision, error) {
	body, err := json.Marshal(checkRequest{Action: req.Action, Resource: req.Resource, Classification: req.Class,
		Purpose: req.Purpose})
	if err != nil {
		return authz.Decision{}, tutela.Wrap(err, "authorization failed")
	}
	// The JSON body identifies the question unambiguously, whatever bytes purpose holds.
	key := cl.ID + "\x00" + string(body)
	d, err := c.decisions.do(ctx, key, c.cfg.Clock, func() (authz.Decision, time.Time, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		d, err := c.callCheck(lctx, tok, body)
		exp := c.cfg.Clock().Add(c.cfg.CheckTTL)
		if cl.Expiry.Before(exp) {
			exp = cl.Expiry
		}
		return d, exp, err
	})
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return authz.Decision{}, unavailable(err)
		}
		return authz.Decision{}, err
	}
	return d, nil
}

func (c *Client) callCheck(ctx context.Context, tok string, body []byte) (authz.Decision, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/v1/authz/check", bytes.NewReader(body))
	if err != nil {
		return authz.Decision{}, tutela.Wrap(err, "authorization failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	status, resp, err := c.do(req, maxDecisionSize)
	switch {
	case err != nil:
		return authz.Decision{}, unavailable(fmt.Errorf("client: check: %w", err))
	case status == http.StatusUnauthorized:
		// Tutela no longer accepts the token (revoked since the last introspection).
		return authz.Decision{}, unauthenticated(fmt.Errorf("%w: refused by the check API", ErrRevoked))
	case status != http.StatusOK:
		return authz.Decision{}, statusError("client: check", status)
	}
	var d authz.Decision
	if err := json.Unmarshal(resp, &d); err != nil {
		return authz.Decision{}, unavailable(fmt.Errorf("client: check: response: %w", err))
	}
	return d, nil
}
