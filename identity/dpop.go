package identity

import (
	"context"

	"tutela"
	"tutela/identity/token"
)

// errTokenBinding answers an access token presented without the DPoP key it is bound to, or a
// DPoP proof with a token bound to no key. The message is the one every refused access token
// gets, so a client cannot tell which check failed (ASVS 6.3.8).
var errTokenBinding = tutela.Errorf(tutela.EUNAUTHENTICATED, "invalid access token")

// AuthenticateDPoP is AuthenticateBearer for a token presented under the DPoP scheme (RFC 9449
// §7.1). The caller has verified the request's DPoP proof (oidc.VerifyDPoP, with the token's
// ath) and passes the thumbprint of the key that signed it: the token must be bound to exactly
// that key (cnf.jkt). anyAudience is as for AuthenticateBearerAnyAudience.
func (s *Service) AuthenticateDPoP(ctx context.Context, tok, jkt string, anyAudience bool) (*tutela.Principal, error) {
	if jkt == "" {
		return nil, refuse(errTokenBinding, "dpop_proof_missing")
	}
	return s.authenticateAccess(ctx, tok, jkt, anyAudience)
}

// authenticateAccess verifies an access token for Tutela's API (or any registered audience),
// requires its DPoP binding to be jkt ("" for a token presented as a Bearer token, which must
// then be bound to no key: a bound token is worthless without its proof, RFC 9449 §7.2), and
// loads the principal it stands for.
func (s *Service) authenticateAccess(ctx context.Context, tok, jkt string, anyAudience bool) (*tutela.Principal, error) {
	var claims *token.Claims
	var err error
	if anyAudience {
		claims, err = s.Tokens.VerifyAny(ctx, tok, s.audiences())
	} else {
		claims, err = s.Tokens.Verify(ctx, tok, s.cfg.Audience)
	}
	if err != nil {
		return nil, err
	}
	// A thumbprint is public (it is in the token), so a plain comparison leaks nothing.
	if claims.JKT != jkt {
		reason, target := "dpop_key_mismatch", "user"
		if jkt == "" {
			reason = "dpop_proof_missing"
		}
		if claims.Service() {
			target = "service_account"
		}
		return nil, &Refusal{Reason: reason, TenantID: claims.Tenant, TargetType: target, TargetID: claims.Subject,
			SessionID: claims.SessionID, Err: errTokenBinding}
	}
	return s.bearerPrincipal(ctx, claims)
}
