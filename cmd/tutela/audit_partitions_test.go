package main

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"tutela/clocktest"
	"tutela/config"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// lastAheadPartition is the partition audit_ensure_partitions creates last: the month
// sqlstore.AuditPartitionsAhead after the database's current one.
func lastAheadPartition(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) string {
	t.Helper()
	var name string
	if err := q.QueryRowContext(context.Background(), `SELECT 'audit_partitions.audit_events_' ||
		to_char(date_trunc('month', now(), 'UTC') AT TIME ZONE 'UTC' + make_interval(months => $1), 'YYYY_MM')`,
		sqlstore.AuditPartitionsAhead).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func partitionExists(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) bool {
	t.Helper()
	var ok bool
	if err := q.QueryRowContext(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// `tutela migrate up` on PostgreSQL creates audit_events' partitions ahead even when no migration
// is pending: the last month ahead, dropped (it is empty), is back after the second run.
func TestMigrateUp_CreatesAuditPartitionsAhead(t *testing.T) {
	t.Parallel()
	dsn := sqltest.PostgresURL(t)
	environ := append(baseEnv(t), "TUTELA_DATABASE_URL="+dsn)
	if code, _, stderr := runCmd(t, environ, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %s", stderr)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	last := lastAheadPartition(t, db)
	if !partitionExists(t, db, last) {
		t.Fatalf("%s missing after migrate up", last)
	}
	if _, err := db.Exec(`DROP TABLE ` + last); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, environ, "migrate", "up"); code != 0 {
		t.Fatalf("second migrate up: %s", stderr)
	}
	if !partitionExists(t, db, last) {
		t.Fatalf("%s not created again by migrate up", last)
	}
}

// The maintenance loop keeps audit_events' partitions ahead on every node, as the runtime role:
// on the first tick and then once an hour, logging what it created at Info and a failure at
// Error.
func TestAuditPartitionsDue_HourlyAndLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	owner, dsn := sqltest.OpenDSN(t, sqlstore.Postgres, sqlstore.Options{})
	rt, err := sqlstore.Open(ctx, sqltest.RuntimeRoleDSN(t, owner, dsn), sqlstore.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	var logs syncBuffer
	m := &Main{Config: config.Default(), DB: rt, Logger: newLogger(config.Default(), &logs)}
	// The template database may be older than this month: bring it up to date first.
	if _, err := owner.AuditEnsurePartitions(ctx); err != nil {
		t.Fatal(err)
	}
	last := lastAheadPartition(t, owner.SQL())
	drop := func() {
		t.Helper()
		if _, err := owner.SQL().ExecContext(ctx, `DROP TABLE `+last); err != nil {
			t.Fatal(err)
		}
	}
	created := func() int { return strings.Count(logs.String(), `"msg":"audit partitions created","count":1`) }

	drop()
	m.auditPartitionsDue(ctx, clock.Now())
	if created() != 1 || !partitionExists(t, owner.SQL(), last) {
		t.Fatalf("first tick did not create the missing month: %s", logs.String())
	}
	drop()
	clock.Add(59 * time.Minute)
	m.auditPartitionsDue(ctx, clock.Now())
	if created() != 1 || partitionExists(t, owner.SQL(), last) {
		t.Fatalf("ran again within the hour: %s", logs.String())
	}
	clock.Add(time.Minute)
	m.auditPartitionsDue(ctx, clock.Now())
	if created() != 2 || !partitionExists(t, owner.SQL(), last) {
		t.Fatalf("not run an hour after the last: %s", logs.String())
	}
	var role string
	if err := rt.SQL().QueryRowContext(ctx, `SELECT current_user`).Scan(&role); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.SQL().ExecContext(ctx, `REVOKE EXECUTE ON FUNCTION audit_ensure_partitions(integer) FROM `+role); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	m.auditPartitionsDue(ctx, clock.Now())
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"audit partitions ahead"`) {
		t.Fatalf("a failure was not logged at Error: %s", logs.String())
	}
}
