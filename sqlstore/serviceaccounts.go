package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"tutela"
)

// ServiceAccount is a tenant's integration account: no interactive sign-in, authenticates with
// a client ID and secret.
type ServiceAccount struct {
	ID        string        `json:"id"`
	TenantID  string        `json:"tenant_id"`
	Name      string        `json:"name"`
	ClientID  string        `json:"client_id"`
	Status    tutela.Status `json:"status"`
	CreatedAt time.Time     `json:"created_at"`
}

// CreateServiceAccount stores sa (ID, ClientID, CreatedAt assigned) with its first secret,
// given as a hash.
func (tx *Tx) CreateServiceAccount(ctx context.Context, sa *ServiceAccount, secretHash []byte) error {
	name := strings.TrimSpace(sa.Name)
	if name == "" || len(name) > 100 {
		return tutela.FieldErrorf("name", "name must be 1-100 characters")
	}
	sa.ID, sa.ClientID, sa.Name, sa.Status, sa.CreatedAt = tutela.NewID(), "sa_"+tutela.RandomToken(16), name, tutela.StatusActive, tx.now
	_, err := tx.exec(ctx, `INSERT INTO service_accounts (id, tenant_id, name, client_id, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, sa.ID, sa.TenantID, sa.Name, sa.ClientID, string(sa.Status), sa.CreatedAt)
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return &tutela.Error{Code: tutela.ECONFLICT, Field: "name", Message: "a service account with this name already exists"}
	}
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err != nil {
		return err
	}
	_, err = tx.exec(ctx, `INSERT INTO service_account_secrets (id, service_account_id, secret_hash, created_at)
		VALUES ($1, $2, $3, $4)`, tutela.NewID(), sa.ID, secretHash, tx.now)
	if err != nil {
		return err
	}
	return tx.Record(ctx, "service_account.create", sa.TenantID, "service_account", sa.ID, "", map[string]any{"client_id": sa.ClientID})
}

// ServiceAccountSecretHashes returns the active service account with clientID and the hashes of
// its unexpired, unrevoked secrets.
func (tx *Tx) ServiceAccountSecretHashes(ctx context.Context, clientID string) (*ServiceAccount, [][]byte, error) {
	var sa ServiceAccount
	var status string
	err := tx.queryRow(ctx, `SELECT id, tenant_id, name, client_id, status, created_at FROM service_accounts
		WHERE client_id = $1`, clientID).Scan(&sa.ID, &sa.TenantID, &sa.Name, &sa.ClientID, &status, &sa.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, tutela.Errorf(tutela.ENOTFOUND, "service account not found")
	}
	if err != nil {
		return nil, nil, err
	}
	sa.Status, sa.CreatedAt = tutela.Status(status), sa.CreatedAt.UTC()
	rows, err := tx.query(ctx, `SELECT secret_hash FROM service_account_secrets WHERE service_account_id = $1
		AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`, sa.ID, tx.now)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var hashes [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, nil, err
		}
		hashes = append(hashes, h)
	}
	return &sa, hashes, rows.Err()
}
