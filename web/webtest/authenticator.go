package webtest

import (
	"context"
	"fmt"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// AddPasskeyAuthenticator attaches a DevTools virtual authenticator to the tab of ctx: a
// platform passkey (CTAP2, internal transport) that stores discoverable credentials, verifies
// the user and answers presence checks on its own, so navigator.credentials.create/get complete
// without a person. It stands in for Touch ID or Windows Hello in the passkey journeys.
func AddPasskeyAuthenticator(ctx context.Context) (webauthn.AuthenticatorID, error) {
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{EnableUI: new(false)}); err != nil {
		return "", fmt.Errorf("webauthn enable: %w", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		return "", fmt.Errorf("webauthn add virtual authenticator: %w", err)
	}
	return res.AuthenticatorID, nil
}

// Credentials lists the credentials the virtual authenticator holds (private keys included:
// test use only).
func Credentials(ctx context.Context, id webauthn.AuthenticatorID) ([]*webauthn.Credential, error) {
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		return nil, fmt.Errorf("webauthn credentials: %w", err)
	}
	return res.Credentials, nil
}
