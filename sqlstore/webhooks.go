package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"tutela"
	"tutela/vault"
	"tutela/webhooks"
)

// Webhooks is a tenant's webhook endpoints (migration 00033). Each endpoint's signing secret is
// sealed under the tenant's webhooks keyset, bound to the endpoint's ID; it leaves the store
// only twice: to its creator, once, and to the delivery job that signs with it (Delivery).
type Webhooks struct {
	tx       *Tx
	tenantID string
}

// Webhooks scopes the webhook store to one tenant.
func (tx *Tx) Webhooks(tenantID string) Webhooks { return Webhooks{tx: tx, tenantID: tenantID} }

var errNoWebhook = tutela.Errorf(tutela.ENOTFOUND, "webhook not found")

const webhookCols = `id, tenant_id, url, events, status, created_by, created_at, last_delivery_at, last_status`

// webhookSecretAAD binds a sealed secret to its row: copied into another endpoint's row (of this
// or another tenant), it does not open.
func webhookSecretAAD(id string) []byte { return vault.AAD("webhooks", "secret_sealed", id) }

// Create stores a new endpoint (validated; ID assigned, active, created now) with a fresh
// signing secret, which it returns: the only time the secret is readable outside delivery. It
// records webhook.created with the URL's origin and the events, never the secret nor the URL's
// path and query (which may hold a token). A tenant has at most webhooks.MaxPerTenant endpoints.
func (s Webhooks) Create(ctx context.Context, w *webhooks.Webhook) (tutela.Secret, error) {
	w.Status = webhooks.StatusActive
	if err := w.Validate(); err != nil {
		return tutela.Secret{}, err
	}
	if len(w.CreatedBy) > 200 || !tutela.ValidText(w.CreatedBy) {
		return tutela.Secret{}, tutela.FieldErrorf("created_by", "created_by must be at most 200 bytes of text")
	}
	// Serialises creations in the tenant, so two cannot both pass the cap.
	if err := s.tx.lockTenant(ctx, s.tenantID); err != nil {
		return tutela.Secret{}, err
	}
	n, err := s.tx.count(ctx, `SELECT count(*) FROM webhooks WHERE tenant_id = $1`, s.tenantID)
	if err != nil {
		return tutela.Secret{}, err
	}
	if n >= webhooks.MaxPerTenant {
		return tutela.Secret{}, tutela.Errorf(tutela.ECONFLICT, "a tenant has at most %d webhooks; delete one first", webhooks.MaxPerTenant)
	}
	events, err := json.Marshal(w.Events)
	if err != nil {
		return tutela.Secret{}, err
	}
	vctx, v, err := s.tx.vaultCtx(ctx)
	if err != nil {
		return tutela.Secret{}, err
	}
	w.ID, w.TenantID, w.CreatedAt, w.LastDeliveryAt, w.LastStatus = tutela.NewID(), s.tenantID, s.tx.now, time.Time{}, ""
	secret := webhooks.NewSecret()
	sealed, err := v.Encrypt(vctx, s.tenantID, vault.PurposeWebhooks, secret.Bytes(), webhookSecretAAD(w.ID))
	if err != nil {
		return tutela.Secret{}, err
	}
	if _, err := s.tx.exec(ctx, `INSERT INTO webhooks (id, tenant_id, url, secret_sealed, events, status, created_by, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, w.ID, w.TenantID, w.URL, sealed, string(events), string(w.Status), w.CreatedBy,
		w.CreatedAt); err != nil {
		return tutela.Secret{}, err
	}
	if err := s.tx.Record(ctx, "webhook.created", s.tenantID, "webhook", w.ID, "",
		map[string]any{"origin": webhooks.Origin(w.URL), "events": w.Events}); err != nil {
		return tutela.Secret{}, err
	}
	return secret, nil
}

// Get returns the tenant's endpoint (without its secret); another tenant's, an unknown or a
// malformed ID is not found.
func (s Webhooks) Get(ctx context.Context, id string) (*webhooks.Webhook, error) {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) {
		return nil, errNoWebhook
	}
	return scanWebhook(s.tx.queryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE tenant_id = $1 AND id = $2`,
		s.tenantID, id))
}

