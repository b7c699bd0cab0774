package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"time"

	"tutela"
	"tutela/compliance"
	"tutela/config"
)

// The compliance report's reads (issue 19) and the operations it cites that nothing else
// records (migration 00034). ComplianceState reads only the tenants it is given: the caller
// decides the scope (an auditor's own tenant, or every tenant for the platform), and the
// platform's keysets are the only rows outside them it returns.

// opActions are the audit actions of recorded operations.
var opActions = map[string]string{
	compliance.OpAuditVerify: "compliance.audit_verified",
	compliance.OpBackup:      "compliance.backup_created",
	compliance.OpRestore:     "compliance.backup_restored",
	compliance.OpRestoreTest: "compliance.restore_tested",
}

// maxOpDetails bounds an operation's details (they are counts, sizes and digests).
const maxOpDetails = 4 << 10

// RecordOperation records one run of an operation the compliance report cites, and audits it
// in the same transaction. details are facts about the run (counts, sizes, digests, outcomes),
// never a secret.
func (tx *Tx) RecordOperation(ctx context.Context, kind, outcome string, details map[string]any) (*compliance.Operation, error) {
	action, ok := opActions[kind]
	if !ok {
		return nil, tutela.Errorf(tutela.EINVALID, "unknown operation kind %q", kind)
	}
	if outcome != compliance.OutcomeSuccess && outcome != compliance.OutcomeFailure {
		return nil, tutela.Errorf(tutela.EINVALID, "outcome must be success or failure")
	}
	if details == nil {
		details = map[string]any{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return nil, tutela.Errorf(tutela.EINVALID, "operation details are not JSON: %v", err)
	}
	if len(b) > maxOpDetails {
		return nil, tutela.Errorf(tutela.EINVALID, "operation details exceed %d bytes", maxOpDetails)
	}
	op := &compliance.Operation{ID: tutela.NewID(), Kind: kind, Outcome: outcome, Details: details, RecordedAt: tx.now}
	if _, err := tx.exec(ctx, `INSERT INTO compliance_evidence (id, kind, outcome, details, recorded_at) VALUES ($1, $2, $3, $4, $5)`,
		op.ID, kind, outcome, string(b), tx.now); err != nil {
		return nil, err
	}
	// The two outcomes are the audit log's own (success, failure).
	return op, tx.Record(ctx, action, "", "compliance_evidence", op.ID, outcome, details)
}

// LatestOperation is the latest recorded run of kind (nil, nil when none).
func (tx *Tx) LatestOperation(ctx context.Context, kind string) (*compliance.Operation, error) {
	op := &compliance.Operation{Kind: kind}
	var details string
	err := tx.queryRow(ctx, `SELECT id, outcome, details, recorded_at FROM compliance_evidence WHERE kind = $1
		ORDER BY recorded_at DESC, id DESC LIMIT 1`, kind).Scan(&op.ID, &op.Outcome, &details, &op.RecordedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr(err)
	}
	op.RecordedAt = op.RecordedAt.UTC()
	if err := json.Unmarshal([]byte(details), &op.Details); err != nil {
		return nil, err
	}
	return op, nil
}

// ComplianceState reads what the compliance report cites for tenants (and the platform's
// keysets, checkpoint and recorded operations).
func (tx *Tx) ComplianceState(ctx context.Context, tenants []*tutela.Tenant) (compliance.State, error) {
	var st compliance.State
	slugs := map[string]string{}
	for _, t := range tenants {
		slugs[t.ID] = t.Slug
	}
	rows, err := tx.query(ctx, `SELECT `+keysetCols+` FROM keysets ORDER BY purpose, created_at`)
	if err != nil {
		return st, err
	}
	for rows.Next() {
		ks, err := scanKeyset(rows)
		if err != nil {
			rows.Close()
			return st, err
		}
		slug, inScope := slugs[ks.TenantID]
		if ks.TenantID != "" && !inScope {
			continue
		}
		st.Keysets = append(st.Keysets, compliance.Keyset{TenantSlug: slug, Purpose: ks.Purpose, Kind: ks.Kind, Version: ks.Version,
			Keys: len(ks.Keys), KEKURI: ks.KEKURI, CreatedAt: ks.CreatedAt, RotatedAt: ks.RotatedAt})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	var cp compliance.CheckpointInfo
	err = tx.queryRow(ctx, `SELECT size, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&cp.Size, &cp.CreatedAt)
	switch {
	case err == nil:
		cp.CreatedAt = cp.CreatedAt.UTC()
		st.Checkpoint = &cp
	case !errors.Is(err, sql.ErrNoRows):
		return st, mapErr(err)
	}
	for _, o := range []struct {
		kind string
		dst  **compliance.Operation
	}{{compliance.OpAuditVerify, &st.AuditVerify}, {compliance.OpBackup, &st.Backup}, {compliance.OpRestore, &st.Restore},
		{compliance.OpRestoreTest, &st.RestoreTest}} {
		if *o.dst, err = tx.LatestOperation(ctx, o.kind); err != nil {
			return st, err
		}
	}
	err = tx.each(ctx, `SELECT destination, next_index, failures, last_error, shipped_at FROM audit_ship_cursors
		ORDER BY destination`, nil, func(rows *sql.Rows) error {
		var (
			s       compliance.Shipping
			shipped sql.NullTime
		)
		if err := rows.Scan(&s.Destination, &s.Shipped, &s.Failures, &s.LastError, &shipped); err != nil {
			return err
		}
		if shipped.Valid {
			s.ShippedAt = shipped.Time.UTC()
		}
		st.Shipping = append(st.Shipping, s)
		return nil
	})
	if err != nil {
		return st, err
	}
	for _, t := range tenants {
		ts, err := tx.complianceTenant(ctx, t)
		if err != nil {
			return st, err
		}
		st.Tenants = append(st.Tenants, ts)
	}
	return st, nil
}

func (tx *Tx) complianceTenant(ctx context.Context, t *tutela.Tenant) (compliance.Tenant, error) {
	ct := compliance.Tenant{ID: t.ID, Slug: t.Slug, Name: t.Name, Region: t.Region, Mode: string(t.Mode), DSR: compliance.DSRStats{ByKind: map[string]int{}}}
	now := tx.now
	var idle, abs sql.NullInt64
	var comp sql.NullString
	if err := tx.queryRow(ctx, `SELECT mfa_required_all, require_private_key_jwt, session_idle_seconds, session_absolute_seconds,
		password_composition FROM tenants WHERE id = $1`, t.ID).Scan(&ct.MFARequiredAll, &ct.RequirePrivateKeyJWT, &idle, &abs, &comp); err != nil {
		return ct, mapErr(err)
	}
	ct.SessionIdle, ct.SessionAbsolute = time.Duration(idle.Int64)*time.Second, time.Duration(abs.Int64)*time.Second
	ct.PasswordComposition = comp.String != ""

	// Role holders are active users with an unexpired grant; a factor is an active TOTP or
	// passkey (HasActiveFactor's rule: recovery codes alone do not count).
	err := tx.each(ctx, `SELECT r.key, COUNT(u.id),
			COALESCE(SUM(CASE WHEN u.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mfa_factors f WHERE f.tenant_id = u.tenant_id
				AND f.user_id = u.id AND f.active AND f.type IN ('totp', 'webauthn')) THEN 1 ELSE 0 END), 0)
		FROM roles r
		LEFT JOIN user_roles ur ON ur.role_id = r.id AND ur.tenant_id = $1 AND (ur.expires_at IS NULL OR ur.expires_at > $2)
		LEFT JOIN users u ON u.tenant_id = ur.tenant_id AND u.id = ur.user_id AND u.status = 'active'
		WHERE r.tenant_id IS NULL OR r.tenant_id = $1
		GROUP BY r.key ORDER BY r.key`, []any{t.ID, now}, func(rows *sql.Rows) error {
		var rc compliance.RoleCoverage
		if err := rows.Scan(&rc.Key, &rc.Holders, &rc.WithoutFactor); err != nil {
			return err
		}
		ct.Roles = append(ct.Roles, rc)
		return nil
	})
	if err != nil {
		return ct, err
	}
	err = tx.each(ctx, `SELECT sa.name,
			(SELECT COUNT(*) FROM service_account_secrets s WHERE s.service_account_id = sa.id AND s.revoked_at IS NULL
				AND (s.expires_at IS NULL OR s.expires_at > $2)),
			(SELECT COUNT(*) FROM service_account_keys k WHERE k.service_account_id = sa.id)
		FROM service_accounts sa WHERE sa.tenant_id = $1 AND sa.status = 'active' AND (sa.expires_at IS NULL OR sa.expires_at > $2)
		ORDER BY sa.name`, []any{t.ID, now}, func(rows *sql.Rows) error {
		var sa compliance.ServiceAccount
		if err := rows.Scan(&sa.Name, &sa.ActiveSecrets, &sa.Keys); err != nil {
			return err
		}
		ct.ServiceAccounts = append(ct.ServiceAccounts, sa)
		return nil
	})
	if err != nil {
		return ct, err
	}
	if err := tx.complianceReviews(ctx, t.ID, &ct.Reviews); err != nil {
		return ct, err
	}
	if err := tx.complianceDSR(ctx, t.ID, &ct.DSR); err != nil {
		return ct, err
	}
	if err := tx.complianceProcessing(ctx, &ct); err != nil {
		return ct, err
	}
	if ct.LockEvents30d, err = tx.count(ctx, `SELECT COUNT(*) FROM security_events WHERE tenant_id = $1
		AND kind IN ('account_locked', 'ip_locked', 'source_locked') AND created_at > $2`, t.ID, now.Add(-30*24*time.Hour)); err != nil {
		return ct, mapErr(err)
	}
	return ct, nil
}

func (tx *Tx) complianceReviews(ctx context.Context, tenantID string, r *compliance.ReviewStats) error {
	var lastID string
	var closed sql.NullTime
	err := tx.queryRow(ctx, `SELECT id, closed_at FROM access_reviews WHERE tenant_id = $1 AND status = 'closed'
		ORDER BY closed_at DESC LIMIT 1`, tenantID).Scan(&lastID, &closed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return mapErr(err)
	}
	if closed.Valid {
		r.LastClosed = closed.Time.UTC()
		if r.Revoked, err = tx.count(ctx, `SELECT COUNT(*) FROM access_review_items WHERE tenant_id = $1 AND review_id = $2
			AND decision = 'revoke'`, tenantID, lastID); err != nil {
			return mapErr(err)
		}
	}
	if r.Open, err = tx.count(ctx, `SELECT COUNT(*) FROM access_reviews WHERE tenant_id = $1 AND status = 'open'`, tenantID); err != nil {
		return mapErr(err)
	}
	if r.OpenOverdue, err = tx.count(ctx, `SELECT COUNT(*) FROM access_reviews WHERE tenant_id = $1 AND status = 'open'
		AND deadline < $2`, tenantID, tx.now); err != nil {
		return mapErr(err)
	}
	r.OpenFindings, err = tx.count(ctx, `SELECT COUNT(*) FROM access_review_items i JOIN access_reviews a
		ON a.tenant_id = i.tenant_id AND a.id = i.review_id WHERE i.tenant_id = $1 AND a.status = 'open' AND i.decision IS NULL`, tenantID)
	return mapErr(err)
}

// complianceDSR counts requests; overdue is the DSR list's rule: not completed and due.
func (tx *Tx) complianceDSR(ctx context.Context, tenantID string, d *compliance.DSRStats) error {
	err := tx.each(ctx, `SELECT kind, status, COUNT(*) FROM dsr_requests WHERE tenant_id = $1 GROUP BY kind, status`,
		[]any{tenantID}, func(rows *sql.Rows) error {
			var kind, status string
			var n int
			if err := rows.Scan(&kind, &status, &n); err != nil {
				return err
			}
			d.Total += n
			d.ByKind[kind] += n
			switch status {
			case "completed":
				d.Completed += n
			case "rejected":
				d.Rejected += n
			default:
				d.Open += n
			}
			return nil
		})
	if err != nil {
		return err
	}
	var oldest sql.NullTime
	err = tx.queryRow(ctx, `SELECT due_at FROM dsr_requests WHERE tenant_id = $1 AND completed_at IS NULL AND due_at <= $2
		ORDER BY due_at LIMIT 1`, tenantID, tx.now).Scan(&oldest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return mapErr(err)
	}
	if oldest.Valid {
		d.OldestOverdueDue = oldest.Time.UTC()
	}
	d.Overdue, err = tx.count(ctx, `SELECT COUNT(*) FROM dsr_requests WHERE tenant_id = $1 AND completed_at IS NULL AND due_at <= $2`,
		tenantID, tx.now)
	return mapErr(err)
}

// complianceProcessing reads the register of purposes with consent coverage, the subject
// schema, the sub-processor register and the recipients derived from state.
func (tx *Tx) complianceProcessing(ctx context.Context, ct *compliance.Tenant) error {
	var err error
	if ct.Subjects, err = tx.count(ctx, `SELECT COUNT(*) FROM subjects WHERE tenant_id = $1 AND erased_at IS NULL
		AND merged_into IS NULL`, ct.ID); err != nil {
		return mapErr(err)
	}
	consents := map[string][2]int{}
	err = tx.each(ctx, `SELECT c.purpose, c.action, COUNT(*) FROM consent_state c JOIN subjects s ON s.tenant_id = c.tenant_id
		AND s.id = c.subject_id WHERE c.tenant_id = $1 AND s.erased_at IS NULL AND s.merged_into IS NULL GROUP BY c.purpose, c.action`,
		[]any{ct.ID}, func(rows *sql.Rows) error {
			var purpose, action string
			var n int
			if err := rows.Scan(&purpose, &action, &n); err != nil {
				return err
			}
			c := consents[purpose]
			if action == "granted" {
				c[0] += n
			} else {
				c[1] += n
			}
			consents[purpose] = c
			return nil
		})
	if err != nil {
		return err
	}
	err = tx.each(ctx, `SELECT name, description, lawful_basis FROM processing_purposes WHERE tenant_id = $1 ORDER BY name`,
		[]any{ct.ID}, func(rows *sql.Rows) error {
			var p compliance.Purpose
			if err := rows.Scan(&p.Name, &p.Description, &p.LawfulBasis); err != nil {
				return err
			}
			p.Granted, p.Withdrawn = consents[p.Name][0], consents[p.Name][1]
			ct.Purposes = append(ct.Purposes, p)
			return nil
		})
	if err != nil {
		return err
	}
	err = tx.each(ctx, `SELECT name, classification, retention_days FROM subject_fields WHERE tenant_id = $1 ORDER BY name`,
		[]any{ct.ID}, func(rows *sql.Rows) error {
			var f compliance.Field
			if err := rows.Scan(&f.Name, &f.Classification, &f.RetentionDays); err != nil {
				return err
			}
			ct.Fields = append(ct.Fields, f)
			return nil
		})
	if err != nil {
		return err
	}
	err = tx.each(ctx, `SELECT name, service, locations, transfer_safeguard FROM subprocessors WHERE tenant_id = $1 AND status = 'active'
		ORDER BY name`, []any{ct.ID}, func(rows *sql.Rows) error {
		var d compliance.DeclaredSubprocessor
		if err := rows.Scan(&d.Name, &d.Service, &d.Locations, &d.Safeguard); err != nil {
			return err
		}
		ct.Declared = append(ct.Declared, d)
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.each(ctx, `SELECT name, base_url FROM ai_providers WHERE tenant_id = $1 AND NOT disabled ORDER BY name`,
		[]any{ct.ID}, func(rows *sql.Rows) error {
			var name, base string
			if err := rows.Scan(&name, &base); err != nil {
				return err
			}
			ct.AIProviders = append(ct.AIProviders, compliance.Endpoint{Name: name, Host: hostOf(base)})
			return nil
		})
	if err != nil {
		return err
	}
	hosts := []string{}
	err = tx.each(ctx, `SELECT url FROM webhooks WHERE tenant_id = $1 AND status = 'active' ORDER BY url`,
		[]any{ct.ID}, func(rows *sql.Rows) error {
			var u string
			if err := rows.Scan(&u); err != nil {
				return err
			}
			// The receiver's host only: a webhook URL's path may carry a token.
			if h := hostOf(u); !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
				ct.Webhooks = append(ct.Webhooks, compliance.Endpoint{Name: h, Host: h})
			}
			return nil
		})
	return err
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "unparsable URL"
	}
	return u.Host
}

// each runs q and calls fn for every row.
func (tx *Tx) each(ctx context.Context, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return mapErr(err)
		}
	}
	return mapErr(rows.Err())
}

// AllTenants lists every tenant the store serves (ListTenants, page after page).
func (tx *Tx) AllTenants(ctx context.Context) ([]*tutela.Tenant, error) {
	var out []*tutela.Tenant
	cursor := ""
	for {
		page, err := tx.ListTenants(ctx, cursor, 100)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < 100 {
			return out, nil
		}
		cursor = page[len(page)-1].ID
	}
}

// ComplianceReport builds the compliance report over tenants and audits it (compliance.report,
// naming the format and the tenants covered, attributed to the caller in ctx) in the same
// transaction: the API and `tutela compliance report` both come here. platform says tenants are
// every tenant of the deployment; a tenant-scoped report is recorded in that tenant's log.
func (tx *Tx) ComplianceReport(ctx context.Context, cfg *config.Config, rt compliance.Runtime, tenants []*tutela.Tenant,
	platform bool, format string) (*compliance.Report, error) {
	if rt.Environment == "" {
		env, err := tx.Setting(ctx, SettingEnvironment)
		if err != nil {
			return nil, err
		}
		rt.Environment = env
	}
	st, err := tx.ComplianceState(ctx, tenants)
	if err != nil {
		return nil, err
	}
	r := compliance.Build(cfg, rt, st, platform, tx.now)
	tenantID := ""
	if !platform && len(tenants) == 1 {
		tenantID = tenants[0].ID
	}
	return r, tx.Record(ctx, "compliance.report", tenantID, "compliance_report", "", "", map[string]any{
		"format": format, "platform": platform, "tenants": r.Scope.Tenants,
		"met": r.Summary[compliance.Met], "partial": r.Summary[compliance.Partial], "gap": r.Summary[compliance.Gap]})
}
