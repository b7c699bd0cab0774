package vault

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"tutela"
	"tutela/tracing"
)

// Purposes of data-encryption keysets. Each (tenant, purpose) has its own keyset, so destroying
// one tenant's keyset makes exactly that tenant's data of that purpose unreadable.
const (
	PurposeSigningKeys  = "signing_keys"  // access-token signing keys (platform tenant)
	PurposeTOTP         = "totp"          // TOTP seeds
	PurposeAuditKey     = "audit_key"     // checkpoint signing key
	PurposePersonalData = "personal_data" // personal data fields
	PurposeJobs         = "jobs"          // queued job payloads (reset-code mail, addresses)
	// PurposeLookup is deterministic (AES-SIV): equal plaintexts give equal ciphertexts under
	// one key, for equality lookups on encrypted columns. Use only where that is needed.
	PurposeLookup = "lookup"
	// PurposePasswordPepper is a PRF (HMAC-SHA256) keyset: the pepper applied to passwords
	// before argon2id (ASVS 4.0.3 2.4.5), so a database dump alone does not allow offline
	// guessing. It never encrypts.
	PurposePasswordPepper = "password_pepper"
	// PurposePersonKeys (per tenant, AEAD) wraps each person's own data key (privacy package):
	// subjects' and users' personal data is encrypted under that person's key, so deleting the
	// wrapped key crypto-shreds exactly one person.
	PurposePersonKeys = "person_keys"
	// PurposeBlindIndex (per tenant, PRF) computes blind indexes: keyed hashes of normalized
	// values, so an exact-value search runs over digests, never by decrypting the table.
	PurposeBlindIndex = "blind_index"
	// PurposeTokens (per tenant, PRF) derives deterministic and format-preserving tokens.
	PurposeTokens = "tokens"
	// PurposeAIKeys seals the AI providers' API keys (issue 16).
	PurposeAIKeys = "ai_keys"
	// PurposeFiles (per tenant, AEAD) wraps the data key of each stored file that belongs to
	// no subject, and seals its name (issue 17). A subject's files are wrapped by the
	// subject's own key instead, so erasing the subject shreds them.
	PurposeFiles = "files"
	// PurposeFileLinks (platform, PRF) signs download links; rotating it and retiring the old
	// key kills every link signed with that key.
	PurposeFileLinks = "file_links"
	// PurposeApprovals (per tenant, PRF) binds an approval request to its exact parameters: the
	// MAC over the canonical parameters is stored with the request and checked when the
	// approved call runs (issue 18).
	PurposeApprovals = "approvals"
	// PurposeWebhooks (per tenant, AEAD) seals the secrets webhook deliveries are signed with.
	PurposeWebhooks = "webhooks"
	// PurposeReferrals (platform, PRF) signs the tracked redirect tokens of referrals to partners.
	PurposeReferrals = "referrals"
)

// Purposes lists every keyset purpose.
var Purposes = []string{PurposeSigningKeys, PurposeTOTP, PurposeAuditKey, PurposePersonalData, PurposeLookup,
	PurposePasswordPepper, PurposeJobs, PurposePersonKeys, PurposeBlindIndex, PurposeTokens, PurposeAIKeys,
	PurposeFiles, PurposeFileLinks, PurposeApprovals, PurposeWebhooks, PurposeReferrals}

// Keyset kinds.
const (
	KindAEAD          = "aead"          // AES-256-GCM, Tink output prefix (key ID in every ciphertext)
	KindDeterministic = "deterministic" // AES-SIV (Tink deterministic AEAD), output prefix
	KindPRF           = "prf"           // HMAC-SHA256 (Tink PRF set), keyed hashing only
)

// KindOf says which kind of keyset a purpose uses.
func KindOf(purpose string) string {
	switch purpose {
	case PurposeLookup:
		return KindDeterministic
	case PurposePasswordPepper, PurposeBlindIndex, PurposeTokens, PurposeFileLinks, PurposeApprovals, PurposeReferrals:
		return KindPRF
	}
	return KindAEAD
}

func template(kind string) *tinkpb.KeyTemplate {
	switch kind {
	case KindDeterministic:
		return daead.AESSIVKeyTemplate()
	case KindPRF:
		return prf.HMACSHA256PRFKeyTemplate()
	}
	return aead.AES256GCMKeyTemplate()
}

// ErrWrongKind means an operation was asked of a keyset of another kind: encryption under a PRF
// keyset, or a PRF under an encryption keyset.
var ErrWrongKind = errors.New("vault: operation not allowed for this keyset's kind")

// ErrUnknownKey means a PRF was asked for under a key ID the keyset does not hold (never
// created, retired or destroyed).
var ErrUnknownKey = errors.New("vault: no such key in the keyset")

// ErrNoKeyset is returned for a keyset that must exist and does not (ExistingPRFPrimaryKey).
var ErrNoKeyset = errors.New("vault: no such keyset")

