package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Authentication-state epochs (migration 00038, docs/caching.md). Each node caches what a
// request's authentication and authorization read; an entry is trusted only while nothing that
// could change it has changed since it was loaded. Triggers in the database count, per tenant,
// every change to that state (auth_epochs); each node's watcher polls the counters, and a change
// made on this node is seen at once: the transaction that made it polls right after its commit.

const (
	// AuthEpochPollInterval is how often the watcher polls auth_epochs.
	AuthEpochPollInterval = 250 * time.Millisecond
	// AuthEpochMaxAge is how long after the start of the last successful poll cached entries are
	// still trusted. A change committed at T is therefore used on another node at most until
	// T + AuthEpochMaxAge: a successful poll that began after T saw it, and one that began
	// before T trusts nothing past AuthEpochMaxAge from its start, however long it took.
	AuthEpochMaxAge = 750 * time.Millisecond
)

// AuthEpochs watches the authentication-state epochs of every tenant for one store (one
// node). Caches ask it for a ticket before they read the database and store the ticket's stamp
// with what they read; an entry is valid only while the stamp still matches and the last
// successful poll is fresh (AuthEpochMaxAge). Without a fresh poll nothing is trusted and every
// request reads the database, as without caches: failing closed.
type AuthEpochs struct {
	db  *DB
	now func() time.Time
	// maxAge is AuthEpochMaxAge unless a test sets another.
	maxAge time.Duration

	mu sync.Mutex // one poll at a time; guards cursor
	// cursor is where the next poll starts: the highest version seen (SQLite, whose writers
	// commit one at a time in version order) or the oldest transaction still running at the last
	// poll (PostgreSQL, pg_snapshot_xmin: sequence values commit out of order).
	cursor string

	state atomic.Pointer[epochState]
	// gen goes up when this node cannot tell what changed (the poll after its own commit
	// failed): every entry loaded before is then invalid.
	gen atomic.Uint64
	// polls counts successful polls (tests).
	polls atomic.Uint64
}

// epochState is one immutable reading of the epochs.
type epochState struct {
	epochs map[string]int64
	// goodStart is when the last successful poll began; zero before the first.
	goodStart time.Time
}

// AuthTicket is taken before a database read whose result may be cached; its stamp, stored
// with the result, says what the epochs were before the read began.
type AuthTicket struct {
	w     *AuthEpochs
	state *epochState // nil: nothing may be cached (no fresh poll)
	gen   uint64
}

// authStamp is what a cache entry was loaded under.
type authStamp struct {
	tenant, platform int64
	gen              uint64
}

func newAuthEpochs(db *DB, now func() time.Time) *AuthEpochs {
	w := &AuthEpochs{db: db, now: now, maxAge: AuthEpochMaxAge, cursor: "0"}
	w.state.Store(&epochState{epochs: map[string]int64{}})
	return w
}

// AuthEpochs returns the store's watcher.
func (db *DB) AuthEpochs() *AuthEpochs { return db.epochs }

// SetMaxAge changes AuthEpochMaxAge (tests of the staleness bound).
func (w *AuthEpochs) SetMaxAge(d time.Duration) { w.maxAge = d }

// SetClock changes the clock the freshness of polls is measured with (tests).
func (w *AuthEpochs) SetClock(now func() time.Time) { w.now = now }

// Polls reports how many polls have succeeded.
func (w *AuthEpochs) Polls() uint64 { return w.polls.Load() }

