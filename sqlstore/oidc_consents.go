package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"tutela"
)

// OIDCConsent is what a user let one application receive (the scopes they allowed on the
// consent page), remembered so the page is not shown again for the same scopes.
type OIDCConsent struct {
	ClientID   string    `json:"client_id"`
	ClientName string    `json:"client_name"`
	Scopes     []string  `json:"scopes"`
	GrantedAt  time.Time `json:"granted_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// OIDCConsents is the remembered consent of one tenant's users.
type OIDCConsents struct {
	tx       *Tx
	tenantID string
}

// OIDCConsents scopes consent queries to one tenant.
func (tx *Tx) OIDCConsents(tenantID string) OIDCConsents {
	return OIDCConsents{tx: tx, tenantID: tenantID}
}

// maxConsentScopes bounds a grant: a request names a handful of scopes, never hundreds.
const maxConsentScopes = 64

func (r OIDCConsents) scopes(ctx context.Context, userID, clientID string) ([]string, bool, error) {
	var raw string
	err := r.tx.queryRow(ctx, `SELECT scopes FROM oidc_consents WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3`,
		r.tenantID, userID, clientID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var out []string
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, false, tutela.Wrap(err, "consent row unreadable")
	}
	return out, true, nil
}

// Grant remembers that the user allowed the client the scopes, merged with what they allowed
// before. The client must be one of the tenant's.
func (r OIDCConsents) Grant(ctx context.Context, userID, clientID string, scopes []string) error {
	if !tutela.ValidID(userID) {
		return tutela.Errorf(tutela.ENOTFOUND, "user not found")
	}
	if len(scopes) == 0 || len(scopes) > maxConsentScopes {
		return tutela.FieldErrorf("scopes", "between 1 and %d scopes", maxConsentScopes)
	}
	for _, s := range scopes {
		if s == "" || len(s) > 200 || !tutela.ValidText(s) {
			return tutela.FieldErrorf("scopes", "a scope must be 1-200 printable characters")
		}
	}
	if _, err := r.tx.OIDCClients(r.tenantID).Get(ctx, clientID); err != nil {
		return err
	}
	if _, err := r.tx.Users(r.tenantID).Get(ctx, userID); err != nil {
		return err
	}
	had, found, err := r.scopes(ctx, userID, clientID)
	if err != nil {
		return err
	}
	merged := slices.Clone(had)
	for _, s := range scopes {
		if !slices.Contains(merged, s) {
			merged = append(merged, s)
		}
	}
	slices.Sort(merged)
	if len(merged) > maxConsentScopes {
		return tutela.FieldErrorf("scopes", "at most %d scopes", maxConsentScopes)
	}
	raw, _ := json.Marshal(merged)
	if found {
		_, err = r.tx.exec(ctx, `UPDATE oidc_consents SET scopes = $1, updated_at = $2 WHERE tenant_id = $3 AND user_id = $4 AND client_id = $5`,
			string(raw), r.tx.now, r.tenantID, userID, clientID)
	} else {
		_, err = r.tx.exec(ctx, `INSERT INTO oidc_consents (tenant_id, user_id, client_id, scopes, granted_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5)`, r.tenantID, userID, clientID, string(raw), r.tx.now)
	}
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		// A concurrent grant inserted the row first: nothing of this one was remembered.
		return tutela.Errorf(tutela.ECONFLICT, "consent not recorded; try again")
	}
	if err != nil {
		return err
	}
	return r.tx.Record(ctx, "oidc.consent.grant", r.tenantID, "user", userID, "", map[string]any{"client_id": clientID, "scopes": merged})
}

// Covers reports whether the user's remembered consent for the client includes every scope.
func (r OIDCConsents) Covers(ctx context.Context, userID, clientID string, scopes []string) (bool, error) {
	if !tutela.ValidID(userID) {
		return false, nil
	}
	had, found, err := r.scopes(ctx, userID, clientID)
	if err != nil || !found {
		return false, err
	}
	for _, s := range scopes {
		if !slices.Contains(had, s) {
			return false, nil
		}
	}
	return true, nil
}

// List returns the applications the user consented to, with their names, by name.
func (r OIDCConsents) List(ctx context.Context, userID string) ([]*OIDCConsent, error) {
	if !tutela.ValidID(userID) {
		return nil, nil
	}
	rows, err := r.tx.query(ctx, `SELECT c.client_id, k.name, c.scopes, c.granted_at, c.updated_at
		FROM oidc_consents c JOIN oidc_clients k ON k.id = c.client_id AND k.tenant_id = c.tenant_id
		WHERE c.tenant_id = $1 AND c.user_id = $2 ORDER BY k.name, c.client_id`, r.tenantID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*OIDCConsent
	for rows.Next() {
		var c OIDCConsent
		var raw string
		if err := rows.Scan(&c.ClientID, &c.ClientName, &raw, &c.GrantedAt, &c.UpdatedAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(raw), &c.Scopes); err != nil {
			return nil, tutela.Wrap(err, "consent row unreadable")
		}
		c.GrantedAt, c.UpdatedAt = c.GrantedAt.UTC(), c.UpdatedAt.UTC()
		out = append(out, &c)
	}
	return out, rows.Err()
}

// Revoke forgets the user's consent to the client and ends the client's sessions of that user
// (and with them their refresh tokens): withdrawing consent must stop the application from
// reading more, not only from asking again. It returns ENOTFOUND when there was nothing to
// revoke.
func (r OIDCConsents) Revoke(ctx context.Context, userID, clientID string) error {
	if !tutela.ValidID(userID) || clientID == "" {
		return tutela.Errorf(tutela.ENOTFOUND, "consent not found")
	}
	res, err := r.tx.exec(ctx, `DELETE FROM oidc_consents WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3`,
		r.tenantID, userID, clientID)
	if err != nil {
		return err
	}
	deleted, err := res.RowsAffected()
	if err != nil {
		return err
	}
	ids, err := r.tx.queryStrings(ctx, `SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3 AND revoked_at IS NULL`,
		r.tenantID, userID, clientID)
	if err != nil {
		return err
	}
	if deleted == 0 && len(ids) == 0 {
		return tutela.Errorf(tutela.ENOTFOUND, "consent not found")
	}
	for _, id := range ids {
		if err := r.tx.RevokeSessionByID(ctx, id, "consent_revoked"); err != nil {
			return err
		}
	}
	return r.tx.Record(ctx, "oidc.consent.revoke", r.tenantID, "user", userID, "", map[string]any{"client_id": clientID, "sessions": len(ids)})
}
