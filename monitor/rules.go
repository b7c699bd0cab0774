// Package monitor turns security-relevant audit events into alerts. It reads the sequenced
// audit log through a durable cursor (sqlstore/monitor.go), matches each event against rules
// (built-in defaults plus monitoring.rules) and queues one delivery job per alert and sink
// (webhook, syslog, e-mail) in the same transaction that advances the cursor: an event is
// evaluated exactly once across restarts and nodes, and an alert, once decided, is delivered at
// least once (docs/monitoring.md).
package monitor

import (
	"slices"
	"strings"
	"time"

	"tutela/monitor/rules"
	"tutela/sqlstore"
)

// The rules' configuration form lives in package rules (the configuration checks it without
// the store); these are its names here.
type (
	Rule  = rules.Rule
	Route = rules.Route
)

const (
	SevInfo                 = rules.SevInfo
	SevWarning              = rules.SevWarning
	SevCritical             = rules.SevCritical
	MaxThreshold            = rules.MaxThreshold
	MaxWindow               = rules.MaxWindow
	ActionAuditVerifyFailed = rules.ActionAuditVerifyFailed
	SinkWebhook             = rules.SinkWebhook
	SinkSyslog              = rules.SinkSyslog
	SinkEmail               = rules.SinkEmail
)

// Defaults, ParseRule and Rules: see package rules.
var (
	Defaults  = rules.Defaults
	ParseRule = rules.ParseRule
	Rules     = rules.Rules
)

// matches reports whether e is one of the events r counts.
func matches(r *Rule, e *sqlstore.MonitorEvent) bool {
	if e.Action == "" { // pruned body: nothing to match on
		return false
	}
	if p, ok := strings.CutSuffix(r.Action, "*"); ok {
		if !strings.HasPrefix(e.Action, p) {
			return false
		}
	} else if e.Action != r.Action {
		return false
	}
	if (r.Outcome != "" && e.Outcome != r.Outcome) || (r.TenantID != "" && e.TenantID != r.TenantID) {
		return false
	}
	for k, vals := range r.Details {
		s, ok := e.Details[k].(string)
		if !ok || !slices.Contains(vals, s) {
			return false
		}
	}
	return true
}

// threshold reports whether r counts events in a window.
func threshold(r *Rule) bool { return r.Threshold > 1 }

// observe adds e to w (r's window for e's tenant) and reports whether the rule fires: the
// events inside the window before e's time are kept (at most Threshold), and when there are
// Threshold of them, the alert takes them and the window goes quiet until e's time + Window.
// Events during the quiet period are not counted. Pure: the caller loads and saves w.
func observe(r *Rule, w *sqlstore.MonitorWindow, e *sqlstore.MonitorEvent) []sqlstore.WindowEvent {
	if e.Time.Before(w.QuietUntil) {
		return nil
	}
	w.QuietUntil = time.Time{}
	cut := e.Time.Add(-r.Window)
	kept := w.Events[:0]
	for _, x := range w.Events {
		if x.Time.After(cut) {
			kept = append(kept, x)
		}
	}
	kept = append(kept, sqlstore.WindowEvent{ID: e.ID, Time: e.Time})
	if len(kept) > r.Threshold {
		kept = kept[len(kept)-r.Threshold:]
	}
	w.Events = kept
	if len(kept) < r.Threshold {
		return nil
	}
	fired := slices.Clone(kept)
	w.Events, w.QuietUntil = nil, e.Time.Add(r.Window)
	return fired
}
