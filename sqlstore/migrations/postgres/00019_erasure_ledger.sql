-- +goose Up
-- The erasure ledger publisher (sqlstore/erasureledger.go) reads the erasures of every tenant
-- committed since its previous round, by time, every few seconds on each node.
CREATE INDEX erasures_erased_at ON erasures (erased_at, id);

-- +goose Down
DROP INDEX erasures_erased_at;