// ErrDecrypt means a ciphertext could not be opened: wrong context (tenant, purpose, table,
// column, row), a retired or destroyed key, or tampering. Causes are deliberately not told apart.
var ErrDecrypt = errors.New("vault: cannot decrypt (wrong context, retired key or tampered data)")

// ErrWrongKEK means a stored keyset cannot be unwrapped with the configured KEK.
var ErrWrongKEK = errors.New("vault: the configured key-encryption key cannot unwrap the stored keysets")

// KeyInfo describes one key of a keyset without its material.
type KeyInfo struct {
	ID      uint32 `json:"id"`
	Status  string `json:"status"` // enabled, disabled
	Primary bool   `json:"primary"`
}

// Keyset is a stored keyset: the Tink keyset wrapped (encrypted) by the KEK, plus the
// non-secret facts about it. Wrapped is never shown anywhere.
type Keyset struct {
	ID        string
	TenantID  string // "" for the platform
	Purpose   string
	Kind      string
	Version   int64 // bumped by every change; updates compare-and-swap on it
	Wrapped   []byte
	KEKURI    string
	Keys      []KeyInfo
	CreatedAt time.Time
	RotatedAt time.Time // zero until the first rotation
}

// Event is the audit record a store writes in the same transaction as a keyset change.
type Event struct {
	Action  string // key.keyset_create, key.rotate, key.retire, key.destroy, key.kek_rewrap
	Details map[string]any
}

// Store keeps wrapped keysets. sqlstore.KeysetStore implements it; every mutation records its
// Event in the same transaction.
type Store interface {
	// GetKeyset returns the keyset of (tenantID, purpose) or a tutela ENOTFOUND error.
	GetKeyset(ctx context.Context, tenantID, purpose string) (*Keyset, error)
	ListKeysets(ctx context.Context) ([]Keyset, error)
	// CreateKeyset inserts ks (Version 1); ECONFLICT when (tenant, purpose) exists.
	CreateKeyset(ctx context.Context, ks *Keyset, ev Event) error
	// UpdateKeyset replaces the keyset if its stored version is still prevVersion, else ECONFLICT.
	UpdateKeyset(ctx context.Context, ks *Keyset, prevVersion int64, ev Event) error
	// DeleteKeyset destroys the keyset (crypto-shredding its data).
	DeleteKeyset(ctx context.Context, tenantID, purpose string, ev Event) error
}

// Options tune a Vault.
type Options struct {
	CacheTTL time.Duration // how long unwrapped keysets stay in memory (vault.cache_ttl); default 5 min
	Clock    tutela.Clock  // default tutela.SystemClock
	// Tracer records a span per KEK call (wrap, unwrap: an HSM or KMS round trip); nil: none.
	Tracer trace.TracerProvider
}

// Vault encrypts and decrypts data with per-(tenant, purpose) Tink keysets wrapped by a KEK.
type Vault struct {
	kek KEK
	// tracer spans KEK calls (nil when tracing is off); kekKind, the KEK URI's scheme, is all a
	// span says about the KEK.
	tracer  trace.Tracer
	kekKind string
	store   Store
	ttl     time.Duration
	now     tutela.Clock
	// timers: with the system clock, each cached keyset expires by a timer that flags it
	// stale, so Encrypt and Decrypt do not read the clock (a clock read costs as much as the
	// AES-GCM call on some virtual machines). An injected clock is read on every use instead,
	// so tests can move it.
	timers bool

	// cache is copy-on-write: Encrypt and Decrypt read it with one atomic load and no lock;
	// writers (loads, rotations, Invalidate) hold mu and publish a new map.
	mu    sync.Mutex
	cache atomic.Pointer[map[cacheKey]*cached]
	// loads makes concurrent misses of one keyset share a single read and unwrap, so an
	// expired entry under load calls the KMS once, not once per waiting operation.
	loads singleflight.Group
}

type cacheKey struct{ tenant, purpose string }

type cached struct {
	version   int64
	keysetID  string
	rotatedAt time.Time // the stored keyset's last rotation (zero: never), for the rewrap guard
	primaryID uint32
	aead      tink.AEAD // Tink's keyset primitive: any key type, output prefix or raw
	daead     tink.DeterministicAEAD
	prfs      *prf.Set // KindPRF keysets only
	expires   time.Time
	stale     atomic.Bool
	timer     *time.Timer
	// Fast path, set when every enabled key is AES-GCM with Tink's output prefix (all keys
	// this package creates): the primary's own primitive for Encrypt, each key's by ID for
	// Decrypt, so an operation is one lookup and one AEAD call instead of Tink's primitive-set
	// wrapper (which re-slices the prefix and allocates per call).
	primary tink.AEAD
	byID    map[uint32]tink.AEAD
	// aadPrefix binds every ciphertext to its tenant and purpose; the caller's aad follows.
	aadPrefix []byte // lengthPrefixed("tutela/data/v1", tenant, purpose)
}

