package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"tutela"
	"tutela/authz"
)

// auth is what the middleware learnt about a request; it travels in the request context.
type auth struct {
	client   *Client // the client that verified the token: another client's audience differs
	token    string
	claims   *Claims
	decision *authz.Decision
}

type authKey struct{}

func authFrom(ctx context.Context) *auth {
	a, _ := ctx.Value(authKey{}).(*auth)
	return a
}

// ClaimsFrom returns the verified claims of the request's access token, or nil when no
// middleware of this package authenticated the request.
func ClaimsFrom(ctx context.Context) *Claims {
	if a := authFrom(ctx); a != nil {
		return a.claims
	}
	return nil
}

// DecisionFrom returns the decision Require made for the request, with its obligations
// (fields to mask), or nil when no Require ran. Require has enforced Allow and step-up; the
// masks are the handler's to apply.
func DecisionFrom(ctx context.Context) *authz.Decision {
	if a := authFrom(ctx); a != nil {
		return a.decision
	}
	return nil
}

// Authenticate is middleware that lets through only requests with a valid, unrevoked access
// token for this audience (RFC 6750 §2.1 Authorization header) and puts its claims in the
// context. Anything else is 401 with WWW-Authenticate; Tutela unreachable for the revocation
// check is 503.
func (c *Client) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := c.authenticate(r)
		if err != nil {
			c.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authKey{}, a)))
	})
}

// Require is middleware that authenticates the request (as Authenticate) and then allows it
// only when the caller may do action on resources of type resource (at GREEN; use Authorize in
// the handler for classified records). A deny is 403 with the reason. The decision goes into
// the context (DecisionFrom); its masks are the handler's to apply.
//
// Step-up is enforced as Tutela enforces it for its own routes: a sensitive action
// (authz.SensitiveActions) by a user who has not proved a second factor within
// authz.StepUpWindow is 401 step_up_required with the RFC 9470 challenge (Refuse), and the
// handler is not called. Service accounts are not asked. The factor time is the latest this
// client can trust: the token's auth_time when its amr names a second factor (otp, hwk, rcv,
// mfa), else never, so a password-only token is always refused. With the check API, an
// answer from Tutela that no step-up is needed (it knows the session's step-ups, including
// those since the token was issued) is honoured too, for at most CheckTTL.
func (c *Client) Require(action authz.Action, resource string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, err := c.authenticate(r)
			if err != nil {
				c.writeError(w, r, err)
				return
			}
			d, err := c.decide(r.Context(), a.token, a.claims, authz.Request{Action: action, Resource: resource})
			if err != nil {
				c.writeError(w, r, err)
				return
			}
			if !d.Allow {
				c.Refuse(w, r, d)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authKey{}, &auth{
				client: c, token: a.token, claims: a.claims, decision: &d,
			})))
		})
	}
}

// Refuse answers a request whose decision (from Authorize) is not an allow, as Require does:
// 401 step_up_required with the RFC 9470 challenge when a fresh second factor would allow it
// (Obligations.StepUpRequired), else 403 with the reason. Called with an allow, which would be
// a bug in the handler, it answers 500 rather than guess.
func (c *Client) Refuse(w http.ResponseWriter, r *http.Request, d authz.Decision) {
	switch {
	case d.Allow:
		c.writeError(w, r, tutela.Wrap(errors.New("client: Refuse called with an allow"), "internal error"))
	case d.Obligations.StepUpRequired:
		c.writeError(w, r, tutela.Errorf(tutela.ESTEPUPREQUIRED, "%s", d.Reason))
	default:
		c.writeError(w, r, tutela.Errorf(tutela.EFORBIDDEN, "%s", d.Reason))
	}
}

// errNoToken marks a request without credentials: RFC 6750 §3.1 says the challenge then
// carries no error code.
var errNoToken = errors.New("no bearer token")

// authenticate reuses what an earlier middleware of this client verified, so Authenticate
// followed by Require checks the token once.
func (c *Client) authenticate(r *http.Request) (*auth, error) {
	if a := authFrom(r.Context()); a != nil && a.client == c {
		return a, nil
	}
	tok, err := bearer(r)
	if err != nil {
		return nil, unauthenticated(err)
	}
	cl, err := c.Verify(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	return &auth{client: c, token: tok, claims: cl}, nil
}

// bearer extracts the token of an "Authorization: Bearer" header (RFC 6750 §2.1). Tokens in
// the query string or body (§2.2, §2.3) are not accepted: they end up in logs and histories.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return "", errNoToken
	}
	if len(h) > 1 {
		return "", errors.New("several Authorization headers")
	}
	scheme, tok, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New("not a Bearer authorization")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", errors.New("empty bearer token")
	}
	return tok, nil
}

// writeError writes err in Tutela's error shape, with the challenge RFC 6750 §3 asks for on
// 401. Only the code and client-safe message are sent; the cause goes to the log.
func (c *Client) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := tutela.ErrorCode(err)
	status := http.StatusInternalServerError
	switch code {
	case tutela.EUNAUTHENTICATED:
		status = http.StatusUnauthorized
		if errors.Is(err, errNoToken) {
			w.Header().Set("WWW-Authenticate", `Bearer`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="invalid access token"`)
		}
		c.cfg.Logger.DebugContext(r.Context(), "tutela client: request refused", "err", err)
	case tutela.ESTEPUPREQUIRED:
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", authz.StepUpChallenge)
	case tutela.EFORBIDDEN:
		status = http.StatusForbidden
	case tutela.EUNAVAILABLE:
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "2")
		c.cfg.Logger.WarnContext(r.Context(), "tutela client: Tutela unavailable", "err", err)
	default:
		code = tutela.EINTERNAL
		c.cfg.Logger.ErrorContext(r.Context(), "tutela client: authorization failed", "err", err)
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, tutela.ErrorMessage(err)
	if code == tutela.EINTERNAL {
		body.Error.Message = "internal error"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
