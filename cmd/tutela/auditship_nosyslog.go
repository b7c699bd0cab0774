//go:build !tutela_syslog

package main

import (
	"errors"

	"tutela/auditship"
	"tutela/config"
)

// syslogDestination: this build has no syslog package yet (issue 19, branch h2). Delete this
// file and the build constraints of auditship_syslog.go and auditship/syslog*.go once it lands.
func syslogDestination(config.ShipDestination) (auditship.Destination, func() error, error) {
	return nil, nil, errors.New("syslog destinations are not in this build yet")
}
