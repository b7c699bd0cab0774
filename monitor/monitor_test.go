package monitor_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela/incidents"
	"tutela/monitor"
	"tutela/sqlstore"
)

func defaults(t *testing.T, e *env) *monitor.Monitor {
	t.Helper()
	return monitor.New(e.db, monitor.Defaults(), nil, monitor.Options{})
}

func TestThreshold_TenLockoutsInFiveMinutesFireOnce(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		m := defaults(t, e)
		var all []monitor.Alert
		// Ten lockouts 30 s apart (4 min 30 s), each round evaluated as it happens: the window
		// lives in the store between rounds.
		for i := range 10 {
			if i > 0 {
				e.clock.Add(30 * time.Second)
			}
			e.lockout(t, e.a, e.ua)
			all = append(all, e.step(t, m)...)
		}
		if len(all) != 1 {
			t.Fatalf("%d alerts, want 1: %+v", len(all), all)
		}
		a := all[0]
		if a.Rule != "lockout_burst" || a.TenantID != e.a || a.Count != 10 || len(a.EventIDs) != 10 ||
			!a.FirstAt.Equal(t0) || !a.LastAt.Equal(t0.Add(270*time.Second)) || a.Action != "security.account_locked" ||
			a.Severity != monitor.SevWarning {
			t.Fatalf("alert %+v", a)
		}
		// More lockouts inside the window after the alert: the same burst, no second alert.
		for range 12 {
			e.clock.Add(10 * time.Second)
			e.lockout(t, e.a, e.ua)
		}
		if more := e.step(t, m); len(more) != 0 {
			t.Fatalf("alerted again inside the window: %+v", more)
		}
		// A burst after the quiet period is a new alert.
		e.clock.Add(5 * time.Minute)
		for range 10 {
			e.clock.Add(time.Second)
			e.lockout(t, e.a, e.ua)
		}
		if again := e.step(t, m); len(again) != 1 || again[0].Count != 10 {
			t.Fatalf("second burst: %+v", again)
		}
	})
}

func TestThreshold_NineLockoutsDoNotFire(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		for range 9 {
			e.clock.Add(10 * time.Second)
			e.lockout(t, e.a, e.ua)
		}
		if got := e.step(t, defaults(t, e)); len(got) != 0 {
			t.Fatalf("9 lockouts alerted: %+v", got)
		}
	})
}

func TestThreshold_TenLockoutsOverSixMinutesDoNotFire(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		m := defaults(t, e)
		var all []monitor.Alert
		for i := range 10 {
			if i > 0 {
				e.clock.Add(40 * time.Second) // 10 events over 6 minutes: no 5 minutes hold 10
			}
			e.lockout(t, e.a, e.ua)
			if i%3 == 0 {
				all = append(all, e.step(t, m)...)
			}
		}
		all = append(all, e.step(t, m)...)
		if len(all) != 0 {
			t.Fatalf("alerted: %+v", all)
		}
	})
}

// One source locked out of ten accounts of a tenant within five minutes (identity's
// source_locked, one per source and account) is one source_lock_burst alert; nine are none.
func TestThreshold_SourceLockBurst(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		m := defaults(t, e)
		lock := func() {
			e.update(t, func(tx *sqlstore.Tx) error {
				return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: e.a, UserID: e.ua, Kind: "source_locked", IP: "198.51.100.23"})
			})
		}
		for range 9 {
			e.clock.Add(20 * time.Second)
			lock()
		}
		if got := e.step(t, m); len(got) != 0 {
			t.Fatalf("9 source locks alerted: %+v", got)
		}
		e.clock.Add(20 * time.Second)
		lock()
		got := e.step(t, m)
		if len(got) != 1 || got[0].Rule != "source_lock_burst" || got[0].TenantID != e.a || got[0].Count != 10 ||
			got[0].Action != "security.source_locked" {
			t.Fatalf("alerts %+v", got)
		}
	})
}

// Windows are per tenant: five lockouts in each of two tenants are not ten in one.
func TestThreshold_CountsPerTenant(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		for range 5 {
			e.clock.Add(time.Second)
			e.lockout(t, e.a, e.ua)
			e.lockout(t, e.b, e.ub)
		}
		if got := e.step(t, defaults(t, e)); len(got) != 0 {
			t.Fatalf("alerted across tenants: %+v", got)
		}
	})
}

func TestTenantRule_DoesNotFireOnAnotherTenantsEvents(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		r, err := monitor.ParseRule("name=acme_grants action=user.role_* tenant=" + e.a + " severity=info")
		if err != nil {
			t.Fatal(err)
		}
		m := monitor.New(e.db, []monitor.Rule{r}, nil, monitor.Options{})
		e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(e.b).Grant(ctx, e.ub, "operator", "", nil) })
		if got := e.step(t, m); len(got) != 0 {
			t.Fatalf("fired on the other tenant: %+v", got)
		}
		e.update(t, func(tx *sqlstore.Tx) error { return tx.Users(e.a).Grant(ctx, e.ua, "operator", "", nil) })
		got := e.step(t, m)
		if len(got) != 1 || got[0].TenantID != e.a || got[0].Action != "user.role_grant" || got[0].TargetID != e.ua {
			t.Fatalf("alerts %+v", got)
		}
	})
}

