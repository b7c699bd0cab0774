// Package rules is the configuration form of security alert rules: what a rule is, the
// built-in defaults, and parsing and checking the configured ones. It depends on nothing of
// Tutela's store, so the configuration can check rules (package monitor evaluates them).
package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"tutela"
)

// Severities, in increasing order. They map to syslog severities (monitor's syslog sink).
const (
	SevInfo     = "info"
	SevWarning  = "warning"
	SevCritical = "critical"
)

// Limits on a rule.
const (
	MaxThreshold = 1000
	MaxWindow    = 24 * time.Hour
	maxRuleName  = 64
)

// Rule says which audit events raise an alert.
type Rule struct {
	Name string
	// Action matches the audit action exactly, or every action with a prefix when it ends in
	// "*" ("security.*").
	Action string
	// Outcome, when set, must equal the event's (success, failure, denied, error).
	Outcome string
	// TenantID, when set, limits the rule to one tenant's events.
	TenantID string
	// Details, when set, each name a detail that must be a string equal to one of the values
	// (user.role_grant with role super_admin or program_admin).
	Details map[string][]string
	// Threshold <= 1: every matching event is an alert. Otherwise an alert when Threshold
	// matching events of one tenant fall within Window (a sliding window over the events'
	// times); the rule is then quiet for that tenant for Window, so a burst raises one alert,
	// not one per event past the threshold.
	Threshold int
	Window    time.Duration
	Severity  string
}

// Defaults are the built-in rules (docs/monitoring.md). monitoring.disable_rules turns any of
// them off by name; monitoring.rules adds to them or replaces one of the same name.
func Defaults() []Rule {
	return []Rule{
		{Name: "lockout_burst", Action: "security.account_locked", Threshold: 10, Window: 5 * time.Minute, Severity: SevWarning},
		// One source locked out of many accounts (identity's per source-and-account lock): one
		// attacker's guesses across a tenant's users.
		{Name: "source_lock_burst", Action: "security.source_locked", Threshold: 10, Window: 5 * time.Minute, Severity: SevWarning},
		// One IP address locked out of the whole tenant (identity's per-IP lock): it takes many
		// failures from one address, so each is worth an alert.
		{Name: "ip_locked", Action: "security.ip_locked", Severity: SevWarning},
		// `tutela recover super-admin` created a super-admin from the command line.
		{Name: "super_admin_recovery", Action: "admin.super_admin_recovery", Severity: SevCritical},
		{Name: "refresh_token_reuse", Action: "security.refresh_reuse_detected", Severity: SevCritical},
		{Name: "admin_role_granted", Action: "user.role_grant", Details: map[string][]string{"role": {"super_admin", "program_admin"}},
			Severity: SevWarning},
		{Name: "audit_verify_failed", Action: ActionAuditVerifyFailed, Outcome: "failure", Severity: SevCritical},
		{Name: "key_retired", Action: "key.retire", Severity: SevWarning},
		{Name: "mfa_reset_by_admin", Action: "security.mfa_reset_by_admin", Severity: SevWarning},
		{Name: "passkey_cloned", Action: "mfa.webauthn_cloned", Severity: SevCritical},
		// A receiver refused shipped audit entries as not verifying (auditship.ActionShipRefused).
		{Name: "audit_ship_refused", Action: "audit.ship_refused", Severity: SevCritical},
		// The breach clock (sqlstore.SweepIncidents): a reminder to notify the authority, and a
		// deadline passed without the notification recorded. Owners are e-mailed only with SMTP;
		// these reach the webhook and syslog sinks whatever the mail setup.
		{Name: "incident_reminder", Action: "incident.reminder", Severity: SevWarning},
		{Name: "incident_overdue", Action: "incident.overdue", Severity: SevCritical},
	}
}

// ActionAuditVerifyFailed is the audit action of the result `tutela audit verify` records for
// the compliance report (sqlstore.RecordOperation); a log that does not verify is its outcome
// failure.
const ActionAuditVerifyFailed = "compliance.audit_verified"

