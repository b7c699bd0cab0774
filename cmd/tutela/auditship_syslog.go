package main

import (
	"tutela/auditship"
	"tutela/config"
	"tutela/syslog"
)

// syslogDestination ships to a syslog collector over verified TLS (RFC 5425).
func syslogDestination(d config.ShipDestination) (auditship.Destination, func() error, error) {
	c, err := syslog.New(syslog.Config{Addr: d.URL, CAFile: d.CAFile})
	if err != nil {
		return nil, nil, err
	}
	return auditship.NewSyslog(d.Name, c, nil), c.Close, nil
}
