package oidc

import (
	"net/http"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"tutela"
	"tutela/sqlstore"
)

// codeResponse is the authorization response (RFC 6749 §4.1.2) with iss (RFC 9207), which
// lets a client talking to several providers tell whose response it got (mix-up defence).
type codeResponse struct {
	Code  string `schema:"code"`
	State string `schema:"state,omitempty"`
	Iss   string `schema:"iss"`
}

// errorResponse is an authorization error response with iss.
type errorResponse struct {
	Error       string `schema:"error"`
	Description string `schema:"error_description,omitempty"`
	State       string `schema:"state,omitempty"`
	Iss         string `schema:"iss"`
}

// callback finishes an authorization request the hosted pages completed or refused: a fresh
// random code (only its digest is kept) or the refusal goes back to the registered redirect
// URI the request was validated with.
func (t *tenantOP) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := &storage{t: t}
	a, err := st.authRequest(ctx, r.URL.Query().Get("id"))
	if err != nil {
		op.AuthRequestError(w, r, nil, err, t.op)
		return
	}
	var resp any
	switch {
	case a.row.Denied != "":
		resp = errorResponse{Error: a.row.Denied, Description: denialText[a.row.Denied], State: a.req.State, Iss: t.issuer}
	case !a.row.Done:
		resp = errorResponse{Error: DenyInteractionRequired, State: a.req.State, Iss: t.issuer}
	case !t.validCallbackKey(r.URL.Query().Get("k"), a.row.ID):
		// Not the browser the request was completed in (see callback_key.go): no code, and
		// no redirect either, so that nothing reaches the client from this browser.
		op.AuthRequestError(w, r, nil, zoidc.ErrInvalidRequest().WithDescription("finish signing in in the browser you started in"), t.op)
		return
	default:
		code := tutela.RandomB64(32)
		if err := st.db().Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.SaveOIDCCode(ctx, t.tenantID, a.row.ID, sqlstore.HashToken(code))
		}); err != nil {
			// Completed once already: a second code is never made for it.
			op.AuthRequestError(w, r, a, zoidc.ErrInvalidRequest().WithDescription("authorization request already used"), t.op)
			return
		}
		resp = codeResponse{Code: code, State: a.req.State, Iss: t.issuer}
	}
	u, err := op.AuthResponseURL(a.req.RedirectURI, zoidc.ResponseTypeCode, a.GetResponseMode(), resp, t.op.Encoder())
	if err != nil {
		op.AuthRequestError(w, r, a, err, t.op)
		return
	}
	http.Redirect(w, r, u, http.StatusFound)
}

// denialText explains a refusal to the client's developers.
var denialText = map[string]string{
	DenyAccessDenied:        "the user refused",
	DenyLoginRequired:       "the user is not signed in",
	DenyConsentRequired:     "the user has not consented to this client",
	DenyInteractionRequired: "the user must interact with the sign-in page",
}
