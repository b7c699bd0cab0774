package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/partners"
)

// ServiceAccount is a tenant's integration account: no interactive sign-in, authenticates with
// a client ID and secret.
type ServiceAccount struct {
	ID          string               `json:"id"`
	TenantID    string               `json:"tenant_id"`
	Name        string               `json:"name"`
	ClientID    string               `json:"client_id"`
	Status      tutela.Status        `json:"status"`
	CreatedAt   time.Time            `json:"created_at"`
	Clearance   authz.Classification `json:"clearance"`
	IPAllowlist []string             `json:"ip_allowlist"`
	ExpiresAt   *time.Time           `json:"expires_at,omitempty"`
	Permissions []authz.Permission   `json:"permissions"`
	// PartnerID is the partner organisation the account belongs to (issue 18): it holds exactly
	// PartnerServiceAccountPermissions at GREEN, whatever else is asked for.
	PartnerID string `json:"partner_id,omitempty"`
	// AuthMethod is how the account authenticated this request (client_secret or
	// private_key_jwt); set by the caller, never stored.
	AuthMethod string `json:"-"`
	// CreatedBy is the user whose account made this one (see creatorOf); approvals treat the
	// account as that person. Not shown: it links accounts to people.
	CreatedBy string `json:"-"`
}

// DefaultServiceAccountPermissions is the read-only set an account gets when created without
// an explicit one.
var DefaultServiceAccountPermissions = []authz.Permission{{Resource: authz.ResRecords, Action: authz.Read, MaxClass: authz.Green}}

// PartnerServiceAccountPermissions is everything a partner's service account may do: read the
// referrals sent to its partner and confirm their receipt and outcome.
var PartnerServiceAccountPermissions = []authz.Permission{
	{Resource: authz.ResReferrals, Action: authz.Read, MaxClass: authz.Green},
	{Resource: authz.ResReferrals, Action: authz.Update, MaxClass: authz.Green},
}

// Usable reports whether the account may authenticate at now: active and not expired.
func (sa *ServiceAccount) Usable(now time.Time) bool {
	return sa.Status == tutela.StatusActive && (sa.ExpiresAt == nil || now.Before(*sa.ExpiresAt))
}

