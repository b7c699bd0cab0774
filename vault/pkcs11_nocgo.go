//go:build !cgo

package vault

import (
	"errors"

	"tutela"
)

var errNoCgo = errors.New("vault: PKCS#11 needs a cgo build (CGO_ENABLED=1)")

// PKCS11KEK is unavailable without cgo.
type PKCS11KEK struct{ LocalKEK }

// OpenPKCS11KEK fails without cgo.
func OpenPKCS11KEK(module, token, object string, pin tutela.Secret) (*PKCS11KEK, error) {
	return nil, errNoCgo
}

// GeneratePKCS11Key fails without cgo.
func GeneratePKCS11Key(module, token, label string, pin tutela.Secret) error { return errNoCgo }

func (*PKCS11KEK) Close() error { return nil }
