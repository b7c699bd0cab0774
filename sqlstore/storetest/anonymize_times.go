package storetest

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"tutela/sqlstore"
)

// Times is every time a database holds, by microsecond (the precision both dialects keep), with
// where it was first seen.
type Times map[int64]string

// timeLayouts are the text forms a time takes in a SQLite cell (the driver's "sqlite" format)
// or in a setting (RFC 3339).
var timeLayouts = []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", time.RFC3339Nano}

// cellTime reads a cell as a time: a time.Time, or text in one of timeLayouts.
func cellTime(v any) (time.Time, bool) {
	var s string
	switch x := v.(type) {
	case time.Time:
		return x, true
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if tm, err := time.Parse(l, s); err == nil {
			return tm, true
		}
	}
	return time.Time{}, false
}

// AllTimes reads every cell of every table of db (either dialect; goose's own bookkeeping
// aside) and returns the times among them.
func AllTimes(t testing.TB, db *sqlstore.DB) Times {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version' ORDER BY name`
	if db.Dialect() == sqlstore.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
			AND table_name <> 'goose_db_version' ORDER BY 1`
	}
	var tables []string
	scanRows(t, db.SQL(), q, func(cells []any, _ []string) {
		if name, ok := cells[0].(string); ok {
			tables = append(tables, name)
		} else {
			tables = append(tables, string(cells[0].([]byte)))
		}
	})
	out := Times{}
	for _, table := range tables {
		scanRows(t, db.SQL(), `SELECT * FROM "`+table+`"`, func(cells []any, cols []string) {
			for i, v := range cells {
				if tm, ok := cellTime(v); ok {
					if _, seen := out[tm.UnixMicro()]; !seen {
						out[tm.UnixMicro()] = table + "." + cols[i]
					}
				}
			}
		})
	}
	return out
}

func scanRows(t testing.TB, db *sql.DB, q string, each func(cells []any, cols []string)) {
	t.Helper()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		cells := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range cells {
			ptrs[i] = &cells[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		each(cells, cols)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// Between keeps the times in [from, to]: the times a source made with its own (test) clock.
// Outside it are the times the database engine made itself (rows seeded by migrations, such as
// the built-in roles), which every deployment has at its own migration and which a second-
// resolution time of the copy may equal by chance.
func (ts Times) Between(from, to time.Time) Times {
	out := Times{}
	for us, where := range ts {
		if us >= from.UnixMicro() && us <= to.UnixMicro() {
			out[us] = where
		}
	}
	return out
}

// AssertNoSourceTime fails when any time held in the copy equals a time of the source: an exact
// production time (a creation, a grant, an expiry) next to a copied row would match the
// production row and audit event of the real person. The test gives the source a clock of its
// own, so that the copy's own times (the export's) cannot equal a source time by chance.
func AssertNoSourceTime(t testing.TB, dst *sqlstore.DB, source Times) {
	t.Helper()
	if len(source) == 0 {
		t.Fatal("the source holds no time: nothing was compared")
	}
	var leaks []string
	for us, where := range AllTimes(t, dst) {
		if from, ok := source[us]; ok {
			leaks = append(leaks, fmt.Sprintf("%s = %s (source %s)", where, time.UnixMicro(us).UTC().Format(time.RFC3339Nano), from))
		}
	}
	if len(leaks) > 0 {
		t.Errorf("the copy holds production times:\n%s", strings.Join(leaks, "\n"))
	}
}
