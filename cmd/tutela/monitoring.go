package main

import (
	"context"
	"fmt"

	"tutela/config"
	"tutela/monitor"
	"tutela/syslog"
)

// startMonitoring registers the alert delivery kinds on the queue (always: alerts queued while
// a sink was configured are then dropped and logged rather than left pending when it is not)
// and, when a sink is configured, builds the monitor Serve runs and places its cursor. With no
// sink the monitor does not run and the cursor stays where it was: turned on again, it alerts
// on what happened meanwhile rather than silently skipping it (docs/monitoring.md).
func (m *Main) startMonitoring(ctx context.Context, cfg *config.Config) error {
	var s monitor.Sinks
	sc := cfg.Monitoring.Sinks
	if sc.Webhook.URL != "" {
		s.Webhook = &monitor.Webhook{URL: sc.Webhook.URL, Secret: cfg.MonitoringWebhookSecret}
	}
	if sc.Syslog.Addr != "" {
		c, err := syslog.New(syslog.Config{Addr: sc.Syslog.Addr, CAFile: sc.Syslog.CAFile, ServerName: sc.Syslog.ServerName,
			CertFile: sc.Syslog.CertFile, KeyFile: sc.Syslog.KeyFile})
		if err != nil {
			return fmt.Errorf("monitoring.sinks.syslog: %w", err)
		}
		m.closers = append(m.closers, c.Close)
		s.Syslog = c
	}
	if len(sc.Email.To) > 0 {
		s.Email = &monitor.Email{To: sc.Email.To}
	}
	monitor.Register(m.jobs, m.DB, s, m.Logger)
	if !cfg.MonitoringOn() {
		m.Logger.Info("security monitoring is off: no sink configured (monitoring.sinks)")
		return nil
	}
	rules, _ := cfg.MonitoringRules() // Validate has reported any problem
	mon := monitor.New(m.DB, rules, cfg.MonitoringRoutes(), monitor.Options{Log: m.Logger, Interval: cfg.Monitoring.Interval})
	if err := mon.Start(ctx); err != nil {
		return fmt.Errorf("security monitoring: %w", err)
	}
	m.monitor = mon
	m.Logger.Info("security monitoring on", "rules", len(rules), "sinks", len(cfg.MonitoringRoutes()))
	return nil
}