// List returns the tenant's endpoints, oldest first, without their secrets.
func (s Webhooks) List(ctx context.Context) ([]webhooks.Webhook, error) {
	out := []webhooks.Webhook{}
	if !tutela.ValidID(s.tenantID) {
		return out, nil
	}
	rows, err := s.tx.query(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE tenant_id = $1 ORDER BY created_at, id`, s.tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *w)
	}
	return out, rows.Err()
}

// Subscribers returns the IDs of the tenant's active endpoints that receive events of type t.
func (s Webhooks) Subscribers(ctx context.Context, t string) ([]string, error) {
	list, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, w := range list {
		if w.Status == webhooks.StatusActive && w.Subscribed(t) {
			ids = append(ids, w.ID)
		}
	}
	return ids, nil
}

// Delete removes the endpoint and its sealed secret and records webhook.deleted. Deliveries
// still queued for it find nothing and end.
func (s Webhooks) Delete(ctx context.Context, id string) error {
	w, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	res, err := s.tx.exec(ctx, `DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2`, s.tenantID, id)
	if err := affectedOne(res, err, "webhook not found"); err != nil {
		return err
	}
	return s.tx.Record(ctx, "webhook.deleted", s.tenantID, "webhook", id, "",
		map[string]any{"origin": webhooks.Origin(w.URL), "events": w.Events})
}

// WebhookDelivery is what a delivery job needs: the endpoint, its opened secret, and whether
// the tenant is in simulation (nothing is sent outward).
type WebhookDelivery struct {
	Webhook   *webhooks.Webhook
	Secret    tutela.Secret
	Simulated bool
}

// Delivery opens the endpoint's secret for the job that signs a delivery with it. An endpoint
// that is gone is not found; a secret that does not open (tampered, or copied from another row)
// is an error: the store was altered outside the application.
func (s Webhooks) Delivery(ctx context.Context, id string) (*WebhookDelivery, error) {
	w, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	if err := s.tx.queryRow(ctx, `SELECT secret_sealed FROM webhooks WHERE tenant_id = $1 AND id = $2`,
		s.tenantID, id).Scan(&sealed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errNoWebhook
		}
		return nil, err
	}
	simulated, err := s.Simulated(ctx)
	if err != nil {
		return nil, err
	}
	vctx, v, err := s.tx.vaultCtx(ctx)
	if err != nil {
		return nil, err
	}
	pt, err := v.Decrypt(vctx, s.tenantID, vault.PurposeWebhooks, sealed, webhookSecretAAD(id))
	if err != nil {
		return nil, tutela.Wrap(err, "a webhook secret does not open")
	}
	return &WebhookDelivery{Webhook: w, Secret: tutela.NewSecretBytes(pt), Simulated: simulated}, nil
}

// Simulated reports whether the tenant is in simulation (tenants.mode, migration 00028): its
// events go to no system outside. Anything but provisioning counts as simulation, so a mode
// this code does not know sends nothing out.
func (s Webhooks) Simulated(ctx context.Context) (bool, error) {
	if !tutela.ValidID(s.tenantID) {
		return false, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	var mode string
	err := s.tx.queryRow(ctx, `SELECT mode FROM tenants WHERE id = $1`, s.tenantID).Scan(&mode)
	if errors.Is(err, sql.ErrNoRows) {
		return false, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err != nil {
		return false, err
	}
	return mode != "provisioning", nil
}

// Delivery outcomes, as RecordDelivery audits them.
const (
	DeliveryDone      = "delivered"
	DeliveryFailed    = "failed"
	DeliverySimulated = "simulated"
)

// WebhookAttempt is one delivery attempt's outcome.
type WebhookAttempt struct {
	EventID   string
	EventType string
	Outcome   string // DeliveryDone, DeliveryFailed or DeliverySimulated
	// Status is the endpoint's HTTP status ("200") or why there was none; it becomes the
	// endpoint's last_status.
	Status string
}

// RecordDelivery notes an attempt on the endpoint (last_delivery_at, last_status) and records
// webhook.delivered, webhook.delivery_failed or webhook.delivery_simulated with the event's ID
// and type and the status: every event that left (or would have left) the tenant is in the
// audit log. An endpoint deleted meanwhile records nothing.
func (s Webhooks) RecordDelivery(ctx context.Context, id string, a WebhookAttempt) error {
	action, outcome := "", "success"
	switch a.Outcome {
	case DeliveryDone:
		action = "webhook.delivered"
	case DeliveryFailed:
		action, outcome = "webhook.delivery_failed", "failure"
	case DeliverySimulated:
		action = "webhook.delivery_simulated"
	default:
		return tutela.Errorf(tutela.EINVALID, "unknown delivery outcome")
	}
	if len(a.Status) > 100 || !tutela.ValidText(a.Status) {
		return tutela.Errorf(tutela.EINVALID, "delivery status must be at most 100 bytes of text")
	}
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) {
		return nil
	}
	res, err := s.tx.exec(ctx, `UPDATE webhooks SET last_delivery_at = $1, last_status = $2 WHERE tenant_id = $3 AND id = $4`,
		s.tx.now, a.Status, s.tenantID, id)
	if tutela.ErrorCode(affectedOne(res, err, "webhook not found")) == tutela.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	return s.tx.Record(ctx, action, s.tenantID, "webhook", id, outcome,
		map[string]any{"event_id": a.EventID, "event_type": a.EventType, "status": a.Status})
}

func scanWebhook(row interface{ Scan(...any) error }) (*webhooks.Webhook, error) {
	var w webhooks.Webhook
	var status, events string
	var last sql.NullTime
	err := row.Scan(&w.ID, &w.TenantID, &w.URL, &events, &status, &w.CreatedBy, &w.CreatedAt, &last, &w.LastStatus)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoWebhook
	}
	if err != nil {
		return nil, err
	}
	w.Status = webhooks.Status(status)
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, err
	}
	w.CreatedAt = w.CreatedAt.UTC()
	if last.Valid {
		w.LastDeliveryAt = last.Time.UTC()
	}
	return &w, nil
}

// WebhookSecretsSource lets `tutela keys rewrap` re-encrypt the endpoints' secrets after the
// tenants' webhooks keysets are rotated (AAD as Create seals them).
func WebhookSecretsSource(db *DB) SealedColumn {
	return SealedColumn{DB: db, Table: "webhooks", Column: "secret_sealed", Purpose: vault.PurposeWebhooks,
		TenantCol: "tenant_id", Item: func(id, tenant, _ string) (string, []byte) {
			return tenant, webhookSecretAAD(id)
		}}
}
