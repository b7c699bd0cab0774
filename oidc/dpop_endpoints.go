package oidc

import (
	"context"
	"errors"
	"net/http"
	"strings"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"tutela"
	"tutela/sqlstore"
)

// DPoP at the provider's endpoints (RFC 9449). A proof at the token endpoint binds the tokens
// it issues to the proof's key (cnf.jkt, token_type DPoP); a bound session refreshes only with
// a proof by that key (identity's refresh). At userinfo a bound token is presented as
// "Authorization: DPoP <token>" with a proof naming the token (ath). Each proof is used once.

// proofKey verifies the request's DPoP proof for the endpoint at url and records its jti; it
// returns the proof key's thumbprint, or "" when the request has no proof.
func (t *tenantOP) proofKey(ctx context.Context, r *http.Request, url, accessToken string) (string, error) {
	proofs := r.Header.Values("DPoP")
	switch len(proofs) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", zoidc.ErrInvalidRequest().WithDescription("exactly one DPoP proof")
	}
	now := t.p.d.Clock()
	v := DPoPVerifier{}
	jkt, jti, err := v.Verify(proofs[0], r.Method, url, accessToken, now)
	if err != nil {
		return "", err
	}
	err = t.p.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.UseDPoPProof(ctx, jti, now.Add(v.ReplayWindow()))
	})
	if err != nil {
		return "", err
	}
	return jkt, nil
}

// dpopTokenRequest checks a token request's DPoP proof, remembering its key for storage.
func (t *tenantOP) dpopTokenRequest(w http.ResponseWriter, r *http.Request) bool {
	jkt, err := t.proofKey(r.Context(), r, t.issuer+endpoints.Token.Relative(), "")
	if err != nil {
		writeDPoPError(w, err)
		return false
	}
	state(r.Context()).jkt = jkt
	return true
}

// dpopUserinfo accepts "Authorization: DPoP <token>" at userinfo: the proof must name the
// token; the library then sees it as a bearer token, and storage compares the token's cnf.jkt
// with the proof's key (a bound token without its proof is refused there).
func (t *tenantOP) dpopUserinfo(w http.ResponseWriter, r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "DPoP") {
		return true
	}
	jkt, err := t.proofKey(r.Context(), r, t.issuer+endpoints.Userinfo.Relative(), tok)
	if err != nil || jkt == "" {
		w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof", algs="`+DPoPAlgsValue+`"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_dpop_proof", "a valid DPoP proof for this token is required")
		return false
	}
	state(r.Context()).jkt = jkt
	r.Header.Set("Authorization", "Bearer "+tok)
	return true
}

// writeDPoPError answers a refused proof at the token endpoint (RFC 9449 §5).
func writeDPoPError(w http.ResponseWriter, err error) {
	desc := "invalid DPoP proof"
	var te *tutela.Error
	var ze *zoidc.Error
	switch {
	case errors.As(err, &ze):
		desc = ze.Description
	case errors.As(err, &te):
		desc = te.Message
	}
	writeOAuthError(w, http.StatusBadRequest, "invalid_dpop_proof", desc)
}

// requireDPoP refuses a token request of a client registered to need DPoP when it has none,
// and marks the response's token type.
func requireDPoP(ctx context.Context, c *client) error {
	if c.c.RequireDPoP && state(ctx).jkt == "" {
		return &zoidc.Error{ErrorType: "invalid_dpop_proof", Description: "this client's tokens must be DPoP-bound: send a DPoP proof"}
	}
	return nil
}

// dpopType sets the token type of a token response whose tokens are bound.
func dpopType(ctx context.Context, resp *zoidc.AccessTokenResponse) {
	if resp != nil && state(ctx).jkt != "" {
		resp.TokenType = "DPoP"
	}
}
