package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"

	"tutela"
	"tutela/ai"
	"tutela/vault"
)

// AI is a tenant's AI gateway configuration (issue 16): its providers and their sealed API
// keys (this file), its models, purposes and settings (ai_config.go), and the usage counted
// against its limits (ai_usage.go).
type AI struct {
	tx       *Tx
	tenantID string
}

// AI scopes the gateway's store to one tenant.
func (tx *Tx) AI(tenantID string) AI { return AI{tx: tx, tenantID: tenantID} }

var errNoProvider = tutela.Errorf(tutela.ENOTFOUND, "provider not found")

const aiProviderCols = `id, tenant_id, name, base_url, auth_style, timeout_seconds, max_retries, disabled, created_at, updated_at`

func scanAIProvider(row interface{ Scan(...any) error }) (*ai.Provider, error) {
	var p ai.Provider
	err := row.Scan(&p.ID, &p.TenantID, &p.Name, &p.BaseURL, &p.AuthStyle, &p.TimeoutSeconds, &p.MaxRetries, &p.Disabled,
		&p.CreatedAt, &p.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoProvider
	}
	if err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	p.Keys = []ai.KeyInfo{}
	return &p, nil
}

// errProviderNameTaken is the conflict of a second provider with a name the tenant already uses.
func errProviderNameTaken() error {
	return &tutela.Error{Code: tutela.ECONFLICT, Field: "name", Message: "the tenant already has a provider with this name"}
}

// providerNamed reports whether the tenant has a provider called name other than exceptID.
func (s AI) providerNamed(ctx context.Context, name, exceptID string) (bool, error) {
	var id string
	err := s.tx.queryRow(ctx, `SELECT id FROM ai_providers WHERE tenant_id = $1 AND name = $2`, s.tenantID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil && id != exceptID, err
}

// CreateProvider stores p (ID, TenantID, CreatedAt and UpdatedAt are assigned; Keys ignored:
// keys are added with AddKey) and records ai.provider_create. A tenant has at most
// ai.MaxProvidersPerTenant providers; a second one with the same name is a conflict.
func (s AI) CreateProvider(ctx context.Context, p *ai.Provider) error {
	if err := p.Check(); err != nil {
		return err
	}
	// Serialises creations in the tenant, so two cannot both pass the cap.
	if err := s.tx.lockTenant(ctx, s.tenantID); err != nil {
		return err
	}
	n, err := s.tx.count(ctx, `SELECT count(*) FROM ai_providers WHERE tenant_id = $1`, s.tenantID)
	if err != nil {
		return err
	}
	if n >= ai.MaxProvidersPerTenant {
		return tutela.Errorf(tutela.ECONFLICT, "a tenant has at most %d AI providers; delete one first", ai.MaxProvidersPerTenant)
	}
	if taken, err := s.providerNamed(ctx, p.Name, ""); err != nil || taken {
		if err == nil {
			err = errProviderNameTaken()
		}
		return err
	}
	p.ID, p.TenantID, p.CreatedAt, p.UpdatedAt, p.Keys = tutela.NewID(), s.tenantID, s.tx.now, s.tx.now, []ai.KeyInfo{}
	if _, err := s.tx.exec(ctx, `INSERT INTO ai_providers (`+aiProviderCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
		p.ID, p.TenantID, p.Name, p.BaseURL, string(p.AuthStyle), p.TimeoutSeconds, p.MaxRetries, p.Disabled,
		p.CreatedAt, p.UpdatedAt); err != nil {
		return err
	}
	return s.tx.Record(ctx, "ai.provider_create", s.tenantID, "ai_provider", p.ID, "", map[string]any{
		"name": p.Name, "base_url": p.BaseURL, "auth_style": string(p.AuthStyle), "disabled": p.Disabled})
}

// UpdateProvider saves p's name, base URL, auth style, timeout, retries and disabled flag, and
// records ai.provider_update naming the fields that changed. p's keys are left as they are
// (and filled in from the store on return).
func (s AI) UpdateProvider(ctx context.Context, p *ai.Provider) error {
	if err := p.Check(); err != nil {
		return err
	}
	old, err := s.lockProvider(ctx, p.ID)
	if err != nil {
		return err
	}
	if len(old.Keys) > 0 && baseHost(old.BaseURL) != baseHost(p.BaseURL) {
		// The keys were issued for the old host: sending them to another one is a leak the
		// administrator may not have meant, so the new host starts without them.
		return &tutela.Error{Code: tutela.ECONFLICT, Field: "base_url", Message: "the provider's API keys would go to another host: " +
			"delete its keys first (then add the new host's), or create another provider"}
	}
	if p.Name != old.Name {
		if taken, err := s.providerNamed(ctx, p.Name, p.ID); err != nil || taken {
			if err == nil {
				err = errProviderNameTaken()
			}
			return err
		}
	}
	p.TenantID, p.CreatedAt, p.UpdatedAt = old.TenantID, old.CreatedAt, s.tx.now
	if _, err := s.tx.exec(ctx, `UPDATE ai_providers SET name = $1, base_url = $2, auth_style = $3, timeout_seconds = $4,
		max_retries = $5, disabled = $6, updated_at = $7 WHERE tenant_id = $8 AND id = $9`,
		p.Name, p.BaseURL, string(p.AuthStyle), p.TimeoutSeconds, p.MaxRetries, p.Disabled, p.UpdatedAt, s.tenantID, p.ID); err != nil {
		return err
	}
	if p.Keys, err = s.keyInfos(ctx, p.ID); err != nil {
		return err
	}
	changed := []string{}
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"name", old.Name, p.Name}, {"base_url", old.BaseURL, p.BaseURL}, {"auth_style", old.AuthStyle, p.AuthStyle},
		{"timeout_seconds", old.TimeoutSeconds, p.TimeoutSeconds}, {"max_retries", old.MaxRetries, p.MaxRetries},
		{"disabled", old.Disabled, p.Disabled},
	} {
		if f.a != f.b {
			changed = append(changed, f.name)
		}
	}
	return s.tx.Record(ctx, "ai.provider_update", s.tenantID, "ai_provider", p.ID, "",
		map[string]any{"name": p.Name, "changed": changed})
}

