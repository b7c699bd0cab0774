package config

import (
	"net"
	"slices"
	"time"

	"tutela"
	"tutela/monitor/rules"
)

// Monitoring configures security alerting (issue 19, docs/monitoring.md): rules over the audit
// log and the sinks their alerts go to. With no sink configured monitoring is off and its
// cursor does not move, so a node that turns it on later alerts on what happened meanwhile.
type Monitoring struct {
	// Rules are added to the built-in ones (a rule named like a built-in replaces it), each as
	// space-separated key=value pairs: "name=exports action=subject.export_* threshold=5 window=10m".
	Rules []string `koanf:"rules"`
	// DisableRules names built-in rules to switch off.
	DisableRules []string `koanf:"disable_rules"`
	// Interval is how long a node waits between rounds when the log has nothing new.
	Interval time.Duration   `koanf:"interval"`
	Sinks    MonitoringSinks `koanf:"sinks"`
}

// MonitoringSinks are the alert destinations, one of each kind; each takes the alerts of the
// rules it lists, or of every rule when it lists none.
type MonitoringSinks struct {
	Webhook WebhookSink `koanf:"webhook"`
	Syslog  SyslogSink  `koanf:"syslog"`
	Email   EmailSink   `koanf:"email"`
}

// WebhookSink POSTs signed alerts; its secret is TUTELA_MONITORING_SINKS_WEBHOOK_SECRET[_FILE].
type WebhookSink struct {
	URL   string   `koanf:"url"`
	Rules []string `koanf:"rules"`
}

// SyslogSink sends RFC 5424 alerts over TLS (RFC 5425) to Addr (host:port, port 6514 by
// default), verifying the collector's certificate against CAFile (the system roots when empty)
// and ServerName (the host of Addr when empty), presenting CertFile/KeyFile when set.
type SyslogSink struct {
	Addr       string   `koanf:"addr"`
	CAFile     string   `koanf:"ca_file"`
	ServerName string   `koanf:"server_name"`
	CertFile   string   `koanf:"cert_file"`
	KeyFile    string   `koanf:"key_file"`
	Rules      []string `koanf:"rules"`
}

// EmailSink e-mails alerts to To through smtp.
type EmailSink struct {
	To    []string `koanf:"to"`
	Rules []string `koanf:"rules"`
}

func defaultMonitoring() Monitoring { return Monitoring{Interval: 2 * time.Second} }

// MonitoringOn reports whether any sink is configured.
func (c *Config) MonitoringOn() bool {
	s := c.Monitoring.Sinks
	return s.Webhook.URL != "" || s.Syslog.Addr != "" || len(s.Email.To) > 0
}

// mailWarning says what goes unsent without smtp.addr: the incident breach-clock reminders to
// their owners, and e-mail alerts (monitoring.sinks.email, refused by Validate without it). The
// reminders still reach tenant webhooks subscribed to them and, as the built-in rules
// incident_reminder and incident_overdue, the monitoring webhook and syslog sinks; without any
// of those sinks the warning says the operator hears nothing.
func (c *Config) mailWarning() string {
	if c.SMTP.Addr != "" {
		return ""
	}
	msg := "smtp.addr is not set: nothing is e-mailed — incident breach-clock reminders (incident.reminder, incident.overdue) " +
		"are not e-mailed to the incident owners, and monitoring.sinks.email cannot be used"
	if s := c.Monitoring.Sinks; s.Webhook.URL == "" && s.Syslog.Addr == "" {
		return msg + "; no monitoring webhook or syslog sink is configured either, so the breach clock reaches only tenant " +
			"webhooks subscribed to incident.reminder/incident.overdue (docs/incidents.md)"
	}
	return msg + "; the monitoring webhook/syslog sinks get them as the rules incident_reminder and incident_overdue " +
		"(unless disabled or not routed to a sink)"
}

// MonitoringRules is the effective rule set (defaults, less those disabled, plus the
// configured) and the problems found.
func (c *Config) MonitoringRules() ([]rules.Rule, []string) {
	return rules.Rules(c.Monitoring.Rules, c.Monitoring.DisableRules)
}

// MonitoringRoutes are the configured sinks with the rules each receives.
func (c *Config) MonitoringRoutes() []rules.Route {
	s := c.Monitoring.Sinks
	var out []rules.Route
	if s.Webhook.URL != "" {
		out = append(out, rules.Route{Sink: rules.SinkWebhook, Rules: s.Webhook.Rules})
	}
	if s.Syslog.Addr != "" {
		out = append(out, rules.Route{Sink: rules.SinkSyslog, Rules: s.Syslog.Rules})
	}
	if len(s.Email.To) > 0 {
		out = append(out, rules.Route{Sink: rules.SinkEmail, Rules: s.Email.Rules})
	}
	return out
}

func (c *Config) validateMonitoring(p *problems) {
	m := c.Monitoring
	rules, list := c.MonitoringRules()
	for _, s := range list {
		p.add("%s", s)
	}
	if m.Interval < 100*time.Millisecond || m.Interval > time.Minute {
		p.add("monitoring.interval: must be between 100ms and 1m")
	}
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	routed := func(key string, want []string) {
		for _, n := range want {
			if !slices.Contains(names, n) {
				p.add("monitoring.sinks.%s.rules: %q is not a rule (built-in or monitoring.rules)", key, n)
			}
		}
	}
	w := m.Sinks.Webhook
	switch {
	case w.URL != "" && !httpsURL(w.URL):
		p.add("monitoring.sinks.webhook.url: must be an https URL (http only on loopback)")
	case w.URL != "" && len(c.MonitoringWebhookSecret.Bytes()) < 16:
		p.add("monitoring.sinks.webhook.url: set TUTELA_MONITORING_SINKS_WEBHOOK_SECRET (or _FILE), at least 16 bytes, " +
			"which the receiver uses to verify each alert's signature")
	case w.URL == "" && !c.MonitoringWebhookSecret.IsZero():
		p.add("TUTELA_MONITORING_SINKS_WEBHOOK_SECRET is set but monitoring.sinks.webhook.url is not")
	}
	routed("webhook", w.Rules)
	s := m.Sinks.Syslog
	if s.Addr != "" {
		host, port, err := net.SplitHostPort(s.Addr)
		if err != nil {
			host, port = s.Addr, "6514"
		}
		if host == "" || port == "" {
			p.add("monitoring.sinks.syslog.addr: must be host:port (port 6514 when omitted)")
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		p.add("monitoring.sinks.syslog: cert_file and key_file go together")
	}
	if s.Addr == "" && (s.CAFile != "" || s.CertFile != "" || s.ServerName != "") {
		p.add("monitoring.sinks.syslog: TLS settings without monitoring.sinks.syslog.addr")
	}
	routed("syslog", s.Rules)
	e := m.Sinks.Email
	for _, to := range e.To {
		if !tutela.ValidEmail(to) {
			p.add("monitoring.sinks.email.to: %q is not an e-mail address", to)
		}
	}
	if len(e.To) > 0 && c.SMTP.Addr == "" {
		p.add("monitoring.sinks.email.to: e-mail alerts need smtp.addr")
	}
	routed("email", e.Rules)
	for _, x := range []struct {
		key   string
		off   bool
		rules []string
	}{{"webhook", w.URL == "", w.Rules}, {"syslog", s.Addr == "", s.Rules}, {"email", len(e.To) == 0, e.Rules}} {
		if x.off && len(x.rules) > 0 {
			p.add("monitoring.sinks.%s.rules: the %s sink is not configured", x.key, x.key)
		}
	}
}
