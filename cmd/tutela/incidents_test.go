package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"tutela/config"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Every maintenance tick runs the breach-clock sweep: what it sent is logged at Info, nothing
// when nothing was due, and a failure at Error.
func TestSweepIncidentsDue_RunsEachTickAndLogs(t *testing.T) {
	t.Parallel()
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{})
	var logs syncBuffer
	m := &Main{Config: config.Default(), DB: db, Logger: newLogger(config.Default(), &logs)}
	m.sweepIncidentsDue(context.Background()) // not serving yet: nothing to run
	calls := 0
	var result []sqlstore.IncidentReminder
	var fail error
	m.sweepIncidents = func(context.Context) ([]sqlstore.IncidentReminder, error) { calls++; return result, fail }
	m.sweepIncidentsDue(context.Background())
	if calls != 1 || strings.Contains(logs.String(), "breach-clock") {
		t.Fatalf("calls %d, logs %s", calls, logs.String())
	}
	result = []sqlstore.IncidentReminder{{}}
	m.sweepIncidentsDue(context.Background())
	if !strings.Contains(logs.String(), `"msg":"incident breach-clock sweep","reminded":1`) {
		t.Fatalf("logs %s", logs.String())
	}
	fail = errors.New("database down")
	m.sweepIncidentsDue(context.Background())
	if calls != 3 || !strings.Contains(logs.String(), `"level":"ERROR","msg":"incident breach-clock sweep"`) {
		t.Fatalf("calls %d, logs %s", calls, logs.String())
	}
	// The real one, over a store with nothing due.
	api := httpapi.New(httpapi.Deps{DB: db, Clock: func() time.Time { return time.Now().UTC() }})
	m.sweepIncidents = api.SweepIncidents
	errs := strings.Count(logs.String(), `"level":"ERROR"`)
	m.sweepIncidentsDue(context.Background())
	if strings.Count(logs.String(), `"level":"ERROR"`) != errs {
		t.Fatalf("the API's sweep failed: %s", logs.String())
	}
}