func (v *Vault) cacheGet(k cacheKey) *cached {
	if m := v.cache.Load(); m != nil {
		return (*m)[k]
	}
	return nil
}

// cacheUpdate publishes a copy of the cache changed by fn.
func (v *Vault) cacheUpdate(fn func(m map[cacheKey]*cached)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	next := map[cacheKey]*cached{}
	if cur := v.cache.Load(); cur != nil {
		for k, c := range *cur {
			next[k] = c
		}
	}
	fn(next)
	if cur := v.cache.Load(); cur != nil {
		for k, c := range *cur {
			if next[k] != c && c.timer != nil {
				c.timer.Stop()
			}
		}
	}
	v.cache.Store(&next)
}

func (v *Vault) fresh(c *cached) bool {
	if v.timers {
		return !c.stale.Load()
	}
	return v.now().Before(c.expires)
}

// New returns a Vault and checks that kek unwraps every stored keyset: with the wrong KEK it
// fails with ErrWrongKEK before anything is written (no keyset is created under a wrong KEK).
func New(ctx context.Context, kek KEK, store Store, opt Options) (*Vault, error) {
	if opt.CacheTTL <= 0 {
		opt.CacheTTL = 5 * time.Minute
	}
	timers := opt.Clock == nil
	if opt.Clock == nil {
		opt.Clock = tutela.SystemClock
	}
	v := &Vault{kek: kek, store: store, ttl: opt.CacheTTL, now: opt.Clock, timers: timers, kekKind: kekKind(kek)}
	if !tracing.IsOff(opt.Tracer) {
		v.tracer = opt.Tracer.Tracer("tutela/vault")
	}
	if err := v.Check(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Check unwraps every stored keyset with the KEK. The error names the first keyset that fails
// (tenant, purpose, the KEK URI it was wrapped with), never key material.
func (v *Vault) Check(ctx context.Context) error {
	all, err := v.store.ListKeysets(ctx)
	if err != nil {
		return fmt.Errorf("vault: list keysets: %w", err)
	}
	for i := range all {
		if _, err := v.unwrap(ctx, &all[i]); err != nil {
			return fmt.Errorf("%w: keyset %s (tenant %q, purpose %s) was wrapped by %s, configured KEK is %s",
				ErrWrongKEK, all[i].ID, all[i].TenantID, all[i].Purpose, all[i].KEKURI, v.kek.URI())
		}
	}
	return nil
}

// KEKURI says where the KEK lives.
func (v *Vault) KEKURI() string { return v.kek.URI() }

// keysetAAD binds a wrapped keyset to its tenant and purpose: a wrapped keyset copied to another
// tenant's row does not unwrap.
func keysetAAD(tenantID, purpose string) []byte {
	return lengthPrefixed("tutela/keyset/v1", tenantID, purpose)
}

// AAD builds the associated data for a field stored at (table, column, row id): a ciphertext
// moved to another row, column or table fails to decrypt. Fields are length-prefixed so no two
// different tuples produce the same bytes.
func AAD(table, column, rowID string) []byte { return lengthPrefixed(table, column, rowID) }

// LengthPrefixed encodes parts each after its 4-byte big-endian length, so no two different
// tuples give the same bytes: the one encoding of associated data and PRF inputs.
func LengthPrefixed(parts ...string) []byte { return lengthPrefixed(parts...) }

func lengthPrefixed(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p))) // #nosec G115 -- a length prefix of an AAD part; inputs are capped far below 4 GiB
		b = append(b, p...)
	}
	return b
}

func (v *Vault) unwrap(ctx context.Context, ks *Keyset) (h *keyset.Handle, err error) {
	if v.tracer != nil {
		span := v.startKEKSpan(ctx, "vault.kek.unwrap")
		defer func() { endKEKSpan(span, err) }()
	}
	h, err = keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(ks.Wrapped)), v.kek,
		keysetAAD(ks.TenantID, ks.Purpose))
	if err != nil {
		return nil, ErrWrongKEK
	}
	return h, nil
}

func (v *Vault) wrap(ctx context.Context, h *keyset.Handle, tenantID, purpose string) (_ []byte, err error) {
	if v.tracer != nil {
		span := v.startKEKSpan(ctx, "vault.kek.wrap")
		defer func() { endKEKSpan(span, err) }()
	}
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), v.kek, keysetAAD(tenantID, purpose)); err != nil {
		return nil, fmt.Errorf("vault: wrap keyset: %w", err)
	}
	return buf.Bytes(), nil
}

