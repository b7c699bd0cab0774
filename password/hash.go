package password

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"tutela"
)

// ErrBusy is returned by Hash, Verify and DummyVerify when every hashing slot stayed taken for
// the Hasher's wait. Argon2id deliberately costs memory and CPU, so unbounded concurrent
// sign-ins would let a burst of requests exhaust the host; the HTTP layer answers 503 with
// Retry-After instead.
var ErrBusy = &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "too many sign-ins in progress, retry shortly"}

// Bounds on Argon2 parameters, for configuration and for stored hashes alike. The upper bounds
// stop a misconfiguration or a corrupt stored hash from asking for gigabytes per call.
const (
	maxMemoryKiB = 4 << 20 // 4 GiB
	maxTime      = 64
	minKeyLen    = 16 // shorter tags are weakened hashes; RFC 9106 recommends 32 bytes
	maxKeyLen    = 1024
	minSaltLen   = 8 // RFC 9106 §3.1: at least 8 bytes; we generate 16 (Params.Validate)
	maxSaltLen   = 1024
	minNewSalt   = 16 // RFC 9106 §3.1 recommends 128 bits for password hashing

	// maxPasswordBytes bounds the input before normalisation. NFKC can expand a string up to
	// 18 times; the policy's own maximum (1024 code points) fits in 4096 bytes.
	maxPasswordBytes = 4096
)

// Params are Argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
	KeyLen  uint32 // bytes of output
	SaltLen uint32 // bytes of random salt
}

// DefaultParams returns OWASP's Password Storage Cheat Sheet recommendation for Argon2id:
// m=19 MiB, t=2, p=1, with a 32-byte tag and a 16-byte salt.
func DefaultParams() Params {
	return Params{Memory: 19456, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}
}

