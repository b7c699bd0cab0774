package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"tutela"
)

// Deployment settings every node of one deployment must share (deployment_settings).
const (
	// SettingIssuer is the access tokens' "iss" (auth.issuer, or the first node's URL).
	SettingIssuer = "auth.issuer"
	// SettingAuditVerifierKey is the public key that verifies the audit log's checkpoints.
	SettingAuditVerifierKey = "audit.verifier_key"
	// SettingMasterKeyFingerprint is a one-way fingerprint of the master key (HKDF under its own
	// label, cmd/tutela masterKeyFingerprint): the field-masking key is derived from the master
	// key, so every node needs the same one even when a KMS or HSM wraps the keysets.
	SettingMasterKeyFingerprint = "vault.master_key_fingerprint"
	// SettingEnvironment marks what the database is: EnvironmentProduction (set once by `tutela
	// deployment mark-production`; serve then refuses test-only settings) or EnvironmentStaging
	// (an anonymized copy written by `tutela export --anonymize`, which can never be marked
	// production). Unset: neither.
	SettingEnvironment = "deployment.environment"
	// SettingAnonymizedAt is when an anonymized copy was written (RFC 3339, UTC).
	SettingAnonymizedAt = "deployment.anonymized_at"
	// SettingRegionKEKPrefix + a region code records the KEK the nodes of that region use
	// (docs/residency.md): every node of a region must use it, and no other region may.
	SettingRegionKEKPrefix = "residency.kek_uri."
)

// Values of SettingEnvironment.
const (
	EnvironmentProduction = "production"
	EnvironmentStaging    = "staging"
)

// AgreeSetting records value under name unless a value is already recorded, and returns the
// recorded one. Insert-if-absent then read, in one transaction: two nodes starting at once on an
// empty database both get the value of whichever inserted first, so the loser sees the
// disagreement instead of overwriting it.
func (db *DB) AgreeSetting(ctx context.Context, name, value string) (recorded string, err error) {
	err = db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.exec(ctx, `INSERT INTO deployment_settings (name, value, created_at, updated_at)
			VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO NOTHING`, name, value, tx.now); err != nil {
			return err
		}
		return tx.queryRow(ctx, `SELECT value FROM deployment_settings WHERE name = $1`, name).Scan(&recorded)
	})
	return recorded, err
}

// Setting returns the recorded value of name, or "" when none is recorded.
func (db *DB) Setting(ctx context.Context, name string) (string, error) {
	var v string
	err := db.read.QueryRowContext(ctx, `SELECT value FROM deployment_settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// Setting returns the recorded value of name in tx, or "" when none is recorded.
func (tx *Tx) Setting(ctx context.Context, name string) (string, error) {
	var v string
	err := tx.queryRow(ctx, `SELECT value FROM deployment_settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, mapErr(err)
}

// SettingsWithPrefix returns every recorded setting whose name starts with prefix, by name.
func (db *DB) SettingsWithPrefix(ctx context.Context, prefix string) (map[string]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name, value FROM deployment_settings WHERE substr(name, 1, $1) = $2`,
		len(prefix), prefix)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, err
		}
		out[name] = value
	}
	return out, mapErr(rows.Err())
}

// ReplaceSetting changes a recorded setting (an operator's deliberate change, e.g. a new public
// URL) in tx, so the caller records the audit event in the same transaction.
func (tx *Tx) ReplaceSetting(ctx context.Context, name, value string) error {
	if name == "" || value == "" {
		return tutela.FieldErrorf("value", "a deployment setting needs a name and a value")
	}
	_, err := tx.exec(ctx, `INSERT INTO deployment_settings (name, value, created_at, updated_at)
		VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		name, value, tx.now)
	return err
}

// SwapSetting changes a recorded setting from one value to another in tx, and fails with
// conflict, changing nothing, when another value is recorded: a deliberate change must start from
// what the deployment records (so a node holding the wrong key cannot take the record over). A
// setting not recorded yet is recorded.
func (tx *Tx) SwapSetting(ctx context.Context, name, from, to string) error {
	if name == "" || from == "" || to == "" {
		return tutela.FieldErrorf("value", "a deployment setting needs a name and a value")
	}
	var recorded string
	err := tx.queryRow(ctx, `SELECT value FROM deployment_settings WHERE name = $1`, name).Scan(&recorded)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return tx.ReplaceSetting(ctx, name, to)
	case err != nil:
		return err
	case recorded != from:
		return tutela.Errorf(tutela.ECONFLICT, "%s is %s here, not %s", name, recorded, from)
	}
	return tx.ReplaceSetting(ctx, name, to)
}

