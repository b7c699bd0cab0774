package config

import (
	"fmt"

	"tutela"
)

// Residency binds this node to one data region (docs/residency.md).
type Residency struct {
	// Region is the data region this node serves: it refuses every tenant whose data_region
	// differs (421 wrong_region, audited as residency.refused), claims only that region's jobs
	// and sweeps only that region's retention. Empty (the default) binds the node to no region,
	// so a single node serves every tenant with no setup.
	Region string `koanf:"region"`
}

// validateResidency accepts a region code or nothing. "default", the region `tutela bootstrap`
// gave tenants before region codes, is refused: it names no jurisdiction, so a node bound to it
// would promise a residency it cannot state. Such tenants get a real region first.
func (c *Config) validateResidency(p *problems) {
	r := c.Residency.Region
	switch {
	case r == "":
	case r == "default":
		p.add(`residency.region: "default" is not a data region: name the jurisdiction, such as "eu" or "ch-geneva-1" ` +
			`(give tenants still in region "default" a real one first, docs/residency.md), or leave it empty for a node ` +
			`that serves every region`)
	case !tutela.ValidRegionCode(r):
		p.add(`residency.region: %q is not a data region code: two lower-case letters, then up to two "-qualifiers" `+
			`(such as "eu", "eu-west", "ch-geneva-1")`, r)
	}
}

// owaspArgon2id are OWASP's argon2id configurations of equal strength (Password Storage Cheat
// Sheet): memory in KiB and iterations, one thread. Parameters that reach none of them are
// weaker than the minimum.
var owaspArgon2id = []struct{ memoryKiB, time int }{{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5}}

// TestOnly lists the settings present that exist for tests and development and that a
// production deployment must not run with: Validate accepts them so a test suite can be fast or
// observable, and a database marked production (`tutela deployment mark-production`) refuses
// to serve with any of them. Each entry names the setting, why, and what to set instead.
func (c *Config) TestOnly() []string {
	var out []string
	h := c.Auth.Hash
	strong := false
	for _, o := range owaspArgon2id {
		strong = strong || (h.MemoryKiB >= o.memoryKiB && h.Time >= o.time)
	}
	if !strong {
		out = append(out, fmt.Sprintf("auth.hash: memory_kib=%d with time=%d is below OWASP's argon2id minimum "+
			"(19456 KiB with time=2, or an equivalent such as 47104 with time=1); use the defaults", h.MemoryKiB, h.Time))
	}
	if c.SMTP.Addr != "" && c.SMTP.TLS == "none" {
		out = append(out, "smtp.tls: none sends reset codes and sign-in notices unencrypted, even if only to a "+
			"loopback relay; use starttls or implicit")
	}
	if c.Log.Level == "debug" {
		out = append(out, "log.level: debug may log request detail beyond what production logs keep; use info")
	}
	return out
}

// Deviations lists settings that weaken a default protection but that a real deployment may
// choose for a reason it documents (a TLS-terminating proxy, a private network, an outage
// policy). They are never refused; `tutela config check` prints them, and a node serving a
// database marked production logs them at start. The local: KEK is not listed: serve warns
// about it at every start already.
func (c *Config) Deviations() []string {
	var out []string
	if c.HTTP.AllowPlaintext {
		out = append(out, "http.allow_plaintext: plain HTTP off loopback; only behind a TLS-terminating proxy")
	}
	if c.Auth.Breach.FailOpen {
		out = append(out, "auth.breach.fail_open: passwords are accepted unchecked while the breach range API is down")
	}
	if c.Database.AllowUnverifiedTLS {
		out = append(out, "database.allow_unverified_tls: the database's certificate or name is not verified")
	}
	if c.Database.URL == "" && c.Database.SQLiteSynchronous == "normal" {
		out = append(out, "database.sqlite_synchronous: normal, a power loss can lose transactions (audit events among them) already acknowledged")
	}
	if !c.Auth.MFAAllUsers {
		out = append(out, "auth.mfa_all_users: off, a second factor is required only of auth.mfa_roles and tenants that ask (ASVS 6.3.2)")
	}
	return out
}
