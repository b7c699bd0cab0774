package oidc

import (
	"encoding/json"
	"errors"
	"net/url"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"tutela/sqlstore"
)

// The callback hands a completed request's code to whoever asks for it by the request's ID,
// and that ID is no secret: it is in the sign-in page's URL, and whoever started the request
// knows it. Without more, an attacker could start a request in their own browser (so the
// client's state and PKCE verifier are theirs), lure a victim to the genuine sign-in page it
// leads to, and once the victim has signed in fetch the callback themselves: the victim's
// code, redeemed in the attacker's client session, signs the attacker in as the victim.
// So Complete's answer carries a key, k, that only the browser it is given to has: a short
// JWS by the ring's current key naming the tenant's callback and the request. Signed rather
// than stored, so any node verifies it (no schema change), and unforgeable without the
// ring's private key.

// callbackTyp is the key's typ header: no relying party takes it for an ID or logout token.
const callbackTyp = "tutela-callback+jwt"

type callbackClaims struct {
	Iss string `json:"iss"`
	Aud string `json:"aud"`
	Sub string `json:"sub"` // the authorization request's ID
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// callbackURL is the callback of request id with its key.
func (p *Provider) callbackURL(slug, id string) (string, error) {
	iss := p.Issuer(slug)
	now := p.d.Clock()
	algs := p.d.Tokens.Algs()
	if len(algs) == 0 {
		return "", errors.New("oidc: the key ring has no algorithm")
	}
	k, err := p.d.Tokens.SignJWT(algs[0], callbackTyp, callbackClaims{Iss: iss, Aud: iss + callbackPath, Sub: id,
		Iat: now.Unix(), Exp: now.Add(sqlstore.OIDCAuthRequestTTL).Unix()})
	if err != nil {
		return "", err
	}
	return iss + callbackPath + "?id=" + url.QueryEscape(id) + "&k=" + url.QueryEscape(k), nil
}

const callbackPath = "/authorize/callback"

// validCallbackKey reports whether k is the key Complete gave for request id of this tenant.
func (t *tenantOP) validCallbackKey(k, id string) bool {
	if k == "" || len(k) > 4<<10 {
		return false
	}
	ring := t.p.d.Tokens
	var algs []jose.SignatureAlgorithm
	for _, a := range ring.Algs() {
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	jws, err := jose.ParseSignedCompact(k, algs)
	if err != nil || len(jws.Signatures) != 1 {
		return false
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != callbackTyp {
		return false
	}
	var payload []byte
	for _, key := range ring.PublicKeys() {
		if key.KeyID == h.KeyID && key.Algorithm == h.Algorithm {
			payload, err = jws.Verify(key.Key)
			break
		}
	}
	if err != nil || payload == nil {
		return false
	}
	var c callbackClaims
	if json.Unmarshal(payload, &c) != nil {
		return false
	}
	return c.Iss == t.issuer && c.Aud == t.issuer+callbackPath && c.Sub == id && t.p.d.Clock().Before(time.Unix(c.Exp, 0))
}
