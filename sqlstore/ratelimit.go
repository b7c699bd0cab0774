package sqlstore

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
)

// RateCount is how many requests one client was allowed in one fixed window (rate_windows).
type RateCount struct {
	Key    []byte // the limiter's key for the client (a hash, never an address)
	Window int64  // window number: Unix time divided by the window's length
	Hits   int64
}

// rateBatch bounds the rows of one statement: 3 parameters a row stays far below SQLite's
// 32,766 and PostgreSQL's 65,535 parameters.
const rateBatch = 1000

// AddRateCounts adds one node's deltas (Hits > 0) to the counts every node shares and returns
// the totals, all nodes' counts included, of the windows numbered since or later for keys (the
// clients the node has seen since its last flush). One transaction: the deltas in one upsert
// statement (per thousand rows), the totals in one query (per thousand keys).
//
// The deltas are written in key order, so two nodes adding to the same clients take the row
// locks in the same order and cannot deadlock on PostgreSQL.
func (db *DB) AddRateCounts(ctx context.Context, deltas []RateCount, keys [][]byte, since int64) ([]RateCount, error) {
	deltas = slices.DeleteFunc(slices.Clone(deltas), func(d RateCount) bool { return d.Hits <= 0 })
	slices.SortFunc(deltas, func(a, b RateCount) int {
		return cmp.Or(bytes.Compare(a.Key, b.Key), cmp.Compare(a.Window, b.Window))
	})
	var out []RateCount
	err := db.Update(ctx, func(tx *Tx) error {
		out = out[:0]
		for chunk := range slices.Chunk(deltas, rateBatch) {
			var q strings.Builder
			q.WriteString(`INSERT INTO rate_windows (key, win, hits) VALUES `)
			args := make([]any, 0, 3*len(chunk))
			for i, d := range chunk {
				if i > 0 {
					q.WriteString(", ")
				}
				n := 3 * i
				q.WriteString("($" + strconv.Itoa(n+1) + ", $" + strconv.Itoa(n+2) + ", $" + strconv.Itoa(n+3) + ")")
				args = append(args, d.Key, d.Window, d.Hits)
			}
			q.WriteString(` ON CONFLICT (key, win) DO UPDATE SET hits = rate_windows.hits + excluded.hits`)
			if _, err := tx.exec(ctx, q.String(), args...); err != nil {
				return err
			}
		}
		for chunk := range slices.Chunk(keys, rateBatch) {
			args := append([]any{since}, bytesArgs(chunk)...)
			var in strings.Builder
			for i := range chunk {
				if i > 0 {
					in.WriteString(", ")
				}
				in.WriteString("$" + strconv.Itoa(i+2))
			}
			rows, err := tx.query(ctx, `SELECT key, win, hits FROM rate_windows WHERE win >= $1 AND key IN (`+in.String()+`)`, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var c RateCount
				if err := rows.Scan(&c.Key, &c.Window, &c.Hits); err != nil {
					rows.Close()
					return err
				}
				out = append(out, c)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// PruneRateCounts deletes the counts of windows numbered before before, and reports how many.
func (db *DB) PruneRateCounts(ctx context.Context, before int64) (int64, error) {
	var n int64
	err := db.Update(ctx, func(tx *Tx) error {
		r, err := tx.exec(ctx, `DELETE FROM rate_windows WHERE win < $1`, before)
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	return n, err
}
