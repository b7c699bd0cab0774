package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tutela"
	"tutela/vault"
)

// Ring holds the signing keys of every configured algorithm, issues access tokens with the
// current key of the primary one and verifies them against all published ones. It is safe for
// concurrent use. Several nodes may share one KeyStore: each calls Rotate and Refresh on a
// schedule (every minute is plenty; the interval must be well below PrePublish) and they
// converge on the same signing key per algorithm.
type Ring struct {
	cfg    Config
	store  KeyStore
	sealer vault.Sealer

	mu   sync.Mutex // serialises Refresh and Rotate
	snap atomic.Pointer[snapshot]

	lazyMu   sync.Mutex
	lastLazy time.Time // last store reload caused by an unknown kid
}

// snapshot is an immutable view of the keys; Verify and Issue read it without locks.
type snapshot struct {
	keys     []*key // in succession order (ActivateAt, ID)
	byID     map[string]*key
	byHeader map[string]*key // encoded protected header → key: the fast path of Verify
}

// NewRing loads the keys from store and, when none can sign, creates one (Rotate). It fails
// without writing anything when a key cannot be unsealed, e.g. under the wrong master key.
func NewRing(ctx context.Context, cfg Config, store KeyStore, sealer vault.Sealer) (*Ring, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil || sealer == nil {
		return nil, errors.New("token: NewRing needs a key store and a sealer")
	}
	r := &Ring{cfg: cfg, store: store, sealer: sealer}
	r.snap.Store(&snapshot{byID: map[string]*key{}, byHeader: map[string]*key{}})
	if err := r.Rotate(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Refresh reloads the keys from the store, picking up keys other nodes created.
func (r *Ring) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refreshLocked(ctx)
}

// Rotate makes sure, for each configured algorithm, that a key can sign now and that its
// successor is published PrePublish before it takes over, RotateEvery after the current key
// activated. Each algorithm has its own schedule; a key's successor is the next key of the same
// algorithm. It is idempotent; when two nodes add a successor at once, both keys are published
// and the succession order (ActivateAt, then ID) decides which signs, identically on every node.
func (r *Ring) Rotate(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refreshLocked(ctx); err != nil {
		return err
	}
	now := r.cfg.Clock()
	s := r.snap.Load()
	added := false
	var err error
	for _, alg := range r.cfg.Algs {
		activate, due := r.successorDue(s, alg, now)
		if !due {
			continue
		}
		var k StoredKey
		if k, err = newStoredKey(alg, r.sealer, now, activate, r.cfg.RotateEvery); err != nil {
			break
		}
		if err = r.store.AddSigningKey(ctx, k); err != nil {
			err = fmt.Errorf("token: store %s signing key: %w", alg, err)
			break
		}
		added = true
	}
	if !added {
		return err
	}
	// Load what was added even when a later algorithm failed: the keys are stored.
	return errors.Join(err, r.refreshLocked(ctx))
}

// successorDue reports whether alg needs a new key now, and when that key activates.
func (r *Ring) successorDue(s *snapshot, alg Alg, now time.Time) (activate time.Time, due bool) {
	cur := s.signingKey(alg, now)
	switch {
	case cur == nil:
		// Nothing can sign (first start, an algorithm just configured, or rotation stalled past
		// RetireAt): waiting for a pre-publication period would be an outage. Verifiers load
		// the unknown kid lazily.
		return now, true
	case s.hasPending(alg, now):
		return time.Time{}, false
	case !now.Before(cur.stored.ActivateAt.Add(r.cfg.RotateEvery - r.cfg.PrePublish)):
		return now.Add(r.cfg.PrePublish), true
	}
	return time.Time{}, false
}

func (r *Ring) refreshLocked(ctx context.Context) error {
	stored, err := r.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: load signing keys: %w", err)
	}
	s, err := r.build(stored, r.cfg.Clock())
	if err != nil {
		return err
	}
	r.snap.Store(s)
	return nil
}