func keyInfos(h *keyset.Handle) []KeyInfo {
	info := h.KeysetInfo()
	out := make([]KeyInfo, 0, len(info.GetKeyInfo()))
	for _, k := range info.GetKeyInfo() {
		st := "disabled"
		if k.GetStatus() == tinkpb.KeyStatusType_ENABLED {
			st = "enabled"
		}
		out = append(out, KeyInfo{ID: k.GetKeyId(), Status: st, Primary: k.GetKeyId() == info.GetPrimaryKeyId()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

type noCreateKey struct{}

// WithoutCreate marks ctx so that no call made with it creates a keyset, except for the tenants
// allow reports true for (nil: none): a missing keyset is then a *MissingKeysetError instead.
// A caller inside a database transaction needs it. Creating a keyset writes to the database on
// a connection of its own, and concurrent calls for the same keyset share one creation: a caller
// holding the only write connection (SQLite) that waited for a creation started by another
// caller would wait for itself until its deadline. Such a caller ends its transaction, creates
// the keyset (any call without the mark) and runs the transaction again.
func WithoutCreate(ctx context.Context, allow func(tenantID string) bool) context.Context {
	return context.WithValue(ctx, noCreateKey{}, noCreate{allow})
}

type noCreate struct{ allow func(string) bool }

// MissingKeysetError is a keyset a WithoutCreate call would have had to create.
type MissingKeysetError struct{ TenantID, Purpose string }

func (e *MissingKeysetError) Error() string {
	return fmt.Sprintf("vault: keyset %s of tenant %q does not exist yet (not created inside a transaction)", e.Purpose, e.TenantID)
}

// primitive returns the cached primitives for (tenant, purpose), loading (or, with create,
// creating) the keyset when the cache has none or it expired.
func (v *Vault) primitive(ctx context.Context, tenantID, purpose string, create bool) (*cached, error) {
	suppressed := false
	if nc, ok := ctx.Value(noCreateKey{}).(noCreate); ok && create && (nc.allow == nil || !nc.allow(tenantID)) {
		create, suppressed = false, true
	}
	c, err := v.primitiveLoad(ctx, tenantID, purpose, create)
	if suppressed && tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil, &MissingKeysetError{TenantID: tenantID, Purpose: purpose}
	}
	return c, err
}

func (v *Vault) primitiveLoad(ctx context.Context, tenantID, purpose string, create bool) (*cached, error) {
	c := v.cacheGet(cacheKey{tenantID, purpose})
	if c != nil && v.fresh(c) {
		return c, nil
	}
	res, err, _ := v.loads.Do(fmt.Sprintf("%q %q %t", tenantID, purpose, create), func() (any, error) {
		if c := v.cacheGet(cacheKey{tenantID, purpose}); c != nil && v.fresh(c) {
			return c, nil // loaded while this caller waited for its turn
		}
		ks, err := v.store.GetKeyset(ctx, tenantID, purpose)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND && create {
			ks, err = v.create(ctx, tenantID, purpose)
		}
		if err != nil {
			return nil, err
		}
		return v.load(ctx, ks)
	})
	if err != nil {
		return nil, err
	}
	return res.(*cached), nil
}

func (v *Vault) load(ctx context.Context, ks *Keyset) (*cached, error) {
	h, err := v.unwrap(ctx, ks)
	if err != nil {
		return nil, fmt.Errorf("%w: keyset %s (purpose %s)", err, ks.ID, ks.Purpose)
	}
	c := &cached{version: ks.Version, keysetID: ks.ID, rotatedAt: ks.RotatedAt, expires: v.now().Add(v.ttl)}
	info := h.KeysetInfo()
	c.primaryID = info.GetPrimaryKeyId()
	c.aadPrefix = lengthPrefixed("tutela/data/v1", ks.TenantID, ks.Purpose)
	switch ks.Kind {
	case KindDeterministic:
		c.daead, err = daead.New(h)
	case KindPRF:
		c.prfs, err = prf.NewPRFSet(h)
	default:
		c.aead, err = aead.New(h)
		if err == nil {
			err = c.loadFast(h)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("vault: keyset %s: %w", ks.ID, err)
	}
	if v.timers {
		c.timer = time.AfterFunc(v.ttl, func() { c.stale.Store(true) })
	}
	v.cacheUpdate(func(m map[cacheKey]*cached) { m[cacheKey{ks.TenantID, ks.Purpose}] = c })
	return c, nil
}

// loadFast builds the per-key AES-GCM primitives; a keyset holding any other enabled key (a
// raw-prefix or non-GCM key imported from elsewhere) keeps using only Tink's wrapper.
func (c *cached) loadFast(h *keyset.Handle) error {
	byID := map[uint32]tink.AEAD{}
	var primary tink.AEAD
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return err
		}
		if e.KeyStatus() != keyset.Enabled {
			continue
		}
		k, ok := e.Key().(*aesgcm.Key)
		if !ok {
			return nil
		}
		if _, required := k.IDRequirement(); !required {
			return nil
		}
		p, err := aesgcm.NewAEAD(k)
		if err != nil {
			return err
		}
		byID[e.KeyID()] = p
		if e.IsPrimary() {
			primary = p
		}
	}
	if primary != nil {
		c.primary, c.byID = primary, byID
	}
	return nil
}

// aadPool holds scratch buffers for the associated data: the AEADs read it and keep nothing,
// so one buffer per in-flight call avoids an allocation per operation.
var aadPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// withAAD calls fn with the full associated data of a (tenant, purpose, aad) operation.
func withAAD[T any](c *cached, aad []byte, fn func(ad []byte) (T, error)) (T, error) {
	bp := aadPool.Get().(*[]byte)
	ad := append(append((*bp)[:0], c.aadPrefix...), aad...)
	r, err := fn(ad)
	if cap(ad) <= 4096 {
		*bp = ad[:0]
		aadPool.Put(bp)
	}
	return r, err
}

// Invalidate drops cached keysets so the next operation reloads them (after a rotation done by
// another node, the cache TTL bounds how long the old primary keeps encrypting).
func (v *Vault) Invalidate() {
	v.cacheUpdate(func(m map[cacheKey]*cached) { clear(m) })
}

func (v *Vault) create(ctx context.Context, tenantID, purpose string) (*Keyset, error) {
	kind := KindOf(purpose)
	h, err := keyset.NewHandle(template(kind))
	if err != nil {
		return nil, fmt.Errorf("vault: new keyset: %w", err)
	}
	w, err := v.wrap(ctx, h, tenantID, purpose)
	if err != nil {
		return nil, err
	}
	ks := &Keyset{ID: tutela.NewID(), TenantID: tenantID, Purpose: purpose, Kind: kind, Version: 1, Wrapped: w,
		KEKURI: v.kek.URI(), Keys: keyInfos(h), CreatedAt: v.now().UTC()}
	err = v.store.CreateKeyset(ctx, ks, Event{Action: "key.keyset_create",
		Details: map[string]any{"purpose": purpose, "kind": kind, "kek_uri": ks.KEKURI, "key_ids": idList(ks.Keys)}})
	if tutela.ErrorCode(err) == tutela.ECONFLICT { // another node created it first
		return v.store.GetKeyset(ctx, tenantID, purpose)
	}
	if err != nil {
		return nil, err
	}
	return ks, nil
}

// idList lists key IDs for audit details (which accept []any, not []uint32).
func idList(keys []KeyInfo) []any {
	ids := make([]any, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

// Encrypt encrypts plaintext under the primary key of the (tenantID, purpose) keyset (created
// on first use), bound to tenantID, purpose and aad (use AAD(table, column, rowID)). The
// ciphertext starts with Tink's 5-byte prefix naming the key.
func (v *Vault) Encrypt(ctx context.Context, tenantID, purpose string, plaintext, aad []byte) ([]byte, error) {
	c, err := v.primitive(ctx, tenantID, purpose, true)
	if err != nil {
		return nil, err
	}
	if c.prfs != nil {
		return nil, ErrWrongKind
	}
	return withAAD(c, aad, func(ad []byte) ([]byte, error) {
		switch {
		case c.primary != nil:
			return c.primary.Encrypt(plaintext, ad)
		case c.daead != nil:
			return c.daead.EncryptDeterministically(plaintext, ad)
		}
		return c.aead.Encrypt(plaintext, ad)
	})
}

// Decrypt opens a ciphertext from Encrypt with the same tenantID, purpose and aad. Any failure
// is ErrDecrypt.
func (v *Vault) Decrypt(ctx context.Context, tenantID, purpose string, ciphertext, aad []byte) ([]byte, error) {
	c, err := v.primitive(ctx, tenantID, purpose, false)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil, ErrDecrypt
	}
	if err != nil {
		return nil, err
	}
	if c.prfs != nil {
		return nil, ErrDecrypt
	}
	pt, err := v.open(c, tenantID, purpose, ciphertext, aad)
	if err != nil && keyIDOf(ciphertext) != 0 && !c.hasCurrent(ciphertext) {
		// The key may have been added by another node after this one cached the keyset.
		ks, gerr := v.store.GetKeyset(ctx, tenantID, purpose)
		if gerr == nil && ks.Version != c.version {
			if c, gerr = v.load(ctx, ks); gerr == nil {
				pt, err = v.open(c, tenantID, purpose, ciphertext, aad)
			}
		}
	}
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// PRFPrimaryKey returns the ID of the primary key of the (tenantID, purpose) PRF keyset, created
// on first use: the key new values are computed under.
func (v *Vault) PRFPrimaryKey(ctx context.Context, tenantID, purpose string) (uint32, error) {
	return v.prfPrimaryKey(ctx, tenantID, purpose, true)
}

// ExistingPRFPrimaryKey is PRFPrimaryKey for a keyset that must already exist: a missing one is
// ErrNoKeyset, never created. For keysets whose loss a new one would hide (the password pepper:
// hashes made under the lost keys would stop verifying, with nothing to say why).
func (v *Vault) ExistingPRFPrimaryKey(ctx context.Context, tenantID, purpose string) (uint32, error) {
	return v.prfPrimaryKey(ctx, tenantID, purpose, false)
}

func (v *Vault) prfPrimaryKey(ctx context.Context, tenantID, purpose string, create bool) (uint32, error) {
	c, err := v.primitive(ctx, tenantID, purpose, create)
	if !create && tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return 0, fmt.Errorf("%w: %s (tenant %q)", ErrNoKeyset, purpose, tenantID)
	}
	if err != nil {
		return 0, err
	}
	if c.prfs == nil {
		return 0, ErrWrongKind
	}
	return c.prfs.PrimaryID, nil
}

// PRF computes n bytes of the pseudorandom function of key keyID of the (tenantID, purpose) PRF
// keyset over input, bound to the tenant and purpose (the same length-prefixed prefix that binds
// ciphertexts), so the same key used under another context gives unrelated output. A key ID
// the keyset does not hold is ErrUnknownKey: a key another node has just added is picked up by
// reloading the keyset, a retired one stays unknown.
func (v *Vault) PRF(ctx context.Context, tenantID, purpose string, keyID uint32, input []byte, n int) ([]byte, error) {
	c, err := v.primitive(ctx, tenantID, purpose, false)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil, ErrUnknownKey
	}
	if err != nil {
		return nil, err
	}
	if c.prfs == nil {
		return nil, ErrWrongKind
	}
	p := c.prfs.PRFs[keyID]
	if p == nil {
		ks, gerr := v.store.GetKeyset(ctx, tenantID, purpose)
		if gerr == nil && ks.Version != c.version {
			if c, gerr = v.load(ctx, ks); gerr == nil && c.prfs != nil {
				p = c.prfs.PRFs[keyID]
			}
		}
		if p == nil {
			return nil, ErrUnknownKey
		}
	}
	return withAAD(c, input, func(in []byte) ([]byte, error) { return p.ComputePRF(in, uint32(n)) }) // #nosec G115 -- n is an output length the callers fix (digest sizes), not input
}

// PRFKeyIDs returns the IDs of every enabled key of the (tenantID, purpose) PRF keyset, primary
// first. Values computed under a key stay findable after a rotation: a lookup computes the
// PRF under each (normally one or two) until the old key is retired. A missing keyset is
// ErrNoKeyset, never created.
func (v *Vault) PRFKeyIDs(ctx context.Context, tenantID, purpose string) ([]uint32, error) {
	c, err := v.primitive(ctx, tenantID, purpose, false)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil, fmt.Errorf("%w: %s (tenant %q)", ErrNoKeyset, purpose, tenantID)
	}
	if err != nil {
		return nil, err
	}
	if c.prfs == nil {
		return nil, ErrWrongKind
	}
	ids := []uint32{c.prfs.PrimaryID}
	for id := range c.prfs.PRFs {
		if id != c.prfs.PrimaryID {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids[1:])
	return ids, nil
}

func (c *cached) hasCurrent(ct []byte) bool { return keyIDOf(ct) == c.primaryID }

func (v *Vault) open(c *cached, tenantID, purpose string, ct, aad []byte) ([]byte, error) {
	return withAAD(c, aad, func(ad []byte) ([]byte, error) {
		switch {
		case c.byID != nil:
			if p := c.byID[keyIDOf(ct)]; p != nil {
				return p.Decrypt(ct, ad)
			}
			return nil, ErrDecrypt
		case c.daead != nil:
			return c.daead.DecryptDeterministically(ct, ad)
		}
		return c.aead.Decrypt(ct, ad)
	})
}

// keyIDOf reads the key ID from Tink's output prefix (0x01 || big-endian uint32); 0 if absent.
func keyIDOf(ct []byte) uint32 {
	if len(ct) < 5 || ct[0] != 0x01 {
		return 0
	}
	return binary.BigEndian.Uint32(ct[1:5])
}

// KeyID reports which key encrypted ct (Tink's prefix), or 0 when ct has no Tink prefix.
func KeyID(ct []byte) uint32 { return keyIDOf(ct) }

// mutate applies change to the (tenant, purpose) keyset and stores it with a compare-and-swap
// on the version, so two nodes rotating at once cannot lose a key.
func (v *Vault) mutate(ctx context.Context, tenantID, purpose string, action string,
	change func(m *keyset.Manager, ks *Keyset) (map[string]any, error)) (*Keyset, error) {
	return v.mutateKeyset(ctx, tenantID, purpose, action, true, change)
}

// mutateKeyset is mutate; with create false a missing keyset is ENOTFOUND (a scheduled
// rotation must not resurrect a keyset destroyed for crypto-shredding).
func (v *Vault) mutateKeyset(ctx context.Context, tenantID, purpose string, action string, create bool,
	change func(m *keyset.Manager, ks *Keyset) (map[string]any, error)) (*Keyset, error) {
	ks, err := v.store.GetKeyset(ctx, tenantID, purpose)
	if tutela.ErrorCode(err) == tutela.ENOTFOUND && create {
		if ks, err = v.create(ctx, tenantID, purpose); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	h, err := v.unwrap(ctx, ks)
	if err != nil {
		return nil, fmt.Errorf("%w: keyset %s", err, ks.ID)
	}
	m := keyset.NewManagerFromHandle(h)
	details, err := change(m, ks)
	if err != nil {
		return nil, err
	}
	nh, err := m.Handle()
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", action, err)
	}
	w, err := v.wrap(ctx, nh, tenantID, purpose)
	if err != nil {
		return nil, err
	}
	prev := ks.Version
	next := *ks
	next.Version, next.Wrapped, next.KEKURI, next.Keys = prev+1, w, v.kek.URI(), keyInfos(nh)
	if details == nil {
		details = map[string]any{}
	}
	details["purpose"], details["key_ids"], details["kek_uri"] = purpose, idList(next.Keys), next.KEKURI
	if action == "key.rotate" {
		next.RotatedAt = v.now().UTC()
	}
	if err := v.store.UpdateKeyset(ctx, &next, prev, Event{Action: action, Details: details}); err != nil {
		return nil, err
	}
	v.cacheUpdate(func(m map[cacheKey]*cached) { delete(m, cacheKey{tenantID, purpose}) })
	return &next, nil
}

// Rotate adds a new key and makes it the primary for new writes; older keys keep decrypting
// until Retire. The keyset is created if it does not exist yet.
func (v *Vault) Rotate(ctx context.Context, tenantID, purpose string) (*Keyset, error) {
	return v.mutate(ctx, tenantID, purpose, "key.rotate", addPrimary)
}

// addPrimary adds a key of the keyset's kind and makes it the primary.
func addPrimary(m *keyset.Manager, ks *Keyset) (map[string]any, error) {
	id, err := m.Add(template(ks.Kind))
	if err != nil {
		return nil, fmt.Errorf("vault: rotate: %w", err)
	}
	if err := m.SetPrimary(id); err != nil {
		return nil, fmt.Errorf("vault: rotate: %w", err)
	}
	return map[string]any{"new_primary": id}, nil
}

// RotateExisting is Rotate for a keyset that must already exist (ENOTFOUND otherwise), for
// callers that must not create keysets or resurrect one destroyed for crypto-shredding (the API).
func (v *Vault) RotateExisting(ctx context.Context, tenantID, purpose string) (*Keyset, error) {
	return v.mutateKeyset(ctx, tenantID, purpose, "key.rotate", false, addPrimary)
}

// Retire destroys every non-primary key of the keyset (Tink Delete: the key material is gone
// from the stored keyset), so ciphertexts still under an old key become unreadable. Run
// Rewrap first; `tutela keys retire` refuses while a rewrap source still holds an old ciphertext.
// It is refused (*RotationUnsettledError) while the keyset's last rotation, as stored, is younger
// than the cache TTL plus RotationSettleMargin: until then another node may still write under
// the old primary key.
func (v *Vault) Retire(ctx context.Context, tenantID, purpose string) (*Keyset, error) {
	return v.RetireScannedAt(ctx, tenantID, purpose, v.now())
}

// RetireScannedAt is Retire for a caller that checked, in scans begun at scanStart, that no
// ciphertext or digest under an old key remains. The keyset must have settled (every node
// writing under the new primary) by scanStart, not merely by now: a node still on the old
// primary while the scan ran could have written behind its cursor.
func (v *Vault) RetireScannedAt(ctx context.Context, tenantID, purpose string, scanStart time.Time) (*Keyset, error) {
	return v.mutate(ctx, tenantID, purpose, "key.retire", func(m *keyset.Manager, ks *Keyset) (map[string]any, error) {
		if err := v.settled("retire", ks.ID, tenantID, purpose, ks.RotatedAt, scanStart); err != nil {
			return nil, err
		}
		gone := []any{}
		for _, k := range ks.Keys {
			if !k.Primary {
				if err := m.Delete(k.ID); err != nil {
					return nil, fmt.Errorf("vault: retire key %d: %w", k.ID, err)
				}
				gone = append(gone, k.ID)
			}
		}
		return map[string]any{"destroyed_key_ids": gone}, nil
	})
}

// errNotDue stops a scheduled rotation whose keyset another node has just rotated.
var errNotDue = errors.New("vault: rotation not due")

// primaryAge is how long the keyset's primary has been in use.
func primaryAge(ks *Keyset, now time.Time) time.Duration {
	since := ks.RotatedAt
	if since.IsZero() {
		since = ks.CreatedAt
	}
	return now.Sub(since)
}

// RotateDue rotates every keyset whose primary key is older than every (the rotation schedule;
// call it from the server's maintenance loop). Each keyset is re-read and re-checked inside the
// rotation and stored with a compare-and-swap, so nodes running the schedule at once rotate a
// keyset once, not once per node. It returns the keysets rotated; an error on one keyset does
// not stop the others.
func (v *Vault) RotateDue(ctx context.Context, every time.Duration) ([]*Keyset, error) {
	if every <= 0 {
		return nil, errors.New("vault: rotation interval must be positive")
	}
	all, err := v.store.ListKeysets(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Keyset
	var errs []error
	for i := range all {
		if primaryAge(&all[i], v.now()) < every {
			continue
		}
		ks, err := v.mutateKeyset(ctx, all[i].TenantID, all[i].Purpose, "key.rotate", false, func(m *keyset.Manager, ks *Keyset) (map[string]any, error) {
			if primaryAge(ks, v.now()) < every {
				return nil, errNotDue
			}
			details, err := addPrimary(m, ks)
			if err != nil {
				return nil, err
			}
			details["scheduled"], details["every"] = true, every.String()
			return details, nil
		})
		switch {
		case errors.Is(err, errNotDue), tutela.ErrorCode(err) == tutela.ECONFLICT, // another node rotated it
			tutela.ErrorCode(err) == tutela.ENOTFOUND: // destroyed since listed
		case err != nil:
			errs = append(errs, fmt.Errorf("keyset %s: %w", all[i].ID, err))
		default:
			out = append(out, ks)
		}
	}
	return out, errors.Join(errs...)
}

// RewrapKEK re-encrypts every stored keyset from the old KEK to the new one (KEK rotation, or a
// move from local: to an HSM or KMS). Data ciphertexts are not touched: only the keysets are
// rewrapped. A keyset already under the new KEK is skipped, so an interrupted run can be rerun.
// Start nodes with the new KEK only after it returns.
func RewrapKEK(ctx context.Context, store Store, old, next KEK) (int, error) {
	all, err := store.ListKeysets(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range all {
		ks := &all[i]
		aad := keysetAAD(ks.TenantID, ks.Purpose)
		h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(ks.Wrapped)), old, aad)
		if err != nil {
			if _, cerr := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(ks.Wrapped)), next, aad); cerr == nil {
				continue
			}
			return n, fmt.Errorf("%w: keyset %s (tenant %q, purpose %s) with the old KEK %s", ErrWrongKEK, ks.ID, ks.TenantID, ks.Purpose, old.URI())
		}
		var buf bytes.Buffer
		if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), next, aad); err != nil {
			return n, fmt.Errorf("vault: wrap keyset: %w", err)
		}
		up := *ks
		up.Version, up.Wrapped, up.KEKURI = ks.Version+1, buf.Bytes(), next.URI()
		if err := store.UpdateKeyset(ctx, &up, ks.Version, Event{Action: "key.kek_rewrap",
			Details: map[string]any{"purpose": ks.Purpose, "from_kek_uri": old.URI(), "kek_uri": up.KEKURI}}); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Destroy deletes the (tenant, purpose) keyset: every ciphertext under it becomes unreadable
