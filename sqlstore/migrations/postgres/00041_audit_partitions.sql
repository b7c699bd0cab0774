-- +goose Up
-- audit_events, the event bodies, partitioned by month of `time` (UTC) so that retention detaches
-- and drops whole months instead of deleting rows (docs/audit.md "Retention"; docs/scaling.md
-- "Past one primary", item 3). audit_log, audit_hashes and audit_checkpoints are not partitioned:
-- the leaf hashes stay for ever, so every proof still verifies after a prune.
--
-- Keys. A partitioned table's primary and unique keys must include the partition key, so the
-- primary key is (pos, time), and id, which must stay unique across every month (AuditMany
-- answers a repeated id with a conflict, and audit_log's unique event_id would otherwise make the
-- sequencer drop the second event as "already in the log"), is kept unique by audit_event_ids, a
-- table of its own that is never pruned. Lookups by pos carry the time (audit_pending.time) so a
-- sequencer round reads one partition per event, not every partition.
--
-- Privileges. Partitions are tables: in schema public, `GRANT … ON ALL TABLES IN SCHEMA public`
-- (docs/runtime-role.md) would give the runtime role UPDATE, DELETE and TRUNCATE on each, and the
-- parent's statement-level TRUNCATE trigger does not fire for a TRUNCATE aimed at a partition. So
-- the partitions live in schema audit_partitions, on which the runtime role has no USAGE (rows
-- inserted or read through audit_events need no privilege on the partition), and each partition
-- gets its own TRUNCATE trigger; the parent's row trigger (the prune exception) is cloned to every
-- partition by PostgreSQL and cannot be dropped from one.
CREATE SCHEMA audit_partitions;
REVOKE ALL ON SCHEMA audit_partitions FROM PUBLIC;

LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE;

CREATE TABLE audit_events_partitioned (
    pos         BIGINT NOT NULL DEFAULT nextval('audit_events_pos_seq'),  -- insertion order; NOT commit order
    id          TEXT NOT NULL,                  -- unique through audit_event_ids
    time        TIMESTAMPTZ NOT NULL,
    tenant_id   TEXT NOT NULL,                  -- '' for platform events
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    canonical   BYTEA NOT NULL,                 -- audit.Event.Canonical(): what the log hashes
    leaf_hash   BYTEA NOT NULL CHECK (length(leaf_hash) = 32)
) PARTITION BY RANGE (time);

-- Rows outside every monthly partition (a clock far off, a month not created yet) land here, so
-- an audit write never fails for want of a partition. audit_ensure_partitions moves them into
-- their month's partition when it creates it.
CREATE TABLE audit_partitions.audit_events_default PARTITION OF audit_events_partitioned DEFAULT;
REVOKE ALL ON audit_partitions.audit_events_default FROM PUBLIC;

-- +goose StatementBegin
CREATE FUNCTION audit_partition_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: TRUNCATE on partition %.% refused', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_partition_no_truncate BEFORE TRUNCATE ON audit_partitions.audit_events_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_partition_no_truncate();

-- audit_partition_create creates the partition of the month starting at month_start (UTC), named
-- audit_partitions.audit_events_YYYY_MM, unless it exists; false then. Rows of that month already
-- in the DEFAULT partition (PostgreSQL refuses to create a partition that would hide them) are
-- moved into it in the same transaction: the default partition is locked against inserts, its
-- guard trigger is disabled for that one statement's move (invisible to other transactions, which
-- see the trigger enabled throughout) and the rows, unchanged, are inserted into the new table,
-- which is then attached. Not callable by anyone but the owner: audit_ensure_partitions is the
-- way in.
-- +goose StatementBegin
CREATE FUNCTION audit_partition_create(month_start timestamptz) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m0   timestamptz := date_trunc('month', month_start, 'UTC');
    m1   timestamptz := m0 + interval '1 month';
    name text := 'audit_events_' || to_char(m0 AT TIME ZONE 'UTC', 'YYYY_MM');
    moved bigint;