// DeleteProvider deletes the provider and its keys, and records ai.provider_delete. A provider
// a model still uses is a conflict: delete or move the model first, so no allowed model is left
// pointing nowhere.
func (s AI) DeleteProvider(ctx context.Context, id string) error {
	if !tutela.ValidID(id) {
		return errNoProvider
	}
	// The tenant's row first, as PutModel takes it: a model cannot be pointed at the provider
	// between the count below and the delete.
	if err := s.tx.lockTenant(ctx, s.tenantID); err != nil {
		return err
	}
	p, err := s.lockProvider(ctx, id)
	if err != nil {
		return err
	}
	n, err := s.tx.count(ctx, `SELECT count(*) FROM ai_models WHERE tenant_id = $1 AND provider_id = $2`, s.tenantID, id)
	if err != nil {
		return err
	}
	if n > 0 {
		return tutela.Errorf(tutela.ECONFLICT, "%d model(s) use this provider; delete them or move them to another provider first", n)
	}
	keys, err := s.keyInfos(ctx, id)
	if err != nil {
		return err
	}
	if _, err := s.tx.exec(ctx, `DELETE FROM ai_provider_keys WHERE tenant_id = $1 AND provider_id = $2`, s.tenantID, id); err != nil {
		return err
	}
	if _, err := s.tx.exec(ctx, `DELETE FROM ai_providers WHERE tenant_id = $1 AND id = $2`, s.tenantID, id); err != nil {
		return err
	}
	keyIDs := make([]string, len(keys))
	for i, k := range keys {
		keyIDs[i] = k.ID
	}
	return s.tx.Record(ctx, "ai.provider_delete", s.tenantID, "ai_provider", id, "",
		map[string]any{"name": p.Name, "key_ids": keyIDs})
}

// Provider returns the tenant's provider with its keys (never the keys themselves), newest
// first. Another tenant's, an unknown or a malformed ID is not found.
func (s AI) Provider(ctx context.Context, id string) (*ai.Provider, error) {
	p, err := s.ProviderSettings(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.Keys, err = s.keyInfos(ctx, id); err != nil {
		return nil, err
	}
	return p, nil
}

// ProviderSettings is Provider without its keys' descriptions (Keys empty): what a call needs,
// one query fewer on the gateway's path (the call opens the keys themselves with Keys).
func (s AI) ProviderSettings(ctx context.Context, id string) (*ai.Provider, error) {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) {
		return nil, errNoProvider
	}
	return scanAIProvider(s.tx.queryRow(ctx, `SELECT `+aiProviderCols+` FROM ai_providers WHERE tenant_id = $1 AND id = $2`,
		s.tenantID, id))
}

