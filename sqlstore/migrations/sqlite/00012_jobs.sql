-- +goose Up
-- The durable job queue (package jobs): background work that must survive a crash or restart
-- (e-mail now; webhooks and deadlines later). A job is enqueued in the transaction of the change
-- that causes it, claimed by one worker at a time under a lease, retried with backoff, and dead
-- after max_attempts. Finished jobs are deleted, with their payload; dead ones keep kind,
-- attempts and last_error for operators, not their payload.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind <> '' AND length(kind) <= 64),
    tenant_id    TEXT,
    -- Sealed with the vault (keyset `jobs`) when the kind says so; NULL once dead.
    payload      BLOB,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    run_at       TIMESTAMP NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    -- The claim: a fresh random token per claim and the time the claim lapses. Only the holder
    -- of the current token may finish the job, so a worker whose lease ran out cannot.
    lease_token  TEXT,
    locked_until TIMESTAMP,
    last_error   TEXT,
    created_at   TIMESTAMP NOT NULL,
    dead_at      TIMESTAMP
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'pending';
CREATE INDEX jobs_dead ON jobs (dead_at) WHERE state = 'dead';

-- +goose Down
DROP TABLE jobs;