// AllowsIP reports whether ip may use the account (an empty allowlist allows every address).
func (sa *ServiceAccount) AllowsIP(ip string) bool {
	if len(sa.IPAllowlist) == 0 {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, c := range sa.IPAllowlist {
		if pfx, err := netip.ParsePrefix(c); err == nil && pfx.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

func normalizeAllowlist(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, c := range in {
		c = strings.TrimSpace(c)
		if !strings.Contains(c, "/") {
			a, err := netip.ParseAddr(c)
			if err != nil {
				return nil, tutela.FieldErrorf("ip_allowlist", "%q is not an IP address or CIDR", c)
			}
			c = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()).String()
		}
		p, err := netip.ParsePrefix(c)
		if err != nil || p.Masked() != p {
			return nil, tutela.FieldErrorf("ip_allowlist", "%q is not a CIDR with host bits zero", c)
		}
		out = append(out, p.String())
	}
	return out, nil
}

// CreateServiceAccount stores sa (ID, ClientID, CreatedAt assigned) with its first secret,
// given as a hash.
func (tx *Tx) CreateServiceAccount(ctx context.Context, sa *ServiceAccount, secretHash []byte) error {
	name := strings.TrimSpace(sa.Name)
	if name == "" || len(name) > 100 {
		return tutela.FieldErrorf("name", "name must be 1-100 characters")
	}
	if !tutela.ValidText(name) {
		return tutela.InvalidText("name")
	}
	if sa.PartnerID != "" {
		if !tutela.ValidID(sa.PartnerID) {
			return tutela.Errorf(tutela.ENOTFOUND, "partner not found")
		}
		sa.Clearance, sa.Permissions = authz.Green, slices.Clone(PartnerServiceAccountPermissions)
	}
	if sa.Clearance == "" {
		sa.Clearance = authz.Green
	}
	if !sa.Clearance.Valid() {
		return tutela.FieldErrorf("clearance", "clearance must be GREEN, YELLOW or RED")
	}
	if len(sa.Permissions) == 0 {
		sa.Permissions = DefaultServiceAccountPermissions
	}
	for _, p := range sa.Permissions {
		if err := validatePermission(p); err != nil {
			return err
		}
	}
	allow, err := normalizeAllowlist(sa.IPAllowlist)
	if err != nil {
		return err
	}
	sa.IPAllowlist = allow
	var exp any
	if sa.ExpiresAt != nil {
		if !sa.ExpiresAt.After(tx.now) {
			return tutela.FieldErrorf("expires_at", "expires_at must be in the future")
		}
		exp = sa.ExpiresAt.UTC()
	}
	if err := tx.lockTenant(ctx, sa.TenantID); err != nil {
		return err
	}
	if sa.PartnerID != "" {
		p, err := tx.Partners(sa.TenantID).get(ctx, sa.PartnerID, "FOR SHARE")
		if err != nil {
			return err
		}
		if p.Status != partners.StatusActive {
			return tutela.Errorf(tutela.ECONFLICT, "the partner is disabled: it gets no new service accounts")
		}
	}
	n, err := tx.count(ctx, `SELECT count(*) FROM service_accounts WHERE tenant_id = $1`, sa.TenantID)
	if err != nil {
		return err
	}
	if n >= MaxServiceAccountsPerTenant {
		return tutela.Errorf(tutela.ECONFLICT, "a tenant has at most %d service accounts, disabled ones included",
			MaxServiceAccountsPerTenant)
	}
	if sa.CreatedBy == "" {
		if sa.CreatedBy, err = tx.creatorOf(ctx); err != nil {
			return err
		}
	}
	sa.ID, sa.ClientID, sa.Name, sa.Status, sa.CreatedAt = tutela.NewID(), "sa_"+tutela.RandomToken(16), name, tutela.StatusActive, tx.now
	_, err = tx.exec(ctx, `INSERT INTO service_accounts (id, tenant_id, name, client_id, status, created_at, clearance, ip_allowlist, expires_at,
		created_by, partner_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, sa.ID, sa.TenantID, sa.Name, sa.ClientID, string(sa.Status), sa.CreatedAt,
		string(sa.Clearance), strings.Join(sa.IPAllowlist, ","), exp, sa.CreatedBy, nullID(sa.PartnerID))
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		return &tutela.Error{Code: tutela.ECONFLICT, Field: "name", Message: "a service account with this name already exists"}
	}
	if isForeignKeyErr(err) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err != nil {
		return err
	}
	for _, p := range sa.Permissions {
		pid, err := tx.permissionID(ctx, p)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO service_account_permissions (service_account_id, permission_id) VALUES ($1, $2)
			ON CONFLICT DO NOTHING`, sa.ID, pid); err != nil {
			return err
		}
	}
	_, err = tx.exec(ctx, `INSERT INTO service_account_secrets (id, service_account_id, secret_hash, created_at)
		VALUES ($1, $2, $3, $4)`, tutela.NewID(), sa.ID, secretHash, tx.now)
	if err != nil {
		return err
	}
	details := map[string]any{"client_id": sa.ClientID}
	if sa.PartnerID != "" {
		details["partner_id"] = sa.PartnerID
	}
	return tx.Record(ctx, "service_account.create", sa.TenantID, "service_account", sa.ID, "", details)
}

// ServiceAccountSecretHashes returns the active service account with clientID and the hashes of
// its unexpired, unrevoked secrets.
func (tx *Tx) ServiceAccountSecretHashes(ctx context.Context, clientID string) (*ServiceAccount, [][]byte, error) {
	sa, secrets, err := tx.ServiceAccountSecrets(ctx, clientID)
	if err != nil {
		return nil, nil, err
	}
	hashes := make([][]byte, len(secrets))
	for i, s := range secrets {
		hashes[i] = s.Hash
	}
	return sa, hashes, nil
}

// SecretHash is a stored service-account secret: its SHA-256 and when it expires (nil: never).
type SecretHash struct {
	Hash      []byte
	ExpiresAt *time.Time
}

// ServiceAccountSecrets is ServiceAccountSecretHashes with each secret's expiry, so a cache of a
// successful check can end with the secret.
func (tx *Tx) ServiceAccountSecrets(ctx context.Context, clientID string) (*ServiceAccount, []SecretHash, error) {
	sa, err := tx.serviceAccount(ctx, `client_id = $1`, clientID)
	if err != nil {
		return nil, nil, err
	}
	rows, err := tx.query(ctx, `SELECT secret_hash, expires_at FROM service_account_secrets WHERE service_account_id = $1
		AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`, sa.ID, tx.now)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var out []SecretHash
	for rows.Next() {
		var h SecretHash
		var exp sql.NullTime
		if err := rows.Scan(&h.Hash, &exp); err != nil {
			return nil, nil, err
		}
		if exp.Valid {
			t := exp.Time.UTC()
			h.ExpiresAt = &t
		}
		out = append(out, h)
	}
	return sa, out, rows.Err()
}

const saCols = `id, tenant_id, name, client_id, status, created_at, clearance, ip_allowlist, expires_at, COALESCE(CAST(partner_id AS TEXT), '')`

func (tx *Tx) serviceAccount(ctx context.Context, where string, args ...any) (*ServiceAccount, error) {
	var sa ServiceAccount
	var status, cl, allow string
	var exp sql.NullTime
	err := tx.queryRow(ctx, `SELECT `+saCols+` FROM service_accounts WHERE `+where, args...).
		Scan(&sa.ID, &sa.TenantID, &sa.Name, &sa.ClientID, &status, &sa.CreatedAt, &cl, &allow, &exp, &sa.PartnerID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "service account not found")
	}
	if err != nil {
		return nil, err
	}
	sa.Status, sa.CreatedAt, sa.Clearance = tutela.Status(status), sa.CreatedAt.UTC(), authz.Classification(cl)
	sa.IPAllowlist = []string{}
	if allow != "" {
		sa.IPAllowlist = strings.Split(allow, ",")
	}
	if exp.Valid {
		t := exp.Time.UTC()
		sa.ExpiresAt = &t
	}
	rows, err := tx.query(ctx, `SELECT p.resource_type, p.action, COALESCE(p.max_classification, '') FROM service_account_permissions sp
		JOIN permissions p ON p.id = sp.permission_id WHERE sp.service_account_id = $1 ORDER BY p.resource_type, p.action`, sa.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var p authz.Permission
		var a, mc string
		if err := rows.Scan(&p.Resource, &a, &mc); err != nil {
			return nil, err
		}
		p.Action, p.MaxClass = authz.Action(a), authz.Classification(mc)
		sa.Permissions = append(sa.Permissions, p)
	}
	return &sa, rows.Err()
}

