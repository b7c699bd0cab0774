package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
)

// backlog is how many events are committed at once for the sequencers: three rounds of
// sqlstore's default batch (10,000), so a round is long enough to be caught holding the lock.
const backlog = 30_000

// sequencerTakeover kills (SIGKILL) the node caught holding the audit sequencer's lock while a
// backlog waits and clients call every node; the others take over. Then the log has no gap and
// no duplicate, every event is in it, every call a client got an answer for has its
// api.request in it, and `tutela audit verify` passes.
func (c *cluster) sequencerTakeover(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, c.dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sa, err := c.nodes[0].api.clientCredentials(ctx, "/v1/oauth/token", c.fx.ClientID, c.fx.Secret)
	if err != nil {
		t.Fatal(err)
	}

	// Clients call every node until told to stop; a call counts as acknowledged once answered.
	stop := make(chan struct{})
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("mn-%s-%d-%d", n.name, w, i)
					code, _, _, err := n.api.do(ctx, "POST", "/v1/authz/check", bearer(sa),
						map[string]string{"action": "READ", "resource": "audit"}, http.Header{"X-Request-Id": {id}})
					if err == nil && code == http.StatusOK {
						mu.Lock()
						acked = append(acked, id)
						mu.Unlock()
					}
				}
			}()
		}
	}
	stopClients := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopClients()

	events := make([]audit.Event, backlog)
	now := time.Now().UTC()
	for i := range events {
		events[i] = audit.Event{ActorType: audit.ActorSystem, Action: "test.backlog", Outcome: audit.OutcomeSuccess, Time: now}
	}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AuditMany(ctx, events...) }); err != nil {
		t.Fatal(err)
	}

	// The node whose database session holds the sequencing lock (a transaction-scoped advisory
	// lock on the bigint key: classid its high half, objid its low half).
	hi, lo := uint64(sqlstore.LockAuditSequencer)>>32, uint64(sqlstore.LockAuditSequencer)&0xffffffff
	var victim *node
	deadline := time.Now().Add(30 * time.Second)
	for victim == nil {
		var app string
		err := db.SQL().QueryRowContext(ctx, `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1`,
			int64(hi), int64(lo)).Scan(&app) // #nosec G115 -- 32-bit halves
		if err == nil {
			for _, n := range c.nodes {
				if app == "tutela-node-"+n.name {
					victim = n
				}
			}
		}
		if victim == nil {
			if time.Now().After(deadline) {
				t.Fatal("no node was seen holding the sequencer lock")
			}
			time.Sleep(time.Millisecond)
		}
	}
	victim.kill()
	pending, err := db.AuditPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed node %s holding the sequencer lock; %d events pending", victim.name, pending.Count)
	if pending.Count == 0 {
		t.Fatal("nothing was pending when the sequencer was killed: the test proves nothing")
	}
	// Calls go on to the survivors for a moment, then stop.
	time.Sleep(time.Second)
	stopClients()

	deadline = time.Now().Add(90 * time.Second)
	for {
		p, err := db.AuditPending(ctx)
		// AuditPending counts, then reads the oldest pending event in a second statement: when
		// a round sequences the last ones in between, that read finds none (not_found).
		if err != nil && tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Fatal(err)
		}
		if err == nil && p.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still pending after the takeover", p.Count)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var n, distinct, lowest, highest int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*), count(DISTINCT event_id), coalesce(min(idx), 0), coalesce(max(idx), -1) FROM audit_log`).
		Scan(&n, &distinct, &lowest, &highest); err != nil {
		t.Fatal(err)
	}
	if n != distinct || lowest != 0 || highest != n-1 {
		t.Fatalf("audit log of %d entries: %d distinct events, indices %d..%d: a gap or a duplicate", n, distinct, lowest, highest)
	}
	var outside int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)`).
		Scan(&outside); err != nil {
		t.Fatal(err)
	}
	if outside != 0 || n < backlog {
		t.Fatalf("%d events outside the log of %d entries", outside, n)
	}
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	var logged, rows int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(DISTINCT e.request_id), count(*) FROM audit_events e JOIN audit_log l ON l.event_id = e.id
		WHERE e.action = 'api.request' AND e.request_id = ANY($1)`, ids).Scan(&logged, &rows); err != nil {
		t.Fatal(err)
	}
	if logged != int64(len(ids)) || rows != logged {
		t.Fatalf("%d acknowledged calls, %d of them in the log (%d api.request entries)", len(ids), logged, rows)
	}
	t.Logf("log of %d entries, no gap, no duplicate; all %d acknowledged calls logged once", n, len(ids))

	for _, s := range c.nodes {
		if s == victim {
			continue
		}
		var out, errb bytes.Buffer
		if code := run(ctx, []string{"audit", "verify"}, s.env, &out, &errb); code != 0 || !strings.Contains(out.String(), "result:      OK") {
			t.Fatalf("audit verify with node %s's checkpoints: exit %d\n%s%s", s.name, code, out.String(), errb.String())
		}
		break
	}
}