// Each built-in every-occurrence rule fires on the audit action the code records for it, once.
func TestDefaults_FireOnTheActionsTheCodeRecords(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		e.update(t, func(tx *sqlstore.Tx) error {
			for _, err := range []error{
				tx.Users(e.a).Grant(ctx, e.ua, "program_admin", "", nil),
				tx.Users(e.a).Grant(ctx, e.ua, "operator", "", nil), // not an admin role
				tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: e.a, UserID: e.ua, Kind: "refresh_reuse_detected"}),
				tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: e.a, UserID: e.ua, Kind: "mfa_reset_by_admin"}),
				tx.Record(ctx, "key.retire", e.a, "keyset", "totp", "", nil),
				tx.Record(ctx, "mfa.webauthn_cloned", e.a, "user", e.ua, "failure", nil),
				tx.Record(ctx, monitor.ActionAuditVerifyFailed, "", "audit_log", "", "failure", map[string]any{"failures": 1}),
				tx.Record(ctx, monitor.ActionAuditVerifyFailed, "", "audit_log", "", "success", nil), // a log that verified
				tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: e.a, Kind: "ip_locked", IP: "192.0.2.1"}),
				tx.Record(ctx, "admin.super_admin_recovery", e.a, "user", e.ua, "", map[string]any{"reason": "lost"}),
				tx.Record(ctx, "user.update", e.a, "user", e.ua, "", nil), // no rule
			} {
				if err != nil {
					return err
				}
			}
			return nil
		})
		got := e.step(t, defaults(t, e))
		var rules []string
		for _, a := range got {
			rules = append(rules, a.Rule)
		}
		slices.Sort(rules)
		want := []string{"admin_role_granted", "audit_verify_failed", "ip_locked", "key_retired", "mfa_reset_by_admin", "passkey_cloned",
			"refresh_token_reuse", "super_admin_recovery"}
		if !slices.Equal(rules, want) {
			t.Fatalf("rules fired %v, want %v", rules, want)
		}
	})
}

// The breach clock's reminders reach the sinks: the sweep's incident.reminder is an
// incident_reminder alert (warning) and its incident.overdue an incident_overdue alert
// (critical), each naming the incident, whatever the mail setup.
func TestDefaults_IncidentClockAlerts(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		var id string
		e.update(t, func(tx *sqlstore.Tx) error {
			inc, err := incidents.Open(ctx, tx, incidents.OpenRequest{Title: "Lost laptop", Description: "d", Actor: "monitor"})
			if err != nil {
				return err
			}
			id = inc.ID
			_, err = tx.Incidents().ConfirmBreach(ctx, id, time.Time{})
			return err
		})
		m := defaults(t, e)
		if got := e.step(t, m); len(got) != 0 {
			t.Fatalf("alerts before any reminder: %+v", got)
		}
		sweep := func() {
			e.update(t, func(tx *sqlstore.Tx) error { _, err := tx.SweepIncidents(ctx); return err })
		}
		e.clock.Add(24 * time.Hour)
		sweep()
		got := e.step(t, m)
		if len(got) != 1 || got[0].Rule != "incident_reminder" || got[0].Severity != monitor.SevWarning ||
			got[0].TargetID != id || got[0].TenantID != "" {
			t.Fatalf("24 h: %+v", got)
		}
		e.clock.Add(48 * time.Hour)
		sweep()
		got = e.step(t, m)
		if len(got) != 1 || got[0].Rule != "incident_overdue" || got[0].Severity != monitor.SevCritical || got[0].TargetID != id {
			t.Fatalf("72 h: %+v", got)
		}
	})
}

// A node that stops between rounds (here: a new Monitor on the same store, small batches)
// neither skips an event nor evaluates one twice.
func TestCursor_NothingMissedOrRepeatedAcrossRestart(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		r, _ := monitor.ParseRule("name=every_lockout action=security.account_locked")
		for range 7 {
			e.clock.Add(time.Second)
			e.lockout(t, e.a, e.ua)
		}
		e.sequence(t)
		first := monitor.New(e.db, []monitor.Rule{r}, nil, monitor.Options{Batch: 3})
		n, alerts, err := first.Step(ctx)
		if err != nil || n != 3 || len(alerts) != 3 {
			t.Fatalf("first round: %d events, %d alerts, %v", n, len(alerts), err)
		}
		seen := map[string]bool{}
		for _, a := range alerts {
			seen[a.EventIDs[0]] = true
		}
		restarted := monitor.New(e.db, []monitor.Rule{r}, nil, monitor.Options{Batch: 3})
		for _, a := range e.step(t, restarted) {
			if seen[a.EventIDs[0]] {
				t.Fatalf("event %s alerted twice", a.EventIDs[0])
			}
			seen[a.EventIDs[0]] = true
		}
		if len(seen) != 7 {
			t.Fatalf("%d events alerted, want 7", len(seen))
		}
	})
}

