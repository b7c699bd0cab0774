package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"tutela"
)

// Audit shipping (docs/audit.md, "Shipping the log"): audit.ship lists destinations, each
// "name=URL", so the list reads the same in tutela.yaml and in TUTELA_AUDIT_SHIP:
//
//	audit:
//	  ship:
//	    - archive=https://audit-archive.example.org/batches
//	    - siem=syslog+tls://siem.example.org:6514?ca_file=/etc/tutela/siem-ca.pem
//
// An https destination's signing secret comes only from TUTELA_AUDIT_SHIP_SECRET_<NAME> or
// its _FILE variant (NAME upper-cased), never from the file.

// ShipSecretPrefix starts the variables holding the destinations' signing secrets.
const ShipSecretPrefix = "TUTELA_AUDIT_SHIP_SECRET_" // #nosec G101 -- the name of environment variables, not a credential

// Destination types.
const (
	ShipHTTPS  = "https"
	ShipSyslog = "syslog"
)

// ShipDestination is one parsed audit.ship entry.
type ShipDestination struct {
	Name string
	Type string // ShipHTTPS or ShipSyslog
	// URL is the receiver's URL (https) or, for syslog, the collector's host:port.
	URL string
	// CAFile (syslog) is a PEM file of the CAs trusted for the collector; empty: the system's.
	CAFile string
	// Secret signs an https destination's batches (from the environment).
	Secret tutela.Secret
}

// shipName is a destination's name: its cursor's key and its secret variable's suffix, so
// lower-case letters and digits only (no separator could be confused with _FILE).
var shipName = regexp.MustCompile(`^[a-z][a-z0-9]{0,31}$`)

// ShipDestinations parses audit.ship (Validate has reported every problem; entries that do not
// parse are left out).
func (c *Config) ShipDestinations() []ShipDestination {
	ds, _ := c.parseShip()
	return ds
}

func (c *Config) parseShip() ([]ShipDestination, []string) {
	var (
		out      []ShipDestination
		problems []string
		seen     = map[string]bool{}
	)
	for i, entry := range c.Audit.Ship {
		bad := func(format string, args ...any) {
			problems = append(problems, fmt.Sprintf("audit.ship[%d]: ", i)+fmt.Sprintf(format, args...))
		}
		name, raw, ok := strings.Cut(entry, "=")
		if !ok || !shipName.MatchString(name) {
			bad(`must be "name=URL" with a name of lower-case letters and digits (up to 32), such as "archive=https://…"`)
			continue
		}
		if seen[name] {
			bad("destination %q is listed twice", name)
			continue
		}
		seen[name] = true
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			bad("destination %q: not an absolute URL", name)
			continue
		}
		if u.User != nil {
			// The list is not secret (it is printed by config check); credentials go in the
			// secret variable.
			bad("destination %q: no user or password in the URL; the signing secret goes in %s%s", name,
				ShipSecretPrefix, strings.ToUpper(name))
			continue
		}
		d := ShipDestination{Name: name, Secret: c.ShipSecrets[name]}
		switch u.Scheme {
		case "https", "http":
			if !httpsURL(raw) {
				bad("destination %q: must be an https URL (http only on loopback)", name)
				continue
			}
			if d.Secret.IsZero() {
				bad("destination %q: set its signing secret in %s%s or %s%s_FILE", name, ShipSecretPrefix,
					strings.ToUpper(name), ShipSecretPrefix, strings.ToUpper(name))
				continue
			}
			d.Type, d.URL = ShipHTTPS, raw
		case "syslog+tls":
			if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" || u.Path != "" {
				bad("destination %q: syslog+tls://host:port (RFC 5425, usually port 6514) with no path", name)
				continue
			}
			for k := range u.Query() {
				if k != "ca_file" {
					bad("destination %q: unknown parameter %q (only ca_file)", name, k)
				}
			}
			d.Type, d.URL, d.CAFile = ShipSyslog, u.Host, u.Query().Get("ca_file")
		default:
			bad("destination %q: the scheme must be https or syslog+tls (syslog is shipped over TLS only)", name)
			continue
		}
		out = append(out, d)
	}
	var names []string
	for name := range c.ShipSecrets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !seen[name] {
			problems = append(problems, fmt.Sprintf("%s%s is set but audit.ship has no destination %q", ShipSecretPrefix,
				strings.ToUpper(name), name))
		}
	}
	return out, problems
}

func (c *Config) validateAuditShip(p *problems) {
	_, problems := c.parseShip()
	for _, s := range problems {
		p.add("%s", s)
	}
}

// loadShipSecrets reads TUTELA_AUDIT_SHIP_SECRET_<NAME>[_FILE] from vars.
func loadShipSecrets(cfg *Config, vars map[string]string) []string {
	var problems []string
	seen := map[string]bool{}
	for k := range vars {
		rest, ok := strings.CutPrefix(k, ShipSecretPrefix)
		if !ok {
			continue
		}
		upper := strings.TrimSuffix(rest, "_FILE")
		name := strings.ToLower(upper)
		if !shipName.MatchString(name) || strings.ToUpper(name) != upper {
			problems = append(problems, fmt.Sprintf("%s: not a destination name (lower-case letters and digits)", k))
			continue
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		sec, ok, problem := secretFrom(vars, ShipSecretPrefix+upper)
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		if ok {
			if cfg.ShipSecrets == nil {
				cfg.ShipSecrets = map[string]tutela.Secret{}
			}
			cfg.ShipSecrets[name] = sec
		}
	}
	slices.Sort(problems)
	return problems
}
