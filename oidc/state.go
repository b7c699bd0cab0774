package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"tutela"
	"tutela/sqlstore"
)

var b64 = base64.RawURLEncoding

// reqState is what one request to the provider learns on the way, for the storage methods the
// op library calls without it: the tenant, the client once it is known, and the DPoP key the
// request proved.
type reqState struct {
	tenantID string
	clientID string
	// jkt is the thumbprint of the key of the request's verified DPoP proof ("" without one).
	jkt string
	// pushed: the authorization request came from a pushed request (RFC 9126).
	pushed bool
	// authJKT binds an authorization request's code to a DPoP key (dpop_jkt, RFC 9449 §10).
	authJKT string
	// revokeSession is the client session of the refresh token being revoked.
	revokeSession string
	// clients are the clients this request read, by client_id.
	clients map[string]*sqlstore.OIDCClient
	// account is the service account the request authenticated (client credentials grant),
	// resources the resource parameters it sent (RFC 8707).
	account   *sqlstore.ServiceAccount
	resources []string
	// authenticatesClient: the request is to an endpoint where clients authenticate (token,
	// introspection, revocation, PAR), so reading a client_secret_basic client also reads its
	// secrets' digests (secrets), in the same transaction.
	authenticatesClient bool
	secrets             map[string][][]byte
	// user is the user a code exchange just started a client session for, as that session's
	// transaction read it: the ID token's claims come from it instead of a second read.
	user *tutela.User
}

type stateKey struct{}

func withState(ctx context.Context, s *reqState) context.Context {
	return context.WithValue(ctx, stateKey{}, s)
}

// state returns the request's state; outside a provider request, an empty one.
func state(ctx context.Context) *reqState {
	if s, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return s
	}
	return &reqState{}
}

// tokenCrypto is the op library's access-token "crypto". The provider's access tokens are
// Tutela's own signed at+jwt (identity/token), made in storage.CreateAccessToken, which hands
// the library the token itself as its ID; the library then asks to "encrypt" "<id>:<subject>"
// into the token it returns, and to "decrypt" a presented token back. Encrypt gives the token
// back and refuses anything that is not one, so the library can never turn another value
// (an authorization code, say) into a credential this way; Decrypt only splits: every use of
// the result verifies the token (signature, expiry, session) before trusting it.
type tokenCrypto struct{}

func (tokenCrypto) Encrypt(s string) (string, error) {
	tok, _, ok := strings.Cut(s, ":")
	if !ok || strings.Count(tok, ".") != 2 {
		return "", errors.New("oidc: only access tokens are issued through the library")
	}
	return tok, nil
}

func (tokenCrypto) Decrypt(s string) (string, error) {
	if strings.Count(s, ".") != 2 || strings.Contains(s, ":") || len(s) > 8<<10 {
		return "", errors.New("oidc: not an access token")
	}
	sub, err := unverifiedSubject(s)
	if err != nil {
		return "", err
	}
	return s + ":" + sub, nil
}

// unverifiedSubject reads the sub claim of a JWT without verifying it: the library needs a
// subject to pass along; the token is verified wherever it is used.
func unverifiedSubject(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("oidc: malformed token")
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Sub == "" || strings.Contains(c.Sub, ":") {
		return "", errors.New("oidc: malformed token")
	}
	return c.Sub, nil
}

// writeOAuthError answers with an OAuth error object (RFC 6749 §5.2).
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