// for good (crypto-shredding). Backups taken before still hold it: see docs/keys.md.
func (v *Vault) Destroy(ctx context.Context, tenantID, purpose string) error {
	if err := v.store.DeleteKeyset(ctx, tenantID, purpose, Event{Action: "key.destroy",
		Details: map[string]any{"purpose": purpose}}); err != nil {
		return err
	}
	v.cacheUpdate(func(m map[cacheKey]*cached) { delete(m, cacheKey{tenantID, purpose}) })
	return nil
}

// KeyView is what GET /v1/keys shows for one keyset: identifiers, purposes, dates and where the
// KEK lives. It holds no key material by construction.
type KeyView struct {
	KeysetID  string    `json:"keyset_id"`
	TenantID  string    `json:"tenant_id,omitempty"`
	Purpose   string    `json:"purpose"`
	Kind      string    `json:"kind"`
	Algorithm string    `json:"algorithm"`
	Keys      []KeyInfo `json:"keys"`
	KEKURI    string    `json:"kek_uri"`
	CreatedAt time.Time `json:"created_at"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

// Keys lists every keyset for the super-admin's key inventory.
func (v *Vault) Keys(ctx context.Context) ([]KeyView, error) {
	all, err := v.store.ListKeysets(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyView, 0, len(all))
	for i := range all {
		out = append(out, ViewOf(&all[i]))
	}
	return out, nil
}

// ViewOf is the keyset as GET /v1/keys shows it: IDs, dates and where its KEK lives, never key
// material.
func ViewOf(ks *Keyset) KeyView {
	alg := "AES-256-GCM"
	switch ks.Kind {
	case KindDeterministic:
		alg = "AES-SIV (deterministic)"
	case KindPRF:
		alg = "HMAC-SHA256 (PRF)"
	}
	return KeyView{KeysetID: ks.ID, TenantID: ks.TenantID, Purpose: ks.Purpose, Kind: ks.Kind,
		Algorithm: alg, Keys: ks.Keys, KEKURI: ks.KEKURI, CreatedAt: ks.CreatedAt, RotatedAt: ks.RotatedAt}
}

func (*Vault) String() string   { return "vault.Vault[redacted]" }
func (*Vault) GoString() string { return "vault.Vault[redacted]" }