// Alerts carry IDs and counts only: not the IP address the lockout recorded, nor the e-mail.
func TestAlert_CarriesNoPersonalData(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		for range 10 {
			e.lockout(t, e.a, e.ua)
		}
		got := e.step(t, defaults(t, e))
		if len(got) != 1 {
			t.Fatalf("%d alerts", len(got))
		}
		b, _ := json.Marshal(got[0])
		for _, pd := range []string{"198.51.100.23", "acme@example.org"} {
			if strings.Contains(string(b), pd) {
				t.Fatalf("alert holds %q: %s", pd, b)
			}
		}
	})
}

func TestParseRule(t *testing.T) {
	t.Parallel()
	r, err := monitor.ParseRule("name=exports action=subject.export_* outcome=success threshold=5 window=10m severity=critical detail.format=csv|json")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "exports" || r.Action != "subject.export_*" || r.Threshold != 5 || r.Window != 10*time.Minute ||
		r.Severity != "critical" || !slices.Equal(r.Details["format"], []string{"csv", "json"}) {
		t.Fatalf("%+v", r)
	}
	for _, bad := range []string{
		"",
		"action=user.role_grant",      // no name
		"name=x",                      // no action
		"name=x action=*",             // everything
		"name=x action=us*er",         // * inside
		"name=X action=a",             // upper case name
		"name=x action=a threshold=5", // threshold without window
		"name=x action=a window=5m",   // window without threshold
		"name=x action=a threshold=2000 window=5m", // over MaxThreshold
		"name=x action=a threshold=5 window=48h",   // over MaxWindow
		"name=x action=a severity=loud",            // severity
		"name=x action=a outcome=maybe",            // outcome
		"name=x action=a tenant=acme",              // not an ID
		"name=x action=a colour=red",               // unknown key
		"name=x action=a threshold=five window=5m", // not a number
		"name=x action=a threshold=5 window=soon",  // not a duration
		"name=x action",                            // not key=value
	} {
		if _, err := monitor.ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
	}
}

func TestRules_DefaultsDisabledAndReplaced(t *testing.T) {
	t.Parallel()
	rules, problems := monitor.Rules([]string{"name=lockout_burst action=security.account_locked threshold=3 window=1m"},
		[]string{"key_retired"})
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	var names []string
	for _, r := range rules {
		names = append(names, r.Name)
		if r.Name == "lockout_burst" && r.Threshold != 3 {
			t.Fatalf("configured rule did not replace the default: %+v", r)
		}
	}
	if slices.Contains(names, "key_retired") || len(names) != len(monitor.Defaults())-1 {
		t.Fatalf("rules %v", names)
	}
	_, problems = monitor.Rules([]string{"name=a action=x", "name=a action=y", "bad"}, []string{"no_such_rule"})
	if len(problems) != 3 {
		t.Fatalf("problems %v, want 3 (duplicate, unparsable, unknown default)", problems)
	}
}

// Two nodes running rounds at the same time: every event is alerted exactly once (PostgreSQL:
// the advisory lock makes one of them skip; SQLite: writers take turns).
func TestTwoNodes_EachEventAlertedOnce(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *env) {
		r, _ := monitor.ParseRule("name=every_lockout action=security.account_locked")
		for range 20 {
			e.lockout(t, e.a, e.ua)
		}
		e.sequence(t)
		results := make(chan []monitor.Alert, 2)
		errs := make(chan error, 2)
		for range 2 {
			node := monitor.New(e.db, []monitor.Rule{r}, nil, monitor.Options{Batch: 3})
			go func() {
				var mine []monitor.Alert
				for range 10 {
					_, alerts, err := node.Step(ctx)
					if err != nil {
						errs <- err
						return
					}
					mine = append(mine, alerts...)
				}
				errs <- nil
				results <- mine
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		all := append(<-results, <-results...)
		all = append(all, e.step(t, monitor.New(e.db, []monitor.Rule{r}, nil, monitor.Options{}))...)
		seen := map[string]bool{}
		for _, a := range all {
			if seen[a.EventIDs[0]] {
				t.Fatalf("event %s alerted twice", a.EventIDs[0])
			}
			seen[a.EventIDs[0]] = true
		}
		if len(seen) != 20 {
			t.Fatalf("%d events alerted, want 20", len(seen))
		}
	})
}
