package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"github.com/zitadel/schema"

	"tutela/sqlstore"
)

// Pushed authorization requests (RFC 9126). The client sends its authorization request to
// the PAR endpoint, authenticated as at the token endpoint, and gets a single-use request_uri
// (60 seconds) to send the browser with; the request's parameters never pass through the
// browser, and a client registered with require_pushed_authorization_requests must use it.

// parTTL is how long a request_uri can be used.
const parTTL = 60 * time.Second

// clientAuthParams are the form parameters of client authentication, not of the request.
var clientAuthParams = []string{"client_secret", "client_assertion", "client_assertion_type"}

// pushAuthorization serves POST {issuer}/par.
func (t *tenantOP) pushAuthorization(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.URL.RawQuery != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "parameters go in the request body")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	c, err := t.parClient(ctx, r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+t.issuer+`"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	params := url.Values{}
	for k, v := range r.PostForm {
		params[k] = v
	}
	for _, k := range clientAuthParams {
		params.Del(k)
	}
	if params.Has("request_uri") || params.Has("request") {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "request_uri and request objects cannot be pushed")
		return
	}
	if id := params.Get("client_id"); id != "" && id != c.c.ID {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "client_id does not match the authenticated client")
		return
	}
	params.Set("client_id", c.c.ID)
	// The request is checked now as at the authorization endpoint (§2.1); it is checked again
	// in full when the browser brings the request_uri.
	if params.Get("response_type") != string(zoidc.ResponseTypeCode) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "only response_type=code is supported")
		return
	}
	if err := op.ValidateAuthReqRedirectURI(c, params.Get("redirect_uri"), zoidc.ResponseTypeCode); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not registered for this client")
		return
	}
	if params.Get("code_challenge_method") != string(zoidc.CodeChallengeMethodS256) || len(params.Get("code_challenge")) != 43 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", errPKCE.Description)
		return
	}
	// A DPoP proof here binds the code to its key (RFC 9449 §10.1), as dpop_jkt would.
	jkt, err := t.proofKey(ctx, r, t.issuer+parPath, "")
	if err != nil {
		writeDPoPError(w, err)
		return
	}
	if jkt != "" {
		if v := params.Get("dpop_jkt"); v != "" && v != jkt {
			writeOAuthError(w, http.StatusBadRequest, "invalid_dpop_proof", "dpop_jkt does not match the proof's key")
			return
		}
		params.Set("dpop_jkt", jkt)
	}
	var uri string
	err = t.p.d.DB.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		uri, err = tx.PushAuthRequest(ctx, t.tenantID, c.c.ID, params, parTTL)
		return err
	})
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the request could not be stored")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"request_uri": uri, "expires_in": int(parTTL / time.Second)})
}

// parClient authenticates the pushing client: client_secret_basic, private_key_jwt, or a
// public client naming itself.
func (t *tenantOP) parClient(ctx context.Context, r *http.Request) (*client, error) {
	st := &storage{t: t}
	var id string
	switch {
	case r.PostForm.Get("client_assertion") != "":
		var err error
		id, err = op.ClientJWTAuth(ctx, zoidc.ClientAssertionParams{ClientAssertion: r.PostForm.Get("client_assertion"),
			ClientAssertionType: r.PostForm.Get("client_assertion_type")}, t.op)
		if err != nil {
			return nil, err
		}
	default:
		if user, pass, ok := r.BasicAuth(); ok {
			u, err1 := url.QueryUnescape(user)
			p, err2 := url.QueryUnescape(pass)
			if err1 != nil || err2 != nil {
				return nil, zoidc.ErrInvalidClient()
			}
			if err := st.AuthorizeClientIDSecret(ctx, u, p); err != nil {
				return nil, err
			}
			id = u
		} else {
			id = r.PostForm.Get("client_id")
			c, err := st.client(ctx, id)
			if err != nil || c.AuthMethod != sqlstore.AuthNone {
				return nil, zoidc.ErrInvalidClient()
			}
		}
	}
	c, err := st.client(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.AuthMethod == sqlstore.PrivateKeyJWT && r.PostForm.Get("client_assertion") == "" {
		return nil, zoidc.ErrInvalidClient()
	}
	return &client{c: c, t: t}, nil
}

// VerifyAuthRequest resolves a request_uri to the pushed request (its parameters replace the
// browser's; §4), and takes dpop_jkt. A client registered to push must have pushed.
func (s *server) VerifyAuthRequest(ctx context.Context, r *op.Request[zoidc.AuthRequest]) (*op.ClientRequest[zoidc.AuthRequest], error) {
	st := state(ctx)
	if uri := r.Form.Get("request_uri"); uri != "" {
		clientID := r.Form.Get("client_id")
		var params url.Values
		err := s.t.p.d.DB.Update(ctx, func(tx *sqlstore.Tx) (err error) {
			params, err = tx.TakePushedRequest(ctx, s.t.tenantID, clientID, uri)
			return err
		})
		if err != nil {
			return nil, zoidc.ErrInvalidRequestRedirectURI().WithDescription("unknown, expired or used request_uri")
		}
		var ar zoidc.AuthRequest
		dec := schema.NewDecoder()
		dec.IgnoreUnknownKeys(true)
		if err := dec.Decode(&ar, params); err != nil {
			return nil, zoidc.ErrInvalidRequestRedirectURI().WithDescription("the pushed request is unreadable")
		}
		r.Data, st.pushed, st.authJKT = &ar, true, params.Get("dpop_jkt")
	} else if jkt := r.Form.Get("dpop_jkt"); jkt != "" {
		if len(jkt) != 43 {
			return nil, zoidc.ErrInvalidRequest().WithDescription("dpop_jkt must be a JWK SHA-256 thumbprint")
		}
		st.authJKT = jkt
	}
	return s.verifyAuthRequest(ctx, r)
}
