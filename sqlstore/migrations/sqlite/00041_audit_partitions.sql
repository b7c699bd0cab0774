-- +goose Up
-- PostgreSQL only: audit_events partitioned by month so retention drops whole months (see the
-- PostgreSQL migration). SQLite keeps one table and prunes by row (docs/audit.md "Retention");
-- this file keeps both dialects' migrations numbered alike (TestMigrations_SameNumbersInBothDialects).
SELECT 1;

-- +goose Down
SELECT 1;
