package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"tutela/approvals"
	"tutela/config"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Every maintenance tick runs the approval sweep: what it expired and reminded is logged at
// Info, nothing at all when nothing was due, and a failure at Error.
func TestSweepApprovalsDue_RunsEachTickAndLogs(t *testing.T) {
	t.Parallel()
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{})
	var logs syncBuffer
	m := &Main{Config: config.Default(), DB: db, Logger: newLogger(config.Default(), &logs)}
	m.sweepApprovalsDue(context.Background()) // not serving yet: nothing to run
	calls := 0
	result := sqlstore.Sweep{}
	var fail error
	m.sweepApprovals = func(context.Context) (sqlstore.Sweep, error) { calls++; return result, fail }
	m.sweepApprovalsDue(context.Background())
	if calls != 1 || strings.Contains(logs.String(), "approval sweep") {
		t.Fatalf("calls %d, logs %s", calls, logs.String())
	}
	result = sqlstore.Sweep{Expired: []approvals.Request{{ID: "x"}}}
	m.sweepApprovalsDue(context.Background())
	if !strings.Contains(logs.String(), `"msg":"approval sweep","expired":1,"reminded":0`) {
		t.Fatalf("logs %s", logs.String())
	}
	fail = errors.New("database down")
	m.sweepApprovalsDue(context.Background())
	if calls != 3 || !strings.Contains(logs.String(), `"level":"ERROR","msg":"approval sweep"`) {
		t.Fatalf("calls %d, logs %s", calls, logs.String())
	}
	// The real one, over a store with nothing due.
	api := httpapi.New(httpapi.Deps{DB: db, Clock: func() time.Time { return time.Now().UTC() }})
	m.sweepApprovals = api.SweepApprovals
	errs := strings.Count(logs.String(), `"level":"ERROR"`)
	m.sweepApprovalsDue(context.Background())
	if strings.Count(logs.String(), `"level":"ERROR"`) != errs {
		t.Fatalf("the API's sweep failed: %s", logs.String())
	}
}