// ServiceAccount returns the tenant's service account by ID.
func (tx *Tx) ServiceAccount(ctx context.Context, tenantID, id string) (*ServiceAccount, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(tenantID) {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "service account not found")
	}
	return tx.serviceAccount(ctx, `tenant_id = $1 AND id = $2`, tenantID, id)
}

// ServiceAccounts lists the tenant's service accounts.
func (tx *Tx) ServiceAccounts(ctx context.Context, tenantID string) ([]*ServiceAccount, error) {
	ids, err := tx.queryStrings(ctx, `SELECT id FROM service_accounts WHERE tenant_id = $1 ORDER BY name`, tenantID)
	if err != nil {
		return nil, err
	}
	out := []*ServiceAccount{}
	for _, id := range ids {
		sa, err := tx.ServiceAccount(ctx, tenantID, id)
		if err != nil {
			return nil, err
		}
		out = append(out, sa)
	}
	return out, nil
}

// MaxActiveSecrets is how many secrets a service account may have at once: two, so a secret
// can be rotated without downtime (add the new one, deploy it, revoke the old one).
const MaxActiveSecrets = 2

// AddServiceAccountSecret adds a secret (as its hash); a third active secret is a conflict.
func (tx *Tx) AddServiceAccountSecret(ctx context.Context, tenantID, saID string, secretHash []byte) (string, error) {
	if _, err := tx.ServiceAccount(ctx, tenantID, saID); err != nil {
		return "", err
	}
	if err := tx.lockServiceAccount(ctx, saID); err != nil {
		return "", err
	}
	var n int
	if err := tx.queryRow(ctx, `SELECT count(*) FROM service_account_secrets WHERE service_account_id = $1
		AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`, saID, tx.now).Scan(&n); err != nil {
		return "", err
	}
	if n >= MaxActiveSecrets {
		return "", tutela.Errorf(tutela.ECONFLICT, "a service account has at most %d active secrets; revoke one first", MaxActiveSecrets)
	}
	id := tutela.NewID()
	if _, err := tx.exec(ctx, `INSERT INTO service_account_secrets (id, service_account_id, secret_hash, created_at)
		VALUES ($1, $2, $3, $4)`, id, saID, secretHash, tx.now); err != nil {
		return "", err
	}
	return id, tx.Record(ctx, "service_account.secret_add", tenantID, "service_account", saID, "", map[string]any{"secret_id": id})
}