// Run polls every interval (AuthEpochPollInterval when 0) until ctx ends. A failed poll is
// retried at the next tick; meanwhile the caches are bypassed once the last good poll ages.
func (w *AuthEpochs) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = AuthEpochPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, w.maxAge)
		_ = w.Poll(pctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads the epochs changed since the last poll. Only a poll that succeeds makes the caches
// trusted again, for AuthEpochMaxAge from when it began.
func (w *AuthEpochs) Poll(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := w.now()
	changed := map[string]int64{}
	var next string
	caller := ctx
	if err := caller.Err(); err != nil {
		return err
	}
	ctx, cancel := platformScope(ctx)
	defer cancel()
	ctx = untraced(ctx)
	err := w.db.View(ctx, func(tx *Tx) error {
		var rows interface {
			Next() bool
			Scan(...any) error
			Err() error
			Close() error
		}
		var err error
		if w.db.dialect == Postgres {
			// Taken first, so every transaction this poll cannot see yet has an xid at or above it.
			if err := tx.queryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&next); err != nil {
				return err
			}
			rows, err = tx.query(ctx, `SELECT tenant_id, epoch, version FROM auth_epochs WHERE xid >= $1::xid8`, w.cursor)
		} else {
			rows, err = tx.query(ctx, `SELECT tenant_id, epoch, version FROM auth_epochs WHERE version > $1`, w.cursor)
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		top, _ := strconv.ParseInt(w.cursor, 10, 64)
		for rows.Next() {
			var id string
			var epoch, version int64
			if err := rows.Scan(&id, &epoch, &version); err != nil {
				return err
			}
			changed[id] = epoch
			top = max(top, version)
		}
		if w.db.dialect != Postgres {
			next = strconv.FormatInt(top, 10)
		}
		return rows.Err()
	})
	if err == nil && caller.Err() != nil {
		err = caller.Err() // answered, but after the caller stopped waiting: no success
	}
	if err != nil {
		return err
	}
	w.cursor = next
	old := w.state.Load()
	epochs, copied := old.epochs, false
	for id, e := range changed {
		if e > epochs[id] {
			if !copied {
				epochs, copied = make(map[string]int64, len(old.epochs)+len(changed)), true
				for k, v := range old.epochs {
					epochs[k] = v
				}
			}
			epochs[id] = e
		}
	}
	w.state.Store(&epochState{epochs: epochs, goodStart: start})
	w.polls.Add(1)
	return nil
}

// platformScope returns a context that ends with ctx and has its deadline, but carries none of
// its values: the poll must run in the platform scope (row-level security then shows it every
// tenant's epoch), not in the scope of the request whose commit asked for it.
func platformScope(ctx context.Context) (context.Context, context.CancelFunc) {
	out, cancel := context.WithCancel(context.Background())
	if dl, ok := ctx.Deadline(); ok {
		var c2 context.CancelFunc
		out, c2 = context.WithDeadline(out, dl)
		prev := cancel
		cancel = func() { c2(); prev() }
	}
	stop := context.AfterFunc(ctx, cancel)
	return out, func() { stop(); cancel() }
}

// Ticket returns a ticket for a read about to begin. Its stamp is empty (nothing may be cached)
// unless the last successful poll began less than AuthEpochMaxAge ago.
func (w *AuthEpochs) Ticket() AuthTicket {
	st := w.state.Load()
	if !w.fresh(st) {
		return AuthTicket{w: w}
	}
	return AuthTicket{w: w, state: st, gen: w.gen.Load()}
}

func (w *AuthEpochs) fresh(st *epochState) bool {
	return !st.goodStart.IsZero() && w.now().Sub(st.goodStart) < w.maxAge
}

// stamp is the ticket's reading for tenantID, and whether it may be cached.
func (t AuthTicket) stamp(tenantID string) (authStamp, bool) {
	if t.state == nil {
		return authStamp{}, false
	}
	return authStamp{tenant: t.state.epochs[tenantID], platform: t.state.epochs[platformEpoch], gen: t.gen}, true
}

// platformEpoch is the row bumped by platform-wide changes (shared permission rows, built-in
// roles): it invalidates every tenant's entries.
const platformEpoch = "*"

// valid reports whether an entry of tenantID stamped s may still be used.
func (w *AuthEpochs) valid(tenantID string, s authStamp) bool {
	st := w.state.Load()
	return w.fresh(st) && s.gen == w.gen.Load() && st.epochs[tenantID] == s.tenant && st.epochs[platformEpoch] == s.platform
}

// changedHere is called after this node committed a change to authentication state: it polls
// at once so the change is visible on this node before the call that made it returns. If that
// poll fails, everything cached before is dropped instead.
func (w *AuthEpochs) changedHere() {
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Poll(pctx); err != nil {
		w.gen.Add(1)
	}
}

// Invalidate drops every entry loaded so far on this node.
func (w *AuthEpochs) Invalidate() { w.gen.Add(1) }

// authTables are the tables whose rows the cached reads use, with the columns that matter for
// an UPDATE (nil: any). Migration 00038 puts the bumping triggers on exactly these; a statement
// writing one of them marks its transaction, which then polls after commit (changedHere).
// TestAuthEpochs_TriggersCoverAuthTables keeps the two lists equal.
var authTables = map[string][]string{
	"tenants":                     {"status", "data_region", "mfa_required_all", "require_private_key_jwt", "session_idle_seconds", "session_absolute_seconds"},
	"users":                       {"status", "token_version", "must_change_password", "partner_id", "tenant_id"},
	"person_keys":                 {"tenant_id", "person_id"},
	"user_roles":                  nil,
	"user_permissions":            nil,
	"roles":                       nil,
	"role_permissions":            nil,
	"field_policies":              nil,
	"permissions":                 nil,
	"mfa_factors":                 {"active", "type", "tenant_id", "user_id"},
	"sessions":                    {"revoked_at", "revoked_reason", "step_up_at", "amr", "reauth_at", "token_hash", "token_version", "dpop_jkt", "idle_timeout_s", "absolute_expires_at", "client_id", "parent_id", "scope", "auth_time", "tenant_id", "user_id"},
	"service_accounts":            {"status", "clearance", "ip_allowlist", "expires_at", "partner_id", "client_id", "tenant_id"},
	"service_account_secrets":     nil,
	"service_account_permissions": nil,
}

// insertBumpsNothing are the auth tables whose new rows nobody can have cached: a new session,
// a new shared permission row (migration 00038 has no INSERT trigger on them either).
var insertBumpsNothing = map[string]bool{"sessions": true, "permissions": true}

// AuthTables lists the tables whose changes bump the authentication-state epochs (tests).
func AuthTables() []string {
	out := make([]string, 0, len(authTables))
	for t := range authTables {
		out = append(out, t)
	}
	return out
}

var (
	writeRE = regexp.MustCompile(`(?is)\b(insert\s+(?:or\s+\w+\s+)?into|update|delete\s+from)\s+(\w+)`)
	setRE   = regexp.MustCompile(`(?is)\bupdate\s+(\w+)\s+set\s+(.*?)(?:\bwhere\b|\breturning\b|$)`)
	colRE   = regexp.MustCompile(`(?s)(?:^|,)\s*(\w+)\s*=`)
	// writesAuth caches the classification of each statement text (statements are constants).
	writesAuth sync.Map
)

// writesAuthState reports whether the statement q may change authentication state: it writes
// one of authTables, and for an UPDATE sets a column that matters. It errs towards yes (a
// needless poll costs a query; a missed one would leave this node's caches stale until the next
// tick).
func writesAuthState(q string) bool {
	if v, ok := writesAuth.Load(q); ok {
		return v.(bool)
	}
	v := classifyWrite(q)
	writesAuth.Store(q, v)
	return v
}

func classifyWrite(q string) bool {
	for _, m := range writeRE.FindAllStringSubmatch(q, -1) {
		table := strings.ToLower(m[2])
		cols, ok := authTables[table]
		if !ok {
			continue
		}
		op := strings.ToLower(m[1])
		if strings.HasPrefix(op, "insert") && insertBumpsNothing[table] {
			continue
		}
		if op != "update" || cols == nil {
			return true
		}
		// The SET list of this table's UPDATE: a statement may update other tables first (a
		// WITH of several writes).
		found := false
		for _, set := range setRE.FindAllStringSubmatch(q, -1) {
			if !strings.EqualFold(set[1], table) {
				continue
			}
			found = true
			for _, c := range colRE.FindAllStringSubmatch(set[2], -1) {
				for _, w := range cols {
					if strings.EqualFold(c[1], w) {
						return true
					}
				}
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// Caching reports whether what is read under t may be cached (a fresh poll, no own write).
func (t AuthTicket) Caching() bool { return t.state != nil }

// AuthEpoch reads the tenant's authentication-state epoch from the database (0 before its first
// change); "*" is the platform's.
func (tx *Tx) AuthEpoch(ctx context.Context, tenantID string) (int64, error) {
	var e int64
	err := tx.queryRow(ctx, `SELECT epoch FROM auth_epochs WHERE tenant_id = $1`, tenantID).Scan(&e)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return e, err
}

// Epoch is the tenant's epoch as of this node's last successful poll.
func (w *AuthEpochs) Epoch(tenantID string) int64 { return w.state.Load().epochs[tenantID] }
