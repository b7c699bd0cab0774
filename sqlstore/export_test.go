package sqlstore

import (
	"context"
	"database/sql"
)

// ExecForBench runs a statement in tx: the plaintext baselines of the subject benchmarks write
// their comparison table in the same transaction as the audit event, as the real store does.
func (tx *Tx) ExecForBench(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.exec(ctx, q, args...)
}

// QueryForBench runs a query in tx.
func (tx *Tx) QueryForBench(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.query(ctx, q, args...)
}

// QueryRowForBench runs a one-row query in tx.
func (tx *Tx) QueryRowForBench(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.queryRow(ctx, q, args...)
}

// WritesAuthState exposes the statement classifier of the authentication epochs.
var WritesAuthState = writesAuthState
