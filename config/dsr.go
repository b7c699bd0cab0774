package config

import (
	"time"

	"tutela/privacy"
)

// DSR configures data-subject requests (issue 14): each jurisdiction's period to answer, the
// jurisdiction of a request that names none, when reminders go out before the due date, and how
// long a package's download link lives.
type DSR struct {
	// Periods are "jurisdiction=days" entries; gdpr, ndpa and popia are 30 days unless set here,
	// and an operator adds others (e.g. "kdpa=21").
	Periods             []string `koanf:"periods"`
	DefaultJurisdiction string   `koanf:"default_jurisdiction"`
	// Reminders are offsets before the due date, a Go duration or days ("7d", "24h").
	Reminders []string `koanf:"reminders"`
	// DownloadTTL is how long a package's one-time download link works (1m to 72h).
	DownloadTTL time.Duration `koanf:"download_ttl"`
	// MaxExtensionDays bounds a request's one extension (GDPR Art. 12(3): two further months).
	MaxExtensionDays int `koanf:"max_extension_days"`
}

func defaultDSR() DSR {
	return DSR{DefaultJurisdiction: "gdpr", Reminders: []string{"7d", "1d"}, DownloadTTL: privacy.DefaultDSRDownloadTTL,
		MaxExtensionDays: privacy.DefaultDSRMaxExtension}
}

// DSRPolicy is the parsed policy, with every problem found (none: valid).
func (c *Config) DSRPolicy() (privacy.DSRPolicy, []string) {
	pol := privacy.DefaultDSRPolicy()
	var problems []string
	periods, err := privacy.ParseDSRPeriods(c.DSR.Periods)
	if err != nil {
		problems = append(problems, "dsr.periods: "+err.Error())
	}
	for j, d := range periods {
		pol.Periods[j] = d
	}
	pol.DefaultJurisdiction = c.DSR.DefaultJurisdiction
	pol.Reminders = nil
	for _, s := range c.DSR.Reminders {
		d, err := privacy.ParseDSRDuration(s)
		if err != nil {
			problems = append(problems, "dsr.reminders: "+err.Error())
			continue
		}
		pol.Reminders = append(pol.Reminders, d)
	}
	pol.DownloadTTL, pol.MaxExtensionDays = c.DSR.DownloadTTL, c.DSR.MaxExtensionDays
	for _, p := range pol.Problems() {
		problems = append(problems, "dsr: "+p)
	}
	return pol, problems
}

func (c *Config) validateDSR(p *problems) {
	_, list := c.DSRPolicy()
	for _, s := range list {
		p.add("%s", s)
	}
}