// AuditPending describes events recorded in audit_events but not yet in the Merkle log, and the
// last sign of a running sequencer.
type AuditPending struct {
	Count  int64
	Oldest time.Time // time of the oldest pending event; zero when Count is 0
	// SequencerSeen is when a sequencer last completed a round holding the sequencing lock
	// (zero if never), and SequencerInterval its interval.
	SequencerSeen     time.Time
	SequencerInterval time.Duration
}

// staleIntervals is how many sequencer intervals may pass before a pending event, or a silent
// sequencer, counts as abandoned: a round may be slow or skipped under load, not five in a row.
const staleIntervals = 5

// Grace is how long events may wait for the sequencer before they count as left behind.
func (p AuditPending) Grace() time.Duration {
	iv := p.SequencerInterval
	if iv <= 0 {
		iv = time.Second
	}
	return staleIntervals * iv
}

// SequencerAlive reports whether a sequencer completed a round within Grace before now.
func (p AuditPending) SequencerAlive(now time.Time) bool {
	return !p.SequencerSeen.IsZero() && now.Sub(p.SequencerSeen) <= p.Grace()
}

// Stale reports whether pending events were left outside the log: some waited longer than Grace
// and no sequencer has run within Grace. Such events are protected by nothing (no leaf in the
// tree, no checkpoint), so anyone with database access could delete them unnoticed.
func (p AuditPending) Stale(now time.Time) bool {
	return p.Count > 0 && now.Sub(p.Oldest) > p.Grace() && !p.SequencerAlive(now)
}

// AuditPending counts the events waiting in the sequencer's queue (audit_pending) and reads the
// sequencer heartbeat. It reads the queue, never the whole log, so it is cheap at any size; the
// events missing from both the log and the queue are AuditUnqueued's.
func (db *DB) AuditPending(ctx context.Context) (AuditPending, error) {
	var (
		p      AuditPending
		oldest sql.NullTime
		beat   sql.NullTime
		ms     sql.NullInt64
	)
	if err := db.read.QueryRowContext(ctx, queueCountQuery).Scan(&p.Count); err != nil {
		return p, mapErr(err)
	}
	if p.Count > 0 {
		// The queue's oldest entry is its smallest pos; its event's time is the oldest wait (a
		// pos may be older than its time by the length of a transaction, which Grace absorbs).
		// Not MIN(time): SQLite would return the aggregate as text, not a time.
		err := db.read.QueryRowContext(ctx, queueOldestQuery(db.dialect)).Scan(&oldest)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return p, mapErr(err)
		}
		p.Oldest = oldest.Time.UTC()
	}
	err := db.read.QueryRowContext(ctx, `SELECT beat_at, interval_ms FROM audit_sequencer WHERE id = 1`).Scan(&beat, &ms)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return p, mapErr(err)
	}
	if beat.Valid {
		p.SequencerSeen = beat.Time.UTC()
		p.SequencerInterval = time.Duration(ms.Int64) * time.Millisecond
	}
	return p, nil
}

// HoldsKeys reports whether the database holds sealed key material (keysets, token signing
// keys): such a database was set up with a master key and is unreadable under any other. A
// database not yet migrated holds none.
func (db *DB) HoldsKeys(ctx context.Context) (bool, error) {
	var (
		tables []string
		err    error
	)
	if db.dialect == Postgres {
		tables, err = pgTables(ctx, db.read)
	} else {
		tables, err = sqliteTables(ctx, db.read)
	}
	if err != nil {
		return false, err
	}
	for _, t := range []string{"keysets", "signing_keys"} {
		if !slices.Contains(tables, t) {
			continue
		}
		var has bool
		if err := db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+t+`)`).Scan(&has); err != nil {
			return false, mapErr(err)
		}
		if has {
			return true, nil
		}
	}
	return false, nil
}