// build parses stored keys into a snapshot, reusing keys already parsed and unsealed. It
// unseals every key that may still sign, so a wrong master key fails here, loudly.
func (r *Ring) build(stored []StoredKey, now time.Time) (*snapshot, error) {
	prev := r.snap.Load()
	slices.SortFunc(stored, byActivation)
	s := &snapshot{
		keys:     make([]*key, 0, len(stored)),
		byID:     make(map[string]*key, len(stored)),
		byHeader: make(map[string]*key, len(stored)),
	}
	// successor[i] is the index of the next key of stored[i]'s algorithm, or -1.
	successor := make([]int, len(stored))
	nextOfAlg := map[Alg]int{}
	for i := len(stored) - 1; i >= 0; i-- {
		successor[i] = -1
		if j, ok := nextOfAlg[stored[i].Alg]; ok {
			successor[i] = j
		}
		nextOfAlg[stored[i].Alg] = i
	}
	for i, sk := range stored {
		if _, dup := s.byID[sk.ID]; dup {
			return nil, fmt.Errorf("token: signing key %.64q stored twice", sk.ID)
		}
		var k *key
		if p := prev.byID[sk.ID]; p != nil && sameStored(p.stored, sk) {
			c := *p
			k = &c
		} else {
			var err error
			if k, err = parsePublic(sk); err != nil {
				return nil, fmt.Errorf("token: signing key %.64q: %w", sk.ID, err)
			}
		}
		k.retire = sk.RetireAt
		if j := successor[i]; j >= 0 && stored[j].ActivateAt.Before(k.retire) {
			k.retire = stored[j].ActivateAt
		}
		// A token signed at the last instant of the signing period lives TTL longer; Leeway
		// covers verifiers whose clocks run behind.
		k.publish = k.retire.Add(r.cfg.TTL + r.cfg.Leeway)
		if now.Before(k.retire) && k.priv == nil {
			if err := k.unsealPrivate(r.sealer); err != nil {
				return nil, fmt.Errorf("token: signing key %s: %w", sk.ID, err)
			}
		}
		s.keys = append(s.keys, k)
		s.byID[k.id] = k
		if k.header != "" {
			s.byHeader[k.header] = k
		}
	}
	return s, nil
}

// signingKey is the newest key of alg in its signing period at now.
func (s *snapshot) signingKey(alg Alg, now time.Time) *key {
	for _, k := range slices.Backward(s.keys) {
		if k.alg == alg && k.priv != nil && !now.Before(k.stored.ActivateAt) && now.Before(k.retire) {
			return k
		}
	}
	return nil
}

// hasPending reports whether a key of alg is published and not yet signing.
func (s *snapshot) hasPending(alg Alg, now time.Time) bool {
	for _, k := range s.keys {
		if k.alg == alg && now.Before(k.stored.ActivateAt) {
			return true
		}
	}
	return false
}

// JWKS returns the JWK Set (RFC 7517 §5) to serve at /.well-known/jwks.json: every key of
// every algorithm that is pre-published, signing, or retired less than TTL+Leeway ago, newest
// first, each with kid, alg and use "sig". It holds public members only; each JWK is re-encoded
// from the parsed public key.
func (r *Ring) JWKS() ([]byte, error) {
	s := r.snap.Load()
	now := r.cfg.Clock()
	var b bytes.Buffer
	b.WriteString(`{"keys":[`)
	first := true
	for _, k := range slices.Backward(s.keys) {
		if !now.Before(k.publish) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(k.jwk)
	}
	b.WriteString(`]}`)
	return b.Bytes(), nil
}

// CanSign reports whether a key of the primary algorithm may sign access tokens now (without
// touching the store).
func (r *Ring) CanSign() bool {
	s := r.snap.Load()
	return s != nil && s.signingKey(r.cfg.Alg, r.cfg.Clock()) != nil
}

// ErrNoSigningKey means no key may sign now: Rotate has not run (recently enough).
var ErrNoSigningKey = errors.New("token: issue: no signing key is active; Rotate was not called")