// lockProvider is Provider holding the provider's row until the transaction ends, so changes
// to one provider (two rotations, a rotation and a delete) happen one after the other.
func (s AI) lockProvider(ctx context.Context, id string) (*ai.Provider, error) {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) {
		return nil, errNoProvider
	}
	if err := s.tx.lockRow(ctx, errNoProvider.Message, `SELECT id FROM ai_providers WHERE tenant_id = $1 AND id = $2`,
		s.tenantID, id); err != nil {
		return nil, err
	}
	return s.Provider(ctx, id)
}

// Providers lists the tenant's providers by name, each with its keys' descriptions.
func (s AI) Providers(ctx context.Context) ([]*ai.Provider, error) {
	out := []*ai.Provider{}
	if !tutela.ValidID(s.tenantID) {
		return out, nil
	}
	rows, err := s.tx.query(ctx, `SELECT `+aiProviderCols+` FROM ai_providers WHERE tenant_id = $1 ORDER BY name`, s.tenantID)
	if err != nil {
		return nil, err
	}
	byID := map[string]*ai.Provider{}
	for rows.Next() {
		p, err := scanAIProvider(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, p)
		byID[p.ID] = p
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	krows, err := s.tx.query(ctx, `SELECT provider_id, id, hint, created_at, created_by FROM ai_provider_keys
		WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC`, s.tenantID)
	if err != nil {
		return nil, err
	}
	defer krows.Close()
	for krows.Next() {
		var pid string
		var k ai.KeyInfo
		if err := krows.Scan(&pid, &k.ID, &k.Hint, &k.CreatedAt, &k.CreatedBy); err != nil {
			return nil, err
		}
		k.CreatedAt = k.CreatedAt.UTC()
		if p := byID[pid]; p != nil {
			p.Keys = append(p.Keys, k)
		}
	}
	return out, krows.Err()
}

// keyInfos describes the provider's keys, newest first.
func (s AI) keyInfos(ctx context.Context, providerID string) ([]ai.KeyInfo, error) {
	rows, err := s.tx.query(ctx, `SELECT id, hint, created_at, created_by FROM ai_provider_keys
		WHERE tenant_id = $1 AND provider_id = $2 ORDER BY created_at DESC, id DESC`, s.tenantID, providerID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ai.KeyInfo{}
	for rows.Next() {
		var k ai.KeyInfo
		if err := rows.Scan(&k.ID, &k.Hint, &k.CreatedAt, &k.CreatedBy); err != nil {
			return nil, err
		}
		k.CreatedAt = k.CreatedAt.UTC()
		out = append(out, k)
	}
	return out, rows.Err()
}

// baseHost is the host (and port) a base URL sends to.
func baseHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return strings.ToLower(u.Host)
}

// aiKeyAAD binds a sealed API key to its row: a ciphertext copied to another key's row (of
// this or another provider) does not open there.
func aiKeyAAD(keyID string) []byte { return vault.AAD("ai_provider_keys", "ciphertext", keyID) }

// AddKey seals key under the tenant's ai_keys keyset and makes it the provider's primary key
// (the newest). When that gives the provider more than ai.MaxActiveKeys keys, the oldest are
// deleted in the same transaction (ai.key_retire): adding a key is how a key is rotated, and
// the key it replaces keeps serving as the fallback until the next rotation or an explicit
// DeleteKey. The audit event ai.key_add holds the key's ID and hint, never the key.
func (s AI) AddKey(ctx context.Context, providerID string, key tutela.Secret, createdBy string) (*ai.KeyInfo, error) {
	if err := ai.CheckKey(key.Reveal()); err != nil {
		return nil, err
	}
	if len(createdBy) > 200 || !tutela.ValidText(createdBy) {
		return nil, tutela.FieldErrorf("created_by", "created_by must be at most 200 bytes of text without control characters")
	}
	if _, err := s.lockProvider(ctx, providerID); err != nil {
		return nil, err
	}
	// A key already active would replace the real fallback with a copy of itself.
	active, err := s.Keys(ctx, providerID)
	if err != nil {
		return nil, err
	}
	for _, a := range active {
		if a.Secret.Equal(key) {
			return nil, &tutela.Error{Code: tutela.ECONFLICT, Field: "key", Message: "this key is already one of the provider's active keys"}
		}
	}
	vctx, v, err := s.tx.vaultCtx(ctx)
	if err != nil {
		return nil, err
	}
	k := &ai.KeyInfo{ID: tutela.NewID(), Hint: ai.KeyHint(key.Reveal()), CreatedAt: s.tx.now, CreatedBy: createdBy}
	ct, err := v.Encrypt(vctx, s.tenantID, vault.PurposeAIKeys, key.Bytes(), aiKeyAAD(k.ID))
	if err != nil {
		return nil, err
	}
	if _, err := s.tx.exec(ctx, `INSERT INTO ai_provider_keys (id, tenant_id, provider_id, ciphertext, hint, created_at, created_by)
		VALUES ($1,$2,$3,$4,$5,$6,$7)`, k.ID, s.tenantID, providerID, ct, k.Hint, k.CreatedAt, k.CreatedBy); err != nil {
		return nil, err
	}
	if err := s.tx.Record(ctx, "ai.key_add", s.tenantID, "ai_provider", providerID, "",
		map[string]any{"key_id": k.ID, "hint": k.Hint}); err != nil {
		return nil, err
	}
	keys, err := s.keyInfos(ctx, providerID)
	if err != nil {
		return nil, err
	}
	for i := ai.MaxActiveKeys; i < len(keys); i++ {
		if err := s.retireKey(ctx, providerID, keys[i], "rotated"); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// DeleteKey deletes one of the provider's keys now (a leaked key, or ending the overlap of a
// rotation early) and records ai.key_retire.
func (s AI) DeleteKey(ctx context.Context, providerID, keyID string) error {
	if _, err := s.lockProvider(ctx, providerID); err != nil {
		return err
	}
	if !tutela.ValidID(keyID) {
		return tutela.Errorf(tutela.ENOTFOUND, "key not found")
	}
	keys, err := s.keyInfos(ctx, providerID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.ID == keyID {
			return s.retireKey(ctx, providerID, k, "deleted")
		}
	}
	return tutela.Errorf(tutela.ENOTFOUND, "key not found")
}

func (s AI) retireKey(ctx context.Context, providerID string, k ai.KeyInfo, reason string) error {
	res, err := s.tx.exec(ctx, `DELETE FROM ai_provider_keys WHERE tenant_id = $1 AND provider_id = $2 AND id = $3`,
		s.tenantID, providerID, k.ID)
	if err := affectedOne(res, err, "key not found"); err != nil {
		return err
	}
	return s.tx.Record(ctx, "ai.key_retire", s.tenantID, "ai_provider", providerID, "",
		map[string]any{"key_id": k.ID, "hint": k.Hint, "reason": reason})
}

// Keys opens the provider's active keys, newest first, for the one request that uses them. A
// key that does not open (tampered, or copied from another row) is an error, not skipped: the
// store has been altered outside the application.
func (s AI) Keys(ctx context.Context, providerID string) ([]ai.Key, error) {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(providerID) {
		return nil, errNoProvider
	}
	rows, err := s.tx.query(ctx, `SELECT id, ciphertext FROM ai_provider_keys WHERE tenant_id = $1 AND provider_id = $2
		ORDER BY created_at DESC, id DESC`, s.tenantID, providerID)
	if err != nil {
		return nil, err
	}
	type sealed struct {
		id string
		ct []byte
	}
	var cts []sealed
	for rows.Next() {
		var c sealed
		if err := rows.Scan(&c.id, &c.ct); err != nil {
			rows.Close()
			return nil, err
		}
		cts = append(cts, c)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(cts) == 0 {
		// No keys: the provider's or no provider of this tenant at all (checked only now, as
		// the gateway asks for the keys of a provider it has just read).
		if _, err := s.Provider(ctx, providerID); err != nil {
			return nil, err
		}
		return []ai.Key{}, nil
	}
	vctx, v, err := s.tx.vaultCtx(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ai.Key, 0, len(cts))
	for _, c := range cts {
		pt, err := v.Decrypt(vctx, s.tenantID, vault.PurposeAIKeys, c.ct, aiKeyAAD(c.id))
		if err != nil {
			return nil, tutela.Wrap(err, "a provider API key does not open")
		}
		out = append(out, ai.Key{ID: c.id, Secret: tutela.NewSecretBytes(pt)})
	}
	return out, nil
}

// AIKeysSource lets `tutela keys rewrap` re-encrypt the providers' API keys after the tenants'
// ai_keys keysets are rotated (AAD as AddKey seals them).
func AIKeysSource(db *DB) SealedColumn {
	return SealedColumn{DB: db, Table: "ai_provider_keys", Column: "ciphertext", Purpose: vault.PurposeAIKeys,
		TenantCol: "tenant_id", Item: func(id, tenant, _ string) (string, []byte) {
			return tenant, aiKeyAAD(id)
		}}
}