// Validate reports what is wrong with r.
func (r *Rule) Validate() error {
	switch {
	case r.Name == "" || len(r.Name) > maxRuleName || strings.Trim(r.Name, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != "":
		return fmt.Errorf("rule name %q must be 1-%d characters of a-z, 0-9, \"_\", \"-\" and \".\"", r.Name, maxRuleName)
	case r.Action == "" || r.Action == "*" || strings.Contains(strings.TrimSuffix(r.Action, "*"), "*") || !tutela.ValidText(r.Action):
		return fmt.Errorf("rule %s: action must be an audit action, or a prefix ending in * (not * alone)", r.Name)
	case r.TenantID != "" && !tutela.ValidID(r.TenantID):
		return fmt.Errorf("rule %s: tenant is not a tenant ID", r.Name)
	case r.Threshold < 0 || r.Threshold > MaxThreshold:
		return fmt.Errorf("rule %s: threshold must be 0-%d", r.Name, MaxThreshold)
	case r.Threshold > 1 && (r.Window <= 0 || r.Window > MaxWindow):
		return fmt.Errorf("rule %s: a threshold needs a window of up to %s", r.Name, MaxWindow)
	case r.Threshold <= 1 && r.Window != 0:
		return fmt.Errorf("rule %s: a window needs a threshold of 2 or more", r.Name)
	}
	switch r.Severity {
	case SevInfo, SevWarning, SevCritical:
	default:
		return fmt.Errorf("rule %s: severity must be info, warning or critical", r.Name)
	}
	switch r.Outcome {
	case "", "success", "failure", "denied", "error":
	default:
		return fmt.Errorf("rule %s: outcome must be success, failure, denied or error", r.Name)
	}
	return nil
}

// ParseRule reads a rule from its configuration form: space-separated key=value pairs, e.g.
// "name=export_burst action=subject.export_download threshold=5 window=10m severity=warning".
// Keys: name, action, outcome, tenant, threshold, window, severity (default warning) and
// detail.<name>=<value>|<value>...
func ParseRule(s string) (Rule, error) {
	r := Rule{Severity: SevWarning}
	for f := range strings.FieldsSeq(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return r, fmt.Errorf("rule %q: %q is not key=value", s, f)
		}
		switch {
		case k == "name":
			r.Name = v
		case k == "action":
			r.Action = v
		case k == "outcome":
			r.Outcome = v
		case k == "tenant":
			r.TenantID = v
		case k == "severity":
			r.Severity = v
		case k == "threshold":
			n, err := strconv.Atoi(v)
			if err != nil {
				return r, fmt.Errorf("rule %q: threshold %q is not a number", s, v)
			}
			r.Threshold = n
		case k == "window":
			d, err := time.ParseDuration(v)
			if err != nil {
				return r, fmt.Errorf("rule %q: window %q is not a duration", s, v)
			}
			r.Window = d
		case strings.HasPrefix(k, "detail.") && len(k) > len("detail."):
			if r.Details == nil {
				r.Details = map[string][]string{}
			}
			r.Details[strings.TrimPrefix(k, "detail.")] = strings.Split(v, "|")
		default:
			return r, fmt.Errorf("rule %q: unknown key %q", s, k)
		}
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}

// Rules builds the rule set: the defaults less those disabled, then the configured rules (a
// configured rule replaces a default of the same name). Every problem is reported.
func Rules(configured, disabled []string) ([]Rule, []string) {
	var problems []string
	defaults := Defaults()
	known := map[string]bool{}
	for _, d := range defaults {
		known[d.Name] = true
	}
	for _, n := range disabled {
		if !known[n] {
			problems = append(problems, fmt.Sprintf("monitoring.disable_rules: %q is not a built-in rule", n))
		}
	}
	var out []Rule
	for _, d := range defaults {
		if !slices.Contains(disabled, d.Name) {
			out = append(out, d)
		}
	}
	seen := map[string]bool{}
	for _, s := range configured {
		r, err := ParseRule(s)
		if err != nil {
			problems = append(problems, "monitoring.rules: "+err.Error())
			continue
		}
		if seen[r.Name] {
			problems = append(problems, fmt.Sprintf("monitoring.rules: rule %q is defined twice", r.Name))
			continue
		}
		seen[r.Name] = true
		out = slices.DeleteFunc(out, func(x Rule) bool { return x.Name == r.Name })
		out = append(out, r)
	}
	return out, problems
}

// Sinks.
const (
	SinkWebhook = "webhook"
	SinkSyslog  = "syslog"
	SinkEmail   = "email"
)

// Route sends the alerts of some rules to one sink.
type Route struct {
	Sink string // SinkWebhook, SinkSyslog, SinkEmail
	// Rules names the rules whose alerts the sink receives; empty: every rule.
	Rules []string
}

// Wants reports whether the sink receives the alerts of rule.
func (r Route) Wants(rule string) bool { return len(r.Rules) == 0 || slices.Contains(r.Rules, rule) }