BEGIN
    IF m0 <> month_start THEN
        RAISE EXCEPTION 'audit_partition_create: % is not the start of a UTC month', month_start;
    END IF;
    IF to_regclass('audit_partitions.' || quote_ident(name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- No insert may reach the default partition between the check and the attach.
    LOCK TABLE audit_partitions.audit_events_default IN SHARE ROW EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE audit_partitions.%I (LIKE public.audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    IF EXISTS (SELECT 1 FROM audit_partitions.audit_events_default WHERE time >= m0 AND time < m1) THEN
        ALTER TABLE audit_partitions.audit_events_default DISABLE TRIGGER audit_events_guard;
        EXECUTE format('WITH m AS (DELETE FROM audit_partitions.audit_events_default WHERE time >= $1 AND time < $2 RETURNING *)
            INSERT INTO audit_partitions.%I SELECT * FROM m', name) USING m0, m1;
        GET DIAGNOSTICS moved = ROW_COUNT;
        ALTER TABLE audit_partitions.audit_events_default ENABLE TRIGGER audit_events_guard;
        RAISE NOTICE 'audit partition %: moved % rows from the default partition', name, moved;
    END IF;
    -- Attaching needs only SHARE UPDATE EXCLUSIVE on audit_events: inserts go on meanwhile.
    EXECUTE format('ALTER TABLE public.audit_events ATTACH PARTITION audit_partitions.%I FOR VALUES FROM (%L) TO (%L)',
        name, m0, m1);
    EXECUTE format('REVOKE ALL ON audit_partitions.%I FROM PUBLIC', name);
    EXECUTE format('CREATE TRIGGER audit_partition_no_truncate BEFORE TRUNCATE ON audit_partitions.%I
        FOR EACH STATEMENT EXECUTE FUNCTION public.audit_partition_no_truncate()', name);
    RETURN true;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION audit_partition_create(timestamptz) FROM PUBLIC;

-- audit_ensure_partitions creates the partitions of the current month and the next months_ahead
-- (0 to 24) and of every earlier month that has rows in the DEFAULT partition (a restore, a clock
-- that was behind), moving those rows; it returns how many it created. It runs as the owner
-- (SECURITY DEFINER, fixed search_path) so the runtime role, which may not create tables, calls
-- it: every node hourly, `tutela migrate up` and `tutela audit prune`. Nodes are serialised by a
-- transaction advisory lock; when every partition exists it reads the catalog and the (empty)
-- default partition only.
-- +goose StatementBegin
CREATE FUNCTION audit_ensure_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    this_month timestamptz := date_trunc('month', now(), 'UTC');
    past timestamptz[];
    m timestamptz;
    created integer := 0;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 24 THEN
        RAISE EXCEPTION 'audit_ensure_partitions: months_ahead must be 0 to 24, got %', months_ahead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(8391741459633602625);  -- 0x7475_7465_6c61_0041: "tutela" + 00041 (sqlstore.LockAuditPartitions)
    -- Read before the loop: creating a partition alters the default partition, which an open
    -- cursor over it would forbid.
    SELECT array_agg(DISTINCT date_trunc('month', d.time, 'UTC') ORDER BY date_trunc('month', d.time, 'UTC')) INTO past
    FROM audit_partitions.audit_events_default d WHERE d.time < this_month;
    FOREACH m IN ARRAY coalesce(past, '{}') LOOP
        IF public.audit_partition_create(m) THEN created := created + 1; END IF;
    END LOOP;
    FOR i IN 0..months_ahead LOOP
        IF public.audit_partition_create(this_month + make_interval(months => i)) THEN created := created + 1; END IF;
    END LOOP;
    RETURN created;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION audit_ensure_partitions(integer) FROM PUBLIC;

-- Copy the rows: one partition per month that has events (and the months ahead), so they land
-- in their month, not in the default partition. pos, id and every column are copied unchanged.
-- +goose StatementBegin
DO $$
DECLARE m timestamptz;
BEGIN
    -- audit_partition_create names public.audit_events: let it see the new table by that name
    -- while the old one is still here under another.
    ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
    ALTER TABLE audit_events_partitioned RENAME TO audit_events;
    FOR m IN SELECT DISTINCT date_trunc('month', time, 'UTC') FROM audit_events_unpartitioned
             WHERE time < date_trunc('month', now(), 'UTC') + interval '25 months' ORDER BY 1 LOOP
        PERFORM audit_partition_create(m);
    END LOOP;
END
$$;
-- +goose StatementEnd

INSERT INTO audit_events (pos, id, time, tenant_id, actor_type, actor_id, action, target_type, target_id,
    outcome, request_id, canonical, leaf_hash)
SELECT pos, id, time, tenant_id, actor_type, actor_id, action, target_type, target_id,
    outcome, request_id, canonical, leaf_hash
FROM audit_events_unpartitioned;

-- Every id ever recorded, pruned or not (a pruned body's id stays taken: audit_log still names it).
CREATE TABLE audit_event_ids (
    id TEXT COLLATE "C" PRIMARY KEY  -- byte order: IDs are compared, never sorted for people
);
INSERT INTO audit_event_ids (id) SELECT id FROM audit_events_unpartitioned
UNION SELECT event_id FROM audit_log;

-- Grants: whoever held a privilege on the old table holds it on the new one; a role that records
-- events (INSERT) also registers their ids and may create partitions ahead, or every audited
-- transaction would fail after the upgrade (as in 00039).
-- +goose StatementBegin
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT grantee, privilege_type FROM information_schema.role_table_grants
             WHERE table_schema = current_schema() AND table_name = 'audit_events_unpartitioned'
               AND grantee <> current_user LOOP
        EXECUTE format('GRANT %s ON audit_events TO %s', r.privilege_type,
            CASE WHEN r.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(r.grantee) END);
        IF r.privilege_type = 'INSERT' AND r.grantee <> 'PUBLIC' THEN
            EXECUTE format('GRANT SELECT, INSERT ON audit_event_ids TO %I', r.grantee);
            EXECUTE format('GRANT EXECUTE ON FUNCTION audit_ensure_partitions(integer) TO %I', r.grantee);
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- The sequence keeps its name and its values: new events continue after the copied ones.
ALTER SEQUENCE audit_events_pos_seq OWNED BY audit_events.pos;
DROP TABLE audit_events_unpartitioned;

ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (pos, time);
CREATE INDEX audit_events_id ON audit_events (id);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, time);
CREATE INDEX audit_events_actor ON audit_events (actor_id, time);
CREATE INDEX audit_events_action ON audit_events (action, time);
CREATE INDEX audit_events_target ON audit_events (target_type, target_id, time);

-- The same triggers as 00003: the row trigger is cloned to every partition, present and future.
CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_event_ids_append_only BEFORE UPDATE OR DELETE ON audit_event_ids
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_event_ids_no_truncate BEFORE TRUNCATE ON audit_event_ids
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The queue carries each event's time, so a round finds the event in its month's partition.
-- An entry whose event does not exist (never written by Tutela) goes: the next round would drop
-- it with a warning, having nothing to append.
ALTER TABLE audit_pending ADD COLUMN time TIMESTAMPTZ;
UPDATE audit_pending q SET time = e.time FROM audit_events e WHERE e.pos = q.pos;
DELETE FROM audit_pending WHERE time IS NULL;
ALTER TABLE audit_pending ALTER COLUMN time SET NOT NULL;

SELECT audit_ensure_partitions(3);

-- No Down section on purpose, as for 00003: rolling back would have to copy the evidence again.
