//go:build cgo

package vault

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"

	"tutela"
)

// pkcs11IVSize and pkcs11TagBits: AES-GCM with a 96-bit random IV and a 128-bit tag (NIST SP
// 800-38D). KEK calls are rare (one per keyset load or rotation), far below 2^32 per key.
const (
	pkcs11IVSize  = 12
	pkcs11TagBits = 128
)

// PKCS11KEK is a KEK held in an HSM: an AES key, found by label on the token, that the HSM
// marks non-extractable. Encrypt and Decrypt call C_Encrypt/C_Decrypt with CKM_AES_GCM; the
// key never leaves the device. Ciphertext layout: IV (12 bytes) || ciphertext || tag.
type PKCS11KEK struct {
	mu      sync.Mutex // one session, used by one operation at a time
	ctx     *pkcs11.Ctx
	session pkcs11.SessionHandle
	key     pkcs11.ObjectHandle
	uri     string
}

// OpenPKCS11KEK loads the module, logs in to the token labelled token with pin and finds the
// secret key labelled object. Errors name the token and label, never the PIN.
func OpenPKCS11KEK(module, token, object string, pin tutela.Secret) (*PKCS11KEK, error) {
	p := pkcs11.New(module)
	if p == nil {
		return nil, fmt.Errorf("vault: cannot load PKCS#11 module %s", module)
	}
	fail := func(err error) (*PKCS11KEK, error) {
		_ = p.Finalize()
		p.Destroy()
		return nil, err
	}
	if err := p.Initialize(); err != nil {
		return fail(fmt.Errorf("vault: PKCS#11 initialize: %w", err))
	}
	slot, err := findTokenSlot(p, token)
	if err != nil {
		return fail(err)
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fail(fmt.Errorf("vault: PKCS#11 open session: %w", err))
	}
	if err := p.Login(sh, pkcs11.CKU_USER, pin.Reveal()); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		_ = p.CloseSession(sh)
		return fail(fmt.Errorf("vault: PKCS#11 login to token %q failed (check TUTELA_HSM_PIN): %w", token, err))
	}
	key, err := findKey(p, sh, object)
	if err != nil {
		_ = p.CloseSession(sh)
		return fail(err)
	}
	return &PKCS11KEK{ctx: p, session: sh, key: key,
		uri: "pkcs11:token=" + pkcs11Escape(token) + ";object=" + pkcs11Escape(object)}, nil
}

func findTokenSlot(p *pkcs11.Ctx, token string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("vault: PKCS#11 slots: %w", err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && ti.Label == token {
			return s, nil
		}
	}
	return 0, fmt.Errorf("vault: no PKCS#11 token labelled %q", token)
}

func findKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if err := p.FindObjectsInit(sh, tmpl); err != nil {
		return 0, fmt.Errorf("vault: PKCS#11 find key: %w", err)
	}
	objs, _, err := p.FindObjects(sh, 2)
	// A search left open would make the session's next FindObjectsInit fail (PKCS#11 §5.14).
	if ferr := p.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	if err != nil {
		return 0, fmt.Errorf("vault: PKCS#11 find key: %w", err)
	}
	switch len(objs) {
	case 0:
		return 0, fmt.Errorf("vault: no AES key labelled %q on the token", label)
	case 1:
		return objs[0], nil
	default:
		return 0, fmt.Errorf("vault: more than one AES key labelled %q on the token", label)
	}
}

// GeneratePKCS11Key creates a 256-bit AES key labelled label on the token: sensitive,
// non-extractable, usable only to encrypt and decrypt. `tutela keys hsm-generate` and the tests
// use it; an HSM's own tools work as well.
func GeneratePKCS11Key(module, token, label string, pin tutela.Secret) error {
	k, err := OpenPKCS11KEK(module, token, label, pin)
	if err == nil {
		_ = k.Close()
		return fmt.Errorf("vault: the token already holds a key labelled %q", label)
	}
	p := pkcs11.New(module)
	if p == nil {
		return fmt.Errorf("vault: cannot load PKCS#11 module %s", module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		return fmt.Errorf("vault: PKCS#11 initialize: %w", err)
	}
	defer p.Finalize()
	slot, err := findTokenSlot(p, token)
	if err != nil {
		return err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("vault: PKCS#11 open session: %w", err)
	}
	defer p.CloseSession(sh)
	if err := p.Login(sh, pkcs11.CKU_USER, pin.Reveal()); err != nil {
		return fmt.Errorf("vault: PKCS#11 login to token %q failed: %w", token, err)
	}
	defer p.Logout(sh)
	_, err = p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		[]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		})
	if err != nil {
		return fmt.Errorf("vault: PKCS#11 generate key: %w", err)
	}
	return nil
}

// Encrypt seals plaintext under the HSM key, bound to aad.
func (k *PKCS11KEK) Encrypt(plaintext, aad []byte) ([]byte, error) {
	iv := make([]byte, pkcs11IVSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	params := pkcs11.NewGCMParams(iv, aad, pkcs11TagBits)
	defer params.Free()
	if err := k.ctx.EncryptInit(k.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, k.key); err != nil {
		return nil, fmt.Errorf("vault: HSM encrypt: %w", err)
	}
	ct, err := k.ctx.Encrypt(k.session, plaintext)
	if err != nil {
		return nil, fmt.Errorf("vault: HSM encrypt: %w", err)
	}
	return append(iv, ct...), nil
}

// Decrypt opens a value Encrypt produced with the same aad.
func (k *PKCS11KEK) Decrypt(ciphertext, aad []byte) ([]byte, error) {
	if len(ciphertext) < pkcs11IVSize+pkcs11TagBits/8 {
		return nil, errors.New("vault: HSM decrypt: ciphertext too short")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	params := pkcs11.NewGCMParams(ciphertext[:pkcs11IVSize], aad, pkcs11TagBits)
	defer params.Free()
	if err := k.ctx.DecryptInit(k.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, k.key); err != nil {
		return nil, fmt.Errorf("vault: HSM decrypt: %w", err)
	}
	pt, err := k.ctx.Decrypt(k.session, ciphertext[pkcs11IVSize:])
	if err != nil {
		return nil, fmt.Errorf("vault: HSM decrypt: %w", err)
	}
	return pt, nil
}

// URI names the token and key label.
func (k *PKCS11KEK) URI() string { return k.uri }

// Close logs out and unloads the module.
func (k *PKCS11KEK) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx == nil {
		return nil
	}
	// C_Finalize below ends every session of the module whatever these two report, so only its
	// error is returned.
	_ = k.ctx.Logout(k.session)
	_ = k.ctx.CloseSession(k.session)
	err := k.ctx.Finalize()
	k.ctx.Destroy()
	k.ctx = nil
	return err
}

func (k *PKCS11KEK) String() string { return "vault.PKCS11KEK(" + k.uri + ")" }
