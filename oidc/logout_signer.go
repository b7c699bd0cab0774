package oidc

import (
	"context"
	"strings"

	"tutela"
	"tutela/identity/token"
	"tutela/sqlstore"
)

// SignLogoutToken signs a back-channel logout token (typ logout+jwt) with the key ring, in
// the algorithm the client registered for its ID tokens (a relying party that only speaks
// RSA verifies its logout tokens with RSA too). It implements LogoutSigner.
func (p *Provider) SignLogoutToken(ctx context.Context, claims map[string]any) (string, error) {
	iss, _ := claims["iss"].(string)
	aud, _ := claims["aud"].(string)
	slug, ok := strings.CutPrefix(iss, p.d.PublicURL+"/t/")
	if !ok || slug == "" || aud == "" {
		return "", tutela.Errorf(tutela.EINVALID, "logout token names no issuer of this server or no client")
	}
	alg := token.EdDSA
	err := p.d.DB.View(ctx, func(tx *sqlstore.Tx) error {
		t, err := tx.TenantBySlug(ctx, slug)
		if err != nil {
			return err
		}
		c, err := tx.OIDCClients(t.ID).Get(ctx, aud)
		if err != nil {
			return err
		}
		if c.IDTokenAlg != "" {
			alg = token.Alg(c.IDTokenAlg)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return p.d.Tokens.SignJWT(alg, "logout+jwt", claims)
}
