package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// On PostgreSQL audit_events is partitioned by month of its time, UTC (migration 00041,
// docs/audit.md "Retention"): one partition per month in schema audit_partitions, which the
// runtime role cannot even name, and a DEFAULT partition for rows outside every month, so an
// audit write never fails for want of a partition.

// LockAuditPartitions is the advisory lock key that serialises audit_ensure_partitions (which
// attaches partitions) and AuditPrune (which detaches them) across nodes. The migration's
// function spells the same number.
const LockAuditPartitions int64 = 0x7475_7465_6c61_0041 // "tutela" + migration 00041

// AuditPartitionsAhead is how many months after the current one audit_ensure_partitions keeps
// ready. Every node calls it hourly, so three months leave a quarter's margin for nodes that
// are all down.
const AuditPartitionsAhead = 3

// auditPartitionSchema holds the partitions of audit_events.
const auditPartitionSchema = "audit_partitions"

// AuditEnsurePartitions creates the partitions of audit_events for the current month and the
// next AuditPartitionsAhead, and for every earlier month with rows in the default partition
// (moving them), and returns how many it created. The runtime role may call it: the function is
// SECURITY DEFINER, owned by the owner. SQLite has one table and creates nothing.
func (db *DB) AuditEnsurePartitions(ctx context.Context) (created int, err error) {
	if db.dialect != Postgres {
		return 0, nil
	}
	err = db.Update(ctx, func(tx *Tx) error {
		return tx.queryRow(ctx, `SELECT audit_ensure_partitions($1)`, AuditPartitionsAhead).Scan(&created)
	})
	return created, err
}

// auditBodyJoin joins audit_log l to the body of each entry as e, for reads of a range of the
// log (export, shipping, monitoring). On PostgreSQL the body is looked up by id and time in a
// LATERAL subquery: the lateral reference makes it a nested loop whatever the statistics say,
// and the time prunes it to the entry's own month at run time (audit_log.time is the event's
// time, copied by the sequencer), so a batch of 1,000 entries reads 1,000 index entries. A plain
// join lets the planner, which does not count run-time pruning, hash every month of
// audit_events instead (measured: 64 ms against 2 ms for 1,000 entries of 250,000 in 29
// partitions). SQLite has one table and its id index.
func auditBodyJoin(d Dialect) string {
	if d == Postgres {
		return `LEFT JOIN LATERAL (SELECT * FROM audit_events x WHERE x.id = l.event_id AND x.time = l.time LIMIT 1) e ON true`
	}
	return `LEFT JOIN audit_events e ON e.id = l.event_id`
}

// AuditPartition is one partition of audit_events: its table name in schema audit_partitions and
// the first instant of its month (zero for the default partition).
type AuditPartition struct {
	Name  string
	Month time.Time
}

// AuditPartitions lists the partitions of audit_events, oldest month first, the default
// partition last. SQLite has none.
func (db *DB) AuditPartitions(ctx context.Context) ([]AuditPartition, error) {
	if db.dialect != Postgres {
		return nil, nil
	}
	var out []AuditPartition
	err := db.View(ctx, func(tx *Tx) error {
		var err error
		out, err = tx.auditPartitions(ctx)
		return err
	})
	return out, err
}

func (tx *Tx) auditPartitions(ctx context.Context) ([]AuditPartition, error) {
	rows, err := tx.query(ctx, `SELECT n.nspname, c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE i.inhparent = 'audit_events'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out, dflt []AuditPartition
	for rows.Next() {
		var schema, name string
		if err := rows.Scan(&schema, &name); err != nil {
			return nil, err
		}
		if schema != auditPartitionSchema {
			// Never made by Tutela: refuse rather than guess what it holds.
			return nil, fmt.Errorf("audit_events has a partition outside schema %s: %s.%s", auditPartitionSchema, schema, name)
		}
		p := AuditPartition{Name: name}
		if m, ok := partitionMonth(name); ok {
			p.Month = m
			out = append(out, p)
		} else {
			dflt = append(dflt, p)
		}
	}
	return append(out, dflt...), rows.Err()
}

// partitionMonth parses audit_events_YYYY_MM, the name audit_partition_create gives a month.
func partitionMonth(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, "audit_events_")
	if !ok {
		return time.Time{}, false
	}
	m, err := time.Parse("2006_01", rest)
	if err != nil {
		return time.Time{}, false
	}
	return m.UTC(), true
}

// pruneLockTimeout bounds how long a prune waits for a lock on audit_events or one of its
// partitions. Detaching a partition needs an ACCESS EXCLUSIVE lock on audit_events, and while a
// prune waits for it every audited write queues behind it: a prune that cannot have it quickly
// (a long transaction holds the table) fails and changes nothing, and can be run again.
const pruneLockTimeout = "5s"

// prunePartitions is AuditPrune's PostgreSQL body, run with the prune record inserted and the
// prune gate on. It returns how many bodies went:
//
//   - a month entirely before the cutoff whose events are all in audit_log is detached and
//     dropped, after a SHARE lock on it has stopped inserts into it and a read under that lock
//     has counted its rows and found every one sequenced (an event still queued, or neither
//     queued nor in the log, is not in audit_log). The drops come last, so the ACCESS EXCLUSIVE
//     lock they take on audit_events is held only until the commit that follows;
//   - a month with unsequenced events, the month the cutoff falls in and the default partition
//     lose their sequenced rows before the cutoff row by row, through the append-only trigger's
//     prune exception, exactly as before partitioning; their unsequenced events stay.
func (tx *Tx) prunePartitions(ctx context.Context, before time.Time) (pruned int64, err error) {
	if _, err := tx.exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, pruneLockTimeout); err != nil {
		return 0, err
	}
	parts, err := tx.auditPartitions(ctx)
	if err != nil {
		return 0, err
	}
	var drop []string
	for _, p := range parts {
		table := auditPartitionSchema + "." + quoteIdent(p.Name)
		if !p.Month.IsZero() && !p.Month.Before(before) {
			continue // the whole month is at or after the cutoff
		}
		if !p.Month.IsZero() && !p.Month.AddDate(0, 1, 0).After(before) {
			if _, err := tx.exec(ctx, `LOCK TABLE `+table+` IN SHARE MODE`); err != nil {
				return 0, err
			}
			var n, keep int64
			if err := tx.queryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE e.time >= $1
				OR NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)) FROM `+table+` e`, before).Scan(&n, &keep); err != nil {
				return 0, err
			}
			if keep == 0 {
				drop = append(drop, table)
				pruned += n
				continue
			}
		}
		res, err := tx.exec(ctx, `DELETE FROM `+table+` e WHERE e.time < $1
			AND EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)`, before)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		pruned += n
	}
	for _, table := range drop {
		if _, err := tx.exec(ctx, `ALTER TABLE audit_events DETACH PARTITION `+table); err != nil {
			return 0, err
		}
		if _, err := tx.exec(ctx, `DROP TABLE `+table); err != nil {
			return 0, err
		}
	}
	return pruned, nil
}