// Issue signs an access token for c with the current key of the primary algorithm (Config.Alg).
// It sets iss, iat, nbf (= iat), jti and exp (now+TTL, or c.Expiry if that is earlier); c must
// leave those zero, except Expiry.
func (r *Ring) Issue(ctx context.Context, c Claims) (token string, exp time.Time, err error) {
	if c.Subject == "" {
		return "", time.Time{}, errors.New("token: issue: subject is required")
	}
	if len(c.Audience) == 0 {
		return "", time.Time{}, errors.New("token: issue: audience is required")
	}
	for _, a := range c.Audience {
		if !slices.Contains(r.cfg.Audience, a) {
			return "", time.Time{}, fmt.Errorf("token: issue: audience %q is not configured", a)
		}
	}
	if c.Issuer != "" || !c.IssuedAt.IsZero() || !c.NotBefore.IsZero() || c.ID != "" {
		return "", time.Time{}, errors.New("token: issue: iss, iat, nbf and jti are set by the ring")
	}
	now := r.cfg.Clock()
	k := r.snap.Load().signingKey(r.cfg.Alg, now)
	if k == nil {
		return "", time.Time{}, ErrNoSigningKey
	}
	iat := now.Truncate(time.Second)
	exp = iat.Add(r.cfg.TTL)
	if !c.Expiry.IsZero() && c.Expiry.Before(exp) {
		exp = c.Expiry.Truncate(time.Second)
	}
	if !exp.After(iat) {
		return "", time.Time{}, errors.New("token: issue: expiry is not in the future")
	}
	w := wireClaims{
		Iss: r.cfg.Issuer, Sub: c.Subject, Aud: c.Audience,
		Exp: exp.Unix(), Iat: iat.Unix(), Nbf: iat.Unix(),
		Jti: tutela.RandomToken(16), Sid: c.SessionID, Tenant: c.Tenant, Tv: c.TokenVersion,
		Amr: c.AMR, Scope: c.Scope, Acr: c.ACR, ClientID: c.ClientID,
	}
	if c.JKT != "" {
		w.Cnf = &cnf{JKT: c.JKT}
	}
	if !c.AuthTime.IsZero() {
		w.AuthTime = c.AuthTime.Unix()
	}
	payload, err := json.Marshal(w)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: issue: %w", err)
	}
	token, err = k.sign(payload)
	if err != nil {
		return "", time.Time{}, err
	}
	return token, exp.UTC(), nil
}

// Audiences are the audiences this ring issues tokens for (Config.Audience).
func (r *Ring) Audiences() []string { return slices.Clone(r.cfg.Audience) }

// audienceMatches reports whether the token's aud holds audience, or (audience empty) one of
// audiences. An empty audience is never a match.
func audienceMatches(aud []string, audience string, audiences []string) bool {
	if audience != "" {
		return slices.Contains(aud, audience)
	}
	for _, a := range audiences {
		if a != "" && slices.Contains(aud, a) {
			return true
		}
	}
	return false
}

// Verify checks token and returns its claims when it is an access token of this issuer for
// audience, signed by a published key, and valid now. Every failure is a *tutela.Error with
// code EUNAUTHENTICATED and message "invalid access token"; its Err says why (ErrExpired,
// ErrAlgorithm, …), for logs.
func (r *Ring) Verify(ctx context.Context, token string, audience string) (*Claims, error) {
	c, err := r.verify(ctx, token, audience, nil)
	if err != nil {
		return nil, unauthenticated(err)
	}
	return c, nil
}

// VerifyAny is Verify for a token of any of audiences: the introspection and decision APIs
// answer for tokens issued to resource servers as well as to Tutela itself.
func (r *Ring) VerifyAny(ctx context.Context, token string, audiences []string) (*Claims, error) {
	c, err := r.verify(ctx, token, "", audiences)
	if err != nil {
		return nil, unauthenticated(err)
	}
	return c, nil
}

