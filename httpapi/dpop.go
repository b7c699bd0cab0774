package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"tutela"
	"tutela/identity"
	"tutela/oidc"
	"tutela/sqlstore"
)

// DPoP-bound access tokens on Tutela's own API (RFC 9449 §7): a token whose cnf.jkt names a key
// is accepted only under the DPoP scheme, with a DPoP header proof signed by that key for this
// very request (method, URL, the token's hash), used once.

// errDPoPHeader answers a DPoP request without exactly one proof (RFC 9449 §4.3 check 1).
var errDPoPHeader = &tutela.Error{Code: tutela.EUNAUTHENTICATED, Message: "invalid DPoP proof",
	Err: fmt.Errorf("%w: exactly one DPoP header is required", oidc.ErrInvalidDPoPProof)}

// dpopReasons name the proof refusals in the audit log.
var dpopReasons = []struct {
	err    error
	reason string
}{
	{oidc.ErrDPoPTooLarge, "dpop_too_large"}, {oidc.ErrDPoPMalformed, "dpop_malformed"}, {oidc.ErrDPoPType, "dpop_type"},
	{oidc.ErrDPoPKey, "dpop_key"}, {oidc.ErrDPoPSignature, "dpop_signature"}, {oidc.ErrDPoPClaims, "dpop_claims"},
	{oidc.ErrDPoPJTI, "dpop_jti"}, {oidc.ErrDPoPMethod, "dpop_htm"}, {oidc.ErrDPoPURL, "dpop_htu"},
	{oidc.ErrDPoPTime, "dpop_iat"}, {oidc.ErrDPoPATH, "dpop_ath"}, {oidc.ErrDPoPNonce, "dpop_nonce"},
}

// authenticateDPoP authenticates a request presenting tok under the DPoP scheme: the proof
// first (it costs no database work and binds to tok through ath), then the token and its
// binding to the proof's key, then the proof's single use.
func (s *Server) authenticateDPoP(r *http.Request, tok string, anyAudience bool) (*tutela.Principal, error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return nil, &identity.Refusal{Reason: "dpop_proof_missing", Err: errDPoPHeader}
	}
	var v oidc.DPoPVerifier
	now := s.d.Clock()
	jkt, jti, err := v.Verify(proofs[0], r.Method, s.requestURL(r), tok, now)
	if err != nil {
		reason := "dpop_invalid"
		for _, m := range dpopReasons {
			if errors.Is(err, m.err) {
				reason = m.reason
				break
			}
		}
		return nil, &identity.Refusal{Reason: reason, Err: err}
	}
	p, err := s.d.Identity.AuthenticateDPoP(r.Context(), tok, jkt, anyAudience)
	if err != nil {
		return nil, err
	}
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error { return tx.UseDPoPProof(r.Context(), jti, now.Add(v.ReplayWindow())) })
	if errors.Is(err, sqlstore.ErrDPoPReplay) {
		target := "user"
		if p.Kind != tutela.PrincipalUser {
			target = "service_account"
		}
		return nil, &identity.Refusal{Reason: "dpop_replay", TenantID: p.TenantID, TargetType: target, TargetID: p.UserID,
			SessionID: p.SessionID, Err: err}
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// requestURL is the URL the client addressed, as a DPoP proof's htu names it: the configured
// public URL (the address clients know, whatever proxies stand between) with the request's
// path; without one, the request's own scheme and host.
func (s *Server) requestURL(r *http.Request) string {
	if s.d.Identity != nil && s.d.Identity.PublicURL != "" {
		return strings.TrimRight(s.d.Identity.PublicURL, "/") + r.URL.EscapedPath()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// dpopChallenge is the DPoP WWW-Authenticate challenge for a refused request (RFC 9449 §7.1):
// invalid_dpop_proof for a bad or replayed proof, invalid_token when a token was presented and
// refused, and only the accepted algorithms when no credential was.
func dpopChallenge(r *http.Request, err error) string {
	algs := `algs="` + oidc.DPoPAlgsValue + `"`
	switch {
	case errors.Is(err, oidc.ErrInvalidDPoPProof) || errors.Is(err, sqlstore.ErrDPoPReplay):
		return `DPoP error="invalid_dpop_proof", ` + algs
	case r.Header.Get("Authorization") != "":
		return `DPoP error="invalid_token", ` + algs
	}
	return "DPoP " + algs
}

// usesDPoP reports whether the request presents its token under the DPoP scheme.
func usesDPoP(r *http.Request) bool {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "DPoP")
}
