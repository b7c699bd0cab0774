package sqlstore

import (
	"container/list"
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"tutela/authz"
)

// DefaultAuthCacheEntries bounds each authentication cache of a node (principals, sessions,
// policies, service accounts): the least recently used entry goes when a new one would pass
// it. An entry is a few hundred bytes, so a full cache is some ten megabytes.
const DefaultAuthCacheEntries = 20_000

// AuthCache is a bounded, least-recently-used cache of authentication state, valid only under
// the epochs it was loaded with (AuthEpochs): a change to its tenant's authentication state, on
// any node, or a watcher that has not polled successfully for AuthEpochMaxAge, makes every entry
// a miss. Callers cache only successful results and evaluate time-based state (expiries, idle
// timeouts, step-up freshness) from the cached timestamps on every use.
type AuthCache[K comparable, V any] struct {
	w   *AuthEpochs
	max int

	mu sync.Mutex
	m  map[K]*list.Element
	ll *list.List // front: most recently used
}

type authEntry[K comparable, V any] struct {
	key    K
	tenant string
	stamp  authStamp
	until  time.Time // zero: no expiry of its own
	v      V
}

// NewAuthCache returns a cache of at most max entries (DefaultAuthCacheEntries when max <= 0)
// validated by w.
func NewAuthCache[K comparable, V any](w *AuthEpochs, max int) *AuthCache[K, V] {
	if max <= 0 {
		max = DefaultAuthCacheEntries
	}
	return &AuthCache[K, V]{w: w, max: max, m: map[K]*list.Element{}, ll: list.New()}
}

// Get returns the entry for key if it is still valid at now.
func (c *AuthCache[K, V]) Get(key K, now time.Time) (V, bool) {
	var zero V
	if c == nil {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*authEntry[K, V])
	if !c.w.valid(e.tenant, e.stamp) || (!e.until.IsZero() && !now.Before(e.until)) {
		c.ll.Remove(el)
		delete(c.m, key)
		return zero, false
	}
	c.ll.MoveToFront(el)
	return e.v, true
}

// Put stores v for key, a result read after t was taken about tenantID, valid until until
// (zero: until its epochs change). It does nothing when t allows no caching.
func (c *AuthCache[K, V]) Put(t AuthTicket, key K, tenantID string, v V, until time.Time) {
	if c == nil {
		return
	}
	s, ok := t.stamp(tenantID)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		el.Value = &authEntry[K, V]{key: key, tenant: tenantID, stamp: s, until: until, v: v}
		c.ll.MoveToFront(el)
		return
	}
	c.m[key] = c.ll.PushFront(&authEntry[K, V]{key: key, tenant: tenantID, stamp: s, until: until, v: v})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*authEntry[K, V]).key)
	}
}

// Delete drops key's entry.
func (c *AuthCache[K, V]) Delete(key K) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.ll.Remove(el)
		delete(c.m, key)
	}
}

// Len is the number of entries held, valid or not.
func (c *AuthCache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// CacheTicket is the ticket for caching what this transaction read: the one taken before it
// began (so its snapshot is no older than the stamp), and none once the transaction itself
// wrote authentication state (what it read may never commit).
func (tx *Tx) CacheTicket() AuthTicket {
	if tx.authWrite {
		return AuthTicket{w: tx.db.epochs}
	}
	return tx.ticket
}

// userKey names a user of a tenant in the caches.
type userKey struct{ tenant, user string }

// cachedPolicy is a user's policy and until when its roles stay as they are.
type cachedPolicy struct {
	p     *authz.Policy
	until time.Time
}

// CachedPolicy is Policy through this node's policy cache: the policy of a user as of its
// tenant's current epoch. Role grants that expire end the entry when the first of them does;
// per-user grants carry their own expiry, which every decision checks.
func (tx *Tx) CachedPolicy(ctx context.Context, tenantID, userID string) (*authz.Policy, error) {
	if p, ok := tx.db.policies.Get(userKey{tenantID, userID}, tx.now); ok {
		return clonePolicy(p.p), nil
	}
	p, err := tx.Policy(ctx, tenantID, userID)
	if err != nil {
		return nil, err
	}
	until, err := tx.Users(tenantID).nextRoleExpiry(ctx, userID)
	if err != nil {
		return nil, err
	}
	tx.db.policies.Put(tx.CacheTicket(), userKey{tenantID, userID}, tenantID, &cachedPolicy{p: clonePolicy(p), until: until}, until)
	return p, nil
}

// CachedServiceAccountPolicy is ServiceAccountPolicy through the same cache.
func (tx *Tx) CachedServiceAccountPolicy(ctx context.Context, tenantID, saID string) (*authz.Policy, error) {
	key := userKey{tenantID, "sa:" + saID} // "sa:" cannot begin a user ID
	if p, ok := tx.db.policies.Get(key, tx.now); ok {
		return clonePolicy(p.p), nil
	}
	p, err := tx.ServiceAccountPolicy(ctx, tenantID, saID)
	if err != nil {
		return nil, err
	}
	tx.db.policies.Put(tx.CacheTicket(), key, tenantID, &cachedPolicy{p: clonePolicy(p)}, time.Time{})
	return p, nil
}

// CachedPolicyHit is the user's policy if this node's cache holds a valid one, without any
// transaction (the decision API answers from it).
func (db *DB) CachedPolicyHit(tenantID, userID string) (*authz.Policy, bool) {
	if p, ok := db.policies.Get(userKey{tenantID, userID}, db.Now()); ok {
		return clonePolicy(p.p), true
	}
	return nil, false
}

// CachedServiceAccountPolicyHit is CachedPolicyHit for a service account.
func (db *DB) CachedServiceAccountPolicyHit(tenantID, saID string) (*authz.Policy, bool) {
	return db.CachedPolicyHit(tenantID, "sa:"+saID)
}

// clonePolicy copies p deeply enough that a caller changing its slices or map changes no
// cached entry.
func clonePolicy(p *authz.Policy) *authz.Policy {
	c := *p
	c.Roles, c.Grants, c.Masks = slices.Clone(p.Roles), slices.Clone(p.Grants), maps.Clone(p.Masks)
	return &c
}

// nextRoleExpiry is when the first of the user's unexpired role grants expires (zero if none
// does): a policy or principal built from the roles is stale from then on.
func (r Users) nextRoleExpiry(ctx context.Context, userID string) (time.Time, error) {
	var until sql.NullTime
	err := r.tx.queryRow(ctx, `SELECT expires_at FROM user_roles WHERE tenant_id = $1 AND user_id = $2
		AND expires_at IS NOT NULL AND expires_at > $3 ORDER BY expires_at LIMIT 1`, r.tenantID, userID, r.tx.now).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return until.Time.UTC(), nil
}

// NextRoleExpiry is nextRoleExpiry for the identity service's principal cache.
func (r Users) NextRoleExpiry(ctx context.Context, userID string) (time.Time, error) {
	return r.nextRoleExpiry(ctx, userID)
}
