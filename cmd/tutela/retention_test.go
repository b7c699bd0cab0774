package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"tutela/clocktest"
	"tutela/config"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// The maintenance loop ticks every minute; the retention sweep runs on the first tick and then
// at most once an hour, logging what it deleted at Info and failures at Error.
func TestPurgeDue_HourlyAndLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: clock.Now})
	var logs syncBuffer
	m := &Main{Config: config.Default(), DB: db, Logger: newLogger(config.Default(), &logs)}
	oldLogin := func() {
		at := clock.Now()
		clock.Add(-100 * 24 * time.Hour)
		defer clock.Set(at)
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.RecordLogin(ctx, &sqlstore.LoginRecord{IP: "192.0.2.1", Result: "failure", Reason: "unknown_account"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	infoLines := func() int { return strings.Count(logs.String(), `"msg":"retention purge deleted expired rows"`) }

	oldLogin()
	m.purgeDue(ctx, clock.Now())
	if infoLines() != 1 || !strings.Contains(logs.String(), `"deleted":"login_history=1"`) {
		t.Fatalf("first tick did not sweep and log the count: %s", logs.String())
	}

	oldLogin()
	clock.Add(59 * time.Minute)
	m.purgeDue(ctx, clock.Now())
	if infoLines() != 1 {
		t.Fatalf("swept again within the hour: %s", logs.String())
	}
	clock.Add(time.Minute)
	m.purgeDue(ctx, clock.Now())
	if infoLines() != 2 {
		t.Fatalf("no sweep an hour after the last: %s", logs.String())
	}

	// Nothing to delete: nothing logged.
	clock.Add(time.Hour)
	m.purgeDue(ctx, clock.Now())
	if infoLines() != 2 {
		t.Fatalf("a sweep that deleted nothing logged at Info: %s", logs.String())
	}

	clock.Add(time.Hour)
	m.Config.Retention.UsedTokens = 0
	m.purgeDue(ctx, clock.Now())
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"retention purge"`) {
		t.Fatalf("a failed sweep was not logged at Error: %s", logs.String())
	}
}
