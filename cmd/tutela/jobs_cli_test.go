package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"tutela/sqlstore"
)

// `tutela jobs dead` lists the jobs that gave up with the class of their last error, so an
// operator sees undelivered mail without SQL; it prints no payload (dead jobs keep none) and
// refuses a limit out of range.
func TestJobsDead_ListsDeadJobsWithTheirErrorClass(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "migrate", "up"); code != 0 {
		t.Fatal(stderr)
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, sqliteDSN(environ), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, kind := range []string{"mail", "password_reset_request"} {
		j := &sqlstore.Job{Kind: kind, MaxAttempts: 1, Payload: []byte("sealed-payload-bytes")}
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.EnqueueJob(ctx, j) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			claimed, _, err := tx.ClaimJobs(ctx, 1, time.Minute)
			if err != nil || len(claimed) != 1 {
				t.Fatalf("claim: %v %d", err, len(claimed))
			}
			_, err = tx.FailJob(ctx, claimed[0], "mail: RCPT TO rejected by server (code 550)", tx.Now())
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runSub(t, environ, jobsDeadCmd{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "0 pending, 2 dead") || strings.Count(out, "RCPT TO rejected by server (code 550)") != 2 ||
		!strings.Contains(out, "password_reset_request") || strings.Contains(out, "sealed-payload") {
		t.Fatalf("jobs dead:\n%s", out)
	}
	if _, _, err := runSub(t, environ, jobsDeadCmd{Limit: 0}); err == nil {
		t.Fatal("a limit of 0 was accepted")
	}
}
