package monitor

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// AlertType is the "type" of every alert body.
const AlertType = "monitoring.alert"

// Alert is what a sink receives: IDs, counts, times and names, never a secret or personal data
// (no IP address, user agent, e-mail address or name; the audit event IDs lead to those for
// whoever may read the audit log).
type Alert struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	TenantID string `json:"tenant_id,omitempty"`
	// Action is the matching event's audit action; for a threshold rule, the rule's action
	// (which may be a prefix ending in "*").
	Action   string    `json:"action"`
	Count    int       `json:"count"`
	FirstAt  time.Time `json:"first_at"`
	LastAt   time.Time `json:"last_at"`
	EventIDs []string  `json:"event_ids"`
	// For an every-occurrence rule, the event's actor and target IDs and outcome.
	ActorType  string    `json:"actor_type,omitempty"`
	ActorID    string    `json:"actor_id,omitempty"`
	TargetType string    `json:"target_type,omitempty"`
	TargetID   string    `json:"target_id,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// Options tune a Monitor. Zero values are usable.
type Options struct {
	Log *slog.Logger
	// Batch is the most events one round evaluates (default 500).
	Batch int
	// Interval is how long Run waits after a round that found nothing new (default 2 s).
	Interval time.Duration
}

// Monitor evaluates the rules over the sequenced audit log.
type Monitor struct {
	db     *sqlstore.DB
	rules  []Rule
	routes []Route
	log    *slog.Logger
	batch  int
	every  time.Duration
}

// New returns a monitor applying rules and queueing each alert to the routes that want it.
// The rules must be valid (Rules, Validate).
func New(db *sqlstore.DB, rules []Rule, routes []Route, opt Options) *Monitor {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Batch <= 0 {
		opt.Batch = 500
	}
	if opt.Interval <= 0 {
		opt.Interval = 2 * time.Second
	}
	return &Monitor{db: db, rules: rules, routes: routes, log: opt.Log, batch: opt.Batch, every: opt.Interval}
}

// Run evaluates rounds until ctx ends: straight away while rounds are full, after Interval
// otherwise. Errors are logged and the round is tried again; the cursor did not move.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, _, err := m.Step(ctx)
		if err != nil && ctx.Err() == nil {
			m.log.Error("monitoring round failed; retrying", "code", tutela.ErrorCode(err), "err", err)
		}
		if err == nil && n == m.batch {
			t.Reset(0)
		} else {
			t.Reset(m.every)
		}
	}
}

// Step evaluates the next batch of sequenced events in one transaction: under the monitoring
// lock (another node holding it: nothing to do), it reads the events after the cursor, updates
// the threshold windows, queues one delivery job per alert and route, and moves the cursor past
// the batch. Either all of that commits or none of it, so an event is never evaluated twice
// nor skipped, and an alert decided is always queued. It returns how many events it evaluated
// and the alerts raised.
func (m *Monitor) Step(ctx context.Context) (evaluated int, alerts []Alert, err error) {
	err = m.db.Update(ctx, func(tx *sqlstore.Tx) error {
		evaluated, alerts = 0, nil
		ok, err := tx.TryMonitorLock(ctx)
		if err != nil || !ok {
			return err
		}
		next, existed, err := tx.MonitorCursor(ctx)
		if err != nil || !existed {
			return err // first round: the cursor now marks the end of the log
		}
		events, err := tx.MonitorEvents(ctx, next, m.batch)
		if err != nil || len(events) == 0 {
			return err
		}
		windows := map[[2]string]*sqlstore.MonitorWindow{}
		for i := range events {
			e := &events[i]
			for j := range m.rules {
				r := &m.rules[j]
				if !matches(r, e) {
					continue
				}
				if !threshold(r) {
					alerts = append(alerts, occurrence(r, e, tx.Now()))
					continue
				}
				key := [2]string{r.Name, e.TenantID}
				w := windows[key]
				if w == nil {
					if w, err = tx.MonitorWindow(ctx, r.Name, e.TenantID); err != nil {
						return err
					}
					windows[key] = w
				}
				if fired := observe(r, w, e); fired != nil {
					alerts = append(alerts, burst(r, e.TenantID, fired, tx.Now()))
				}
			}
		}
		for _, w := range windows {
			if err := tx.SaveMonitorWindow(ctx, w); err != nil {
				return err
			}
		}
		for i := range alerts {
			if err := m.enqueue(ctx, tx, &alerts[i]); err != nil {
				return err
			}
		}
		evaluated = len(events)
		return tx.SetMonitorCursor(ctx, events[len(events)-1].Index+1)
	})
	if err != nil {
		return 0, nil, err
	}
	for _, a := range alerts {
		m.log.Info("security alert", "alert_id", a.ID, "rule", a.Rule, "severity", a.Severity, "tenant", a.TenantID, "count", a.Count)
	}
	return evaluated, alerts, nil
}

func occurrence(r *Rule, e *sqlstore.MonitorEvent, now time.Time) Alert {
	return Alert{ID: tutela.NewID(), Type: AlertType, Rule: r.Name, Severity: r.Severity, TenantID: e.TenantID, Action: e.Action,
		Count: 1, FirstAt: e.Time, LastAt: e.Time, EventIDs: []string{e.ID}, ActorType: e.ActorType, ActorID: e.ActorID,
		TargetType: e.TargetType, TargetID: e.TargetID, Outcome: e.Outcome, CreatedAt: now}
}

func burst(r *Rule, tenantID string, fired []sqlstore.WindowEvent, now time.Time) Alert {
	ids := make([]string, len(fired))
	for i, f := range fired {
		ids[i] = f.ID
	}
	return Alert{ID: tutela.NewID(), Type: AlertType, Rule: r.Name, Severity: r.Severity, TenantID: tenantID, Action: r.Action,
		Count: len(fired), FirstAt: fired[0].Time, LastAt: fired[len(fired)-1].Time, EventIDs: ids, CreatedAt: now}
}

// enqueue adds one delivery job per route that wants the alert. The body is fixed now, so every
// retry sends the same bytes.
func (m *Monitor) enqueue(ctx context.Context, tx *sqlstore.Tx, a *Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	for _, r := range m.routes {
		if !r.Wants(a.Rule) {
			continue
		}
		kind, ok := jobKinds[r.Sink]
		if !ok {
			return tutela.Errorf(tutela.EINVALID, "monitor: unknown sink %q", r.Sink)
		}
		// Platform jobs (no tenant): an alert is the operator's, whichever tenant it is about,
		// and a node bound to one region must still deliver alerts about every region.
		if err := tx.EnqueueJob(ctx, &sqlstore.Job{Kind: kind, Payload: body, MaxAttempts: deliveryAttempts}); err != nil {
			return err
		}
	}
	return nil
}

// Start creates the cursor at the end of the log if no node has yet, so that monitoring covers
// everything from the moment the first node with a sink starts, whatever happens before its
// first round. Another node holding the lock has the cursor already.
func (m *Monitor) Start(ctx context.Context) error {
	return m.db.Update(ctx, func(tx *sqlstore.Tx) error {
		ok, err := tx.TryMonitorLock(ctx)
		if err != nil || !ok {
			return err
		}
		_, _, err = tx.MonitorCursor(ctx)
		return err
	})
}