// lockServiceAccount is lockTenant for the per-account caps on secrets and keys.
func (tx *Tx) lockServiceAccount(ctx context.Context, saID string) error {
	if !tutela.ValidID(saID) {
		return tutela.Errorf(tutela.ENOTFOUND, "service account not found")
	}
	return tx.lockRow(ctx, "service account not found", `SELECT id FROM service_accounts WHERE id = $1`, saID)
}

// RevokeServiceAccountSecret revokes one secret.
func (tx *Tx) RevokeServiceAccountSecret(ctx context.Context, tenantID, saID, secretID string) error {
	if _, err := tx.ServiceAccount(ctx, tenantID, saID); err != nil {
		return err
	}
	if !tutela.ValidID(secretID) {
		return tutela.Errorf(tutela.ENOTFOUND, "secret not found")
	}
	res, err := tx.exec(ctx, `UPDATE service_account_secrets SET revoked_at = $1 WHERE id = $2 AND service_account_id = $3
		AND revoked_at IS NULL`, tx.now, secretID, saID)
	if err := affectedOne(res, err, "secret not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "service_account.secret_revoke", tenantID, "service_account", saID, "", map[string]any{"secret_id": secretID})
}

// SetServiceAccountStatus enables or disables an account.
func (tx *Tx) SetServiceAccountStatus(ctx context.Context, tenantID, saID string, st tutela.Status) error {
	res, err := tx.exec(ctx, `UPDATE service_accounts SET status = $1 WHERE tenant_id = $2 AND id = $3`, string(st), tenantID, saID)
	if err := affectedOne(res, err, "service account not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "service_account.status", tenantID, "service_account", saID, "", map[string]any{"status": string(st)})
}

// ServiceAccountPolicy is the authorization policy of a service account: exactly its
// permission set, at its clearance.
func (tx *Tx) ServiceAccountPolicy(ctx context.Context, tenantID, saID string) (*authz.Policy, error) {
	sa, err := tx.ServiceAccount(ctx, tenantID, saID)
	if err != nil {
		return nil, err
	}
	p := &authz.Policy{TenantID: tenantID, Subject: saID, Clearance: sa.Clearance}
	if sa.PartnerID != "" {
		// A partner's account: exactly the partner set at GREEN, whatever the rows say.
		p.Clearance, p.Partner = authz.Green, sa.PartnerID
		sa.Permissions = slices.DeleteFunc(sa.Permissions, func(perm authz.Permission) bool {
			return !slices.Contains(PartnerServiceAccountPermissions, perm)
		})
	}
	for _, perm := range sa.Permissions {
		p.Grants = append(p.Grants, authz.Grant{Permission: perm, Effect: authz.Allow, Source: "service_account"})
	}
	p.Masks = authz.MasksFor(p.Clearance, nil)
	return p, nil
}

// creatorOf is the user a new service account is created by: the requesting
// user, or, when a service account creates it, that account's own creator (so a chain of
// accounts still leads back to the person who started it). "" when no user is behind the
// request (the CLI, bootstrap).
func (tx *Tx) creatorOf(ctx context.Context) (string, error) {
	m := tutela.RequestMetaFrom(ctx)
	if m == nil || m.Principal == nil {
		return "", nil
	}
	switch m.Principal.Kind {
	case tutela.PrincipalUser:
		return m.Principal.UserID, nil
	case tutela.PrincipalServiceAccount:
		var creator string
		err := tx.queryRow(ctx, `SELECT created_by FROM service_accounts WHERE id = $1`, m.Principal.UserID).Scan(&creator)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil
		}
		return creator, err
	}
	return "", nil
}