// verify checks token for audience, or for any of audiences when audience is empty.
func (r *Ring) verify(ctx context.Context, token, audience string, audiences []string) (*Claims, error) {
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrMalformed)
	}
	i := strings.IndexByte(token, '.')
	j := strings.LastIndexByte(token, '.')
	if i <= 0 || i == j {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	k := r.snap.Load().byHeader[token[:i]]
	if k == nil {
		var err error
		if k, err = r.keyForHeader(ctx, token[:i]); err != nil {
			return nil, err
		}
	}
	now := r.cfg.Clock()
	if !now.Before(k.publish) {
		return nil, fmt.Errorf("%w: key %s retired", ErrKeyNotActive, k.id)
	}
	if !k.verifySignature(token[:j], token[j+1:]) {
		return nil, ErrBadSignature
	}

	payload, err := b64.DecodeString(token[i+1 : j])
	if err != nil {
		return nil, fmt.Errorf("%w: payload encoding", ErrMalformed)
	}
	var w wireClaims
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("%w: claims JSON", ErrMalformed)
	}
	if w.Sub == "" || w.Jti == "" || w.Exp == 0 || w.Iat == 0 || w.Nbf == 0 {
		return nil, fmt.Errorf("%w: missing required claim", ErrMalformed)
	}
	if w.Iss != r.cfg.Issuer {
		return nil, ErrIssuer
	}
	if !audienceMatches(w.Aud, audience, audiences) {
		return nil, ErrAudience
	}
	exp, iat, nbf := time.Unix(w.Exp, 0).UTC(), time.Unix(w.Iat, 0).UTC(), time.Unix(w.Nbf, 0).UTC()
	if !exp.After(iat) || exp.Sub(iat) > r.cfg.TTL {
		return nil, fmt.Errorf("%w: lifetime exceeds the configured TTL", ErrMalformed)
	}
	if !now.Before(exp.Add(r.cfg.Leeway)) {
		return nil, ErrExpired
	}
	if earliest := now.Add(r.cfg.Leeway); earliest.Before(nbf) || earliest.Before(iat) {
		return nil, ErrNotYetValid
	}
	// A key signs only from ActivateAt; a token claiming an earlier iat was not made by a node
	// following the schedule.
	if iat.Before(k.stored.ActivateAt.Truncate(time.Second).Add(-r.cfg.Leeway)) {
		return nil, fmt.Errorf("%w: key %s not active at iat", ErrKeyNotActive, k.id)
	}

	c := &Claims{
		Issuer: w.Iss, Subject: w.Sub, Audience: w.Aud, Expiry: exp, IssuedAt: iat, NotBefore: nbf,
		ID: w.Jti, SessionID: w.Sid, Tenant: w.Tenant, TokenVersion: w.Tv, AMR: w.Amr, Scope: w.Scope, ACR: w.Acr,
		ClientID: w.ClientID,
	}
	if w.Cnf != nil {
		c.JKT = w.Cnf.JKT
	}
	if w.AuthTime != 0 {
		c.AuthTime = time.Unix(w.AuthTime, 0).UTC()
	}
	return c, nil
}

// keyForHeader is the slow path for a header that is not exactly one this ring writes: parse
// it, refuse what is not allowed, and reload the keys (rate-limited) when the kid is unknown.
func (r *Ring) keyForHeader(ctx context.Context, seg string) (*key, error) {
	alg, kid, err := parseHeader(seg)
	if err != nil {
		return nil, err
	}
	k := r.snap.Load().byID[kid]
	if k == nil && r.lazyRefresh(ctx) {
		k = r.snap.Load().byID[kid]
	}
	if k == nil {
		return nil, fmt.Errorf("%w: %.64q", ErrUnknownKey, kid)
	}
	if k.alg != alg {
		return nil, fmt.Errorf("%w: key %s is %s, token says %s", ErrAlgorithm, k.id, k.alg, alg)
	}
	return k, nil
}

// lazyRefresh reloads the keys at most once per RefreshInterval, so a flood of tokens with
// random kids costs the store one query per interval. It never waits for a reload in progress.
func (r *Ring) lazyRefresh(ctx context.Context) bool {
	now := r.cfg.Clock()
	r.lazyMu.Lock()
	if !r.lastLazy.IsZero() && now.Sub(r.lastLazy) < RefreshInterval {
		r.lazyMu.Unlock()
		return false
	}
	r.lastLazy = now
	r.lazyMu.Unlock()
	if !r.mu.TryLock() {
		return false
	}
	defer r.mu.Unlock()
	return r.refreshLocked(ctx) == nil
}