// Validate reports every problem with p at once.
func (p Params) Validate() error {
	var problems []string
	if p.Threads < 1 {
		problems = append(problems, "threads must be at least 1")
	}
	if p.Memory < 8*uint32(p.Threads) || p.Memory < 8 {
		problems = append(problems, "memory must be at least 8 KiB per thread")
	}
	if p.Memory > maxMemoryKiB {
		problems = append(problems, fmt.Sprintf("memory must be at most %d KiB", maxMemoryKiB))
	}
	if p.Time < 1 || p.Time > maxTime {
		problems = append(problems, fmt.Sprintf("time must be between 1 and %d", maxTime))
	}
	if p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen {
		problems = append(problems, fmt.Sprintf("key length must be between %d and %d bytes", minKeyLen, maxKeyLen))
	}
	if p.SaltLen < minNewSalt || p.SaltLen > maxSaltLen {
		problems = append(problems, fmt.Sprintf("salt length must be between %d and %d bytes", minNewSalt, maxSaltLen))
	}
	if len(problems) > 0 {
		return tutela.Errorf(tutela.EINVALID, "invalid argon2id parameters: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Pepper is a keyed pseudorandom function whose key is kept out of the database (Tutela's is a
// vault PRF keyset wrapped by the key-encryption key). A peppered Hasher applies it to the
// password before Argon2id, so a copy of the stored hashes alone is useless for offline
// guessing: each guess needs the key (ASVS 4.0.3 2.4.5, NIST SP 800-63B §5.1.1.2 "secret salt").
// Keys have IDs so the pepper can rotate: every hash records the key it was made with.
type Pepper interface {
	// PrimaryKeyID is the key new hashes use.
	PrimaryKeyID(ctx context.Context) (uint32, error)
	// Pepper returns the PRF of pw under key keyID (at least 32 bytes). A key the pepper does
	// not hold (retired, or an ID tampered with) is an error wrapping ErrUnknownPepperKey; any
	// other error means the pepper cannot answer for now (a KMS outage).
	Pepper(ctx context.Context, keyID uint32, pw []byte) ([]byte, error)
}

var (
	// ErrPepperUnavailable is wrapped by every error of Hash, Verify and DummyVerify that comes
	// from the pepper. With no Pepper, or a key the Pepper does not hold, the hash does not
	// verify (fail closed; a key the Pepper does not hold is a *tutela.Error with code
	// EINTERNAL); when the Pepper cannot answer for now the error is a *tutela.Error with code
	// EUNAVAILABLE, so sign-in answers 503. Either way the attempt is no wrong guess and sign-in
	// does not count it: a lost key or a KMS outage must not lock every user out.
	ErrPepperUnavailable = errors.New("password: pepper unavailable")
	// ErrUnknownPepperKey is what a Pepper wraps for a key ID it does not hold.
	ErrUnknownPepperKey = errors.New("password: no such pepper key")
)

// pepperError classifies an error from the Pepper. A key the Pepper does not hold (a lost or
// retired pepper keyset, a tampered key ID) is an internal error: the password cannot be checked
// at all, which is not a wrong guess and must not count towards a lockout (the caller tells it
// from a wrong password by ErrPepperUnavailable), and retrying does not help until an operator
// restores the key.
func pepperError(err error) error {
	if errors.Is(err, ErrUnknownPepperKey) {
		return &tutela.Error{Code: tutela.EINTERNAL, Message: "password check unavailable",
			Err: fmt.Errorf("%w: %w", ErrPepperUnavailable, err)}
	}
	return &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "password check unavailable, retry shortly",
		Err: fmt.Errorf("%w: %w", ErrPepperUnavailable, err)}
}

// Hasher hashes new passwords with Argon2id and verifies stored hashes of any supported
// format. It bounds how many hashes run at once; it is safe for concurrent use.
type Hasher struct {
	params Params
	pepper Pepper // nil: new hashes are not peppered and peppered hashes do not verify
	sem    chan struct{}
	wait   time.Duration
	dummy  string // argon2id hash of a random password, for DummyVerify
	// computed counts finished argon2id computations (Computed).
	computed atomic.Int64
	// boost, when set (BoostGC), raises the GC percent while hashes are in flight.
	boost *gcBoost
}

// NewHasher returns a Hasher using p for new hashes. At most maxConcurrent hashes run at once
// (runtime.GOMAXPROCS(0) when maxConcurrent <= 0: a hash keeps a CPU busy, so more at once
// than the Go scheduler runs only adds their memory to the live heap and garbage-collector
// work, and callers queue instead); a call waits up to wait for a slot and then fails with
// ErrBusy (wait <= 0: fail at once when all slots are taken).
func NewHasher(p Params, maxConcurrent int, wait time.Duration) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxConcurrent <= 0 {
		// Not NumCPU: in a container limited to 2 CPUs on a 32-CPU host, GOMAXPROCS follows
		// the limit (Go 1.25+) and NumCPU does not.
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, sem: make(chan struct{}, maxConcurrent), wait: max(wait, 0)}
	h.dummy = dummyHash(p)
	return h, nil
}

// NewPepperedHasher is NewHasher with a pepper: new hashes are Argon2id over
// pp.Pepper(primary key, NFKC(password)) and record the key's ID; Verify reports hashes without
// pepper, or under a key other than the primary, as needing a rehash, so existing hashes move to
// the pepper at each user's next sign-in.
func NewPepperedHasher(p Params, pp Pepper, maxConcurrent int, wait time.Duration) (*Hasher, error) {
	if pp == nil {
		return nil, errors.New("password: NewPepperedHasher needs a Pepper")
	}
	h, err := NewHasher(p, maxConcurrent, wait)
	if err != nil {
		return nil, err
	}
	h.pepper = pp
	return h, nil
}

// Peppered reports whether new hashes go through a pepper.
func (h *Hasher) Peppered() bool { return h.pepper != nil }

// peppered returns the input Argon2id hashes for a normalised password: the password itself, or
// its pepper under keyID. Pepper errors never carry the password.
func (h *Hasher) peppered(ctx context.Context, keyID uint32, normalised string) ([]byte, error) {
	if h.pepper == nil {
		return nil, ErrPepperUnavailable
	}
	out, err := h.pepper.Pepper(ctx, keyID, []byte(normalised))
	if err != nil {
		return nil, pepperError(err)
	}
	return out, nil
}

// primaryInput returns the input for a new hash (or the dummy): the pepper under the primary key
// when the Hasher has one, and the PHC parameter naming that key.
func (h *Hasher) primaryInput(ctx context.Context, normalised string) (in []byte, param string, err error) {
	if h.pepper == nil {
		return []byte(normalised), "", nil
	}
	id, err := h.pepper.PrimaryKeyID(ctx)
	if err != nil {
		return nil, "", pepperError(err)
	}
	if in, err = h.peppered(ctx, id, normalised); err != nil {
		return nil, "", err
	}
	return in, fmt.Sprintf(",pepper=%d", id), nil
}

// Params returns the parameters used for new hashes.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of the Argon2id hash of pw, after NFKC normalisation:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64, as the PHC string format specifies. A peppered
// Hasher hashes the pepper of the password instead and names the pepper key:
//
//	$argon2id$v=19$m=19456,t=2,p=1,pepper=<key ID>$<salt>$<hash>
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if len(pw) > maxPasswordBytes {
		return "", tutela.FieldErrorf("password", "password is too long")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// The pepper runs before a hashing slot is taken: a vault cache miss (a KMS round trip)
	// must not hold a slot.
	in, param, err := h.primaryInput(ctx, norm.NFKC.String(pw))
	if err != nil {
		return "", err
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	defer h.computed.Add(1)
	return h.encode(in, param), nil
}

func (h *Hasher) encode(in []byte, pepperParam string) string {
	p := h.params
	salt := make([]byte, p.SaltLen)
	rand.Read(salt) // never fails (crypto/rand, Go 1.24+)
	return formatArgon2id(p, pepperParam, salt, argon2.IDKey(in, salt, p.Time, p.Memory, p.Threads, p.KeyLen))
}

func formatArgon2id(p Params, pepperParam string, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d%s$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, pepperParam,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// dummyHash is what DummyVerify verifies against: an argon2id hash with p's parameters whose
// salt and key are random bytes. No password verifies against it (that would take argon2id
// output equal to KeyLen random bytes), and verifying costs exactly what verifying a real hash
// with p costs: the same argon2id computation, then the comparison. Unlike hashing a random
// password, it costs nothing to make: before issue 20, building a Hasher computed one
// Argon2id hash, ~25 ms of CPU and 19 MiB of garbage at every tutela serve start.
func dummyHash(p Params) string {
	salt, key := make([]byte, p.SaltLen), make([]byte, p.KeyLen)
	rand.Read(salt)
	rand.Read(key)
	return formatArgon2id(p, "", salt, key)
}

// Verify reports whether pw matches encoded, and whether encoded should be replaced with a
// fresh Hash(pw) (needsRehash, only ever true when ok): any format other than argon2id, or
// argon2id with parameters other than the Hasher's.
//
// Supported formats: PHC argon2id and argon2i (version 19), Django's argon2 ("argon2$argon2id$…"),
// bcrypt ($2a$, $2b$, $2y$) and Django's pbkdf2_sha256 and pbkdf2_sha1. Argon2d is not
// supported because golang.org/x/crypto/argon2 does not implement it; such hashes fail with
// ErrUnsupportedHash.
//
// pw is NFKC-normalised first, as Hash does. Hashes imported from other systems (every format
// except PHC argon2id, which only Hash produces) were made from the password as typed, so if the
// normalised form does not match, the raw form is tried too.
//
// A peppered hash verifies only through the Hasher's Pepper under the key the hash names: without
// it, or with a key ID the Pepper does not hold, Verify fails with ErrPepperUnavailable. A
// verified hash without pepper, or under a key other than the primary, needs a rehash when the
// Hasher has a Pepper.
//
// A wrong password is (false, false, nil). A malformed or unsupported encoded hash is an error
// wrapping ErrMalformedHash or ErrUnsupportedHash; it never panics.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (ok, needsRehash bool, err error) {
	return h.verify(ctx, nil, pw, encoded)
}

// verify is Verify, in slot when it is not nil (held by the caller) and else in a slot of its
// own.
func (h *Hasher) verify(ctx context.Context, slot *Slot, pw, encoded string) (ok, needsRehash bool, err error) {
	if err := slot.usable(h); err != nil {
		return false, false, err
	}
	ph, err := parseHash(encoded)
	if err != nil {
		return false, false, err
	}
	if len(pw) > maxPasswordBytes {
		// Hash never accepted such a password, so nothing stored can match it.
		return false, false, nil
	}
	if err := ctx.Err(); err != nil {
		return false, false, err
	}
	normalised := norm.NFKC.String(pw)
	in := normalised
	if ph.peppered {
		p, err := h.peppered(ctx, ph.pepperID, normalised)
		if err != nil {
			return false, false, err
		}
		in = string(p)
	}
	if slot == nil {
		if err := h.acquire(ctx); err != nil {
			return false, false, err
		}
		defer h.release()
	}

	defer h.computed.Add(1)
	ok, err = ph.matches(in)
	if err == nil && !ok && ph.imported && normalised != pw {
		ok, err = ph.matches(pw)
	}
	if err != nil || !ok {
		return false, false, err
	}
	return true, h.stale(ph) || h.pepperStale(ctx, ph), nil
}

// Outdated reports whether a stored hash is not in the form Hash makes now (other algorithm or
// parameters, no pepper, an older pepper key), without verifying anything: a caller holding the
// verified password can then store a fresh Hash of it. An unparseable hash is outdated.
func (h *Hasher) Outdated(ctx context.Context, encoded string) bool {
	ph, err := parseHash(encoded)
	return err != nil || h.stale(ph) || h.pepperStale(ctx, ph)
}

// pepperStale reports whether a verified hash should move to the pepper's primary key: it has no
// pepper, or an older key's. If the primary cannot be read now, the hash stays as it is until a
// later sign-in.
func (h *Hasher) pepperStale(ctx context.Context, ph *parsedHash) bool {
	if h.pepper == nil {
		return false
	}
	if !ph.peppered {
		return true
	}
	id, err := h.pepper.PrimaryKeyID(ctx)
	return err == nil && id != ph.pepperID
}

// DummyVerify does the work of verifying pw against an argon2id hash with the current
// parameters (and the pepper's primary key) and discards the result. Call it when the account
// does not exist, so that the response time does not tell an attacker which accounts exist
// (OWASP Authentication Cheat Sheet). It takes a slot like Verify and can fail with ErrBusy.
func (h *Hasher) DummyVerify(ctx context.Context, pw string) error {
	return h.dummyVerify(ctx, nil, pw)
}

// dummyVerify is DummyVerify, in slot when it is not nil (held by the caller) and else in a
// slot of its own.
func (h *Hasher) dummyVerify(ctx context.Context, slot *Slot, pw string) error {
	if err := slot.usable(h); err != nil {
		return err
	}
	ph, err := parseHash(h.dummy)
	if err != nil {
		return err
	}
	if len(pw) > maxPasswordBytes {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	in, _, err := h.primaryInput(ctx, norm.NFKC.String(pw))
	if err != nil {
		return err
	}
	if slot == nil {
		if err := h.acquire(ctx); err != nil {
			return err
		}
		defer h.release()
	}
	defer h.computed.Add(1)
	_, err = ph.matches(string(in))
	return err
}

// stale reports whether a verified hash should be replaced by one with the current parameters.
func (h *Hasher) stale(ph *parsedHash) bool {
	p := h.params
	return ph.alg != algArgon2id || ph.imported ||
		ph.memory != p.Memory || ph.time != p.Time || ph.threads != p.Threads ||
		len(ph.salt) != int(p.SaltLen) || len(ph.key) != int(p.KeyLen)
}

// acquire takes a hashing slot, waiting up to h.wait. A context that is already done fails at
// once with its own error: nobody is waiting for the answer, so no hash is computed. A context
// that ends while waiting fails with ErrBusy like the timer does, since both mean no slot came
// free in time.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		h.started()
		return nil
	default:
	}
	if h.wait <= 0 {
		return ErrBusy
	}
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.sem <- struct{}{}:
		h.started()
		return nil
	case <-timer.C:
		return ErrBusy
	case <-ctx.Done():
		return ErrBusy
	}
}

// started follows a taken slot.
func (h *Hasher) started() {
	if h.boost != nil {
		h.boost.start()
	}
}

// release frees a slot taken by acquire.
func (h *Hasher) release() {
	if h.boost != nil {
		h.boost.end()
	}
	<-h.sem
}

// Computed is how many argon2id computations this Hasher has run (hashes, verifications and
// dummy verifications). Sign-in tests use it to show that a failure costs the same work whether
// or not the account exists, without timing anything.
func (h *Hasher) Computed() int64 { return h.computed.Load() }

// b64 is the PHC string format's base64: standard alphabet, no padding. Strict decoding rejects
// non-zero trailing bits, so every hash has exactly one accepted encoding and a tampered last
// character cannot decode to the same bytes.
var b64 = base64.RawStdEncoding.Strict()
