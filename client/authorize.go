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
//
// Step-up is enforced, not left to the handler: when the action or data needs a second factor
// proved within authz.StepUpWindow (sensitive actions, RED data) and the caller is a user who
// has not proved one, the Decision has Allow false and Obligations.StepUpRequired true. That
// obligation is only ever set on a refusal, so a handler that proceeds on Allow alone is
// safe; Refuse answers such a decision with the RFC 9470 challenge that tells the caller to
// step up. req.StepUpAt is ignored: the factor time comes from what this client can verify
// (see Require), never from the handler.
func (c *Client) Authorize(ctx context.Context, req authz.Request) (authz.Decision, error) {
	a := authFrom(ctx)
	if a == nil || a.client != c {
		return authz.Decision{}, unauthenticated(errors.New("no caller authenticated by this client"))
	}
	return c.decide(ctx, a.token, a.claims, req)
}

// decide answers req for the token's principal. Its decisions never hold an allow with
// StepUpRequired: enforceStepUp makes those refusals.
func (c *Client) decide(ctx context.Context, tok string, cl *Claims, req authz.Request) (authz.Decision, error) {
	// A factor time from the handler would let it vouch for a factor nobody verified.
	req.StepUpAt = cl.stepUpAt()
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
			now := c.cfg.Clock()
			return enforceStepUp(authz.Decide(pol, req, now), cl, now), nil
		}
	}
	d, err := c.check(ctx, tok, cl, req)
	if err != nil {
		return authz.Decision{}, err
	}
	return enforceStepUp(d, cl, c.cfg.Clock()), nil
}

// enforceStepUp applies the step-up obligation of d as Tutela's server does (httpapi
// requireStepUp): not to service accounts, which have no second factor; for users, an allow
// without a second factor proved within authz.StepUpWindow becomes a refusal that keeps
// StepUpRequired, so the caller learns that stepping up would help (RFC 9470).
//
// Locally, d was computed from the token's factor time and this re-check agrees with it. From
// the check API, StepUpRequired false means Tutela knows of a fresh factor (e.g. a step-up
// since the token was issued) and is trusted, for at most CheckTTL; true is re-checked
// against the token, so both paths accept the same tokens.
func enforceStepUp(d authz.Decision, cl *Claims, now time.Time) authz.Decision {
	if !d.Obligations.StepUpRequired {
		return d
	}
	at := cl.stepUpAt()
	fresh := !at.IsZero() && now.Sub(at) <= authz.StepUpWindow
	// A deny stays the deny it is: stepping up would not turn it into an allow.
	if !d.Allow || cl.service() || fresh {
		d.Obligations.StepUpRequired = false
		return d
	}
	return authz.Decision{Reason: authz.StepUpReason, Matched: d.Matched, Obligations: authz.Obligations{StepUpRequired: true}}
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
