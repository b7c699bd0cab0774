package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
	"tutela/files"
	"tutela/vault"
)

var errNoLink = tutela.Errorf(tutela.ENOTFOUND, "link not found")

// linkClockLeeway lets a link's expiry be computed from a clock read just before this
// transaction's, without letting a link outlive files.MaxLinkTTL by more than that.
const linkClockLeeway = time.Minute

const fileLinkCols = `id, tenant_id, file_id, key_id, audience, user_id, single_use, expires_at, used_at, revoked_at,
	created_by, created_at`

func scanFileLink(row interface{ Scan(...any) error }) (*files.Link, error) {
	var l files.Link
	var audience string
	var user sql.NullString
	var used, revoked sql.NullTime
	var keyID int64
	err := row.Scan(&l.ID, &l.TenantID, &l.FileID, &keyID, &audience, &user, &l.SingleUse, &l.ExpiresAt, &used, &revoked,
		&l.CreatedBy, &l.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoLink
	}
	if err != nil {
		return nil, err
	}
	l.KeyID, l.Audience, l.UserID = uint32(keyID), files.Audience(audience), user.String // #nosec G115 -- key IDs are written from uint32 values
	l.UsedAt, l.RevokedAt = optTime(used), optTime(revoked)
	l.ExpiresAt, l.CreatedAt = l.ExpiresAt.UTC(), l.CreatedAt.UTC()
	return &l, nil
}

// CreateLink stores a new download link for an available file of the tenant: l.ID when empty
// (the caller sets it when a token signed over it exists already), TenantID and CreatedAt are
// assigned (UsedAt and RevokedAt cleared). A user link names its user, an
// anyone link none; it expires after now and at most files.MaxLinkTTL ahead. A quarantined
// file is tutela.EQUARANTINED with its quarantine reason as Reason (the client may retry
// later); an infected, deleted or erased one is not found, as is another tenant's. The file's
// row is held FOR SHARE, so a concurrent Delete or erasure, which revokes every link, cannot
// miss this one.
func (s Files) CreateLink(ctx context.Context, l *files.Link) error {
	switch {
	case l.Audience != files.AudienceUser && l.Audience != files.AudienceAnyone:
		return tutela.FieldErrorf("audience", "audience must be user or anyone")
	case l.Audience == files.AudienceUser && !tutela.ValidID(l.UserID):
		return tutela.FieldErrorf("user_id", "a user link names its user")
	case l.Audience == files.AudienceAnyone && l.UserID != "":
		return tutela.FieldErrorf("user_id", "a link for anyone names no user")
	case !l.ExpiresAt.After(s.tx.now) || l.ExpiresAt.After(s.tx.now.Add(files.MaxLinkTTL+linkClockLeeway)):
		return tutela.FieldErrorf("expires_at", "a link expires after now and at most %s ahead", files.MaxLinkTTL)
	case len(l.CreatedBy) > maxFileText || !tutela.ValidText(l.CreatedBy):
		return tutela.FieldErrorf("created_by", "created_by must be at most %d bytes of text", maxFileText)
	}
	f, err := s.get(ctx, l.FileID, "FOR SHARE")
	if err != nil {
		return err
	}
	if err := f.Downloadable(); err != nil {
		return err
	}
	if l.ID == "" {
		l.ID = tutela.NewID()
	} else if !tutela.ValidID(l.ID) {
		return tutela.FieldErrorf("id", "link ID is not valid")
	}
	l.TenantID, l.CreatedAt, l.UsedAt, l.RevokedAt = s.tenantID, s.tx.now, nil, nil
	l.ExpiresAt = l.ExpiresAt.UTC().Truncate(time.Microsecond)
	_, err = s.tx.exec(ctx, `INSERT INTO file_links (`+fileLinkCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		l.ID, l.TenantID, l.FileID, int64(l.KeyID), string(l.Audience), nullStr(l.UserID), l.SingleUse, l.ExpiresAt, nil, nil,
		l.CreatedBy, l.CreatedAt)
	return err
}

// Links lists the links of the tenant's file (revoked, used and expired ones too), newest
// first. Another tenant's or an unknown file is not found.
func (s Files) Links(ctx context.Context, fileID string) ([]files.Link, error) {
	if _, err := s.get(ctx, fileID, ""); err != nil {
		return nil, err
	}
	rows, err := s.tx.query(ctx, `SELECT `+fileLinkCols+` FROM file_links WHERE tenant_id = $1 AND file_id = $2
		ORDER BY id DESC`, s.tenantID, fileID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []files.Link{}
	for rows.Next() {
		l, err := scanFileLink(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *l)
	}
	return out, rows.Err()
}

// RevokeLink revokes one of the file's links now. Revoking a revoked link changes nothing; a
// link of another file or tenant is not found.
func (s Files) RevokeLink(ctx context.Context, fileID, linkID string) error {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(fileID) || !tutela.ValidID(linkID) {
		return errNoLink
	}
	var id string
	err := s.tx.queryRow(ctx, `SELECT id FROM file_links WHERE tenant_id = $1 AND file_id = $2 AND id = $3`,
		s.tenantID, fileID, linkID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return errNoLink
	}
	if err != nil {
		return err
	}
	_, err = s.tx.exec(ctx, `UPDATE file_links SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL`,
		s.tx.now, s.tenantID, linkID)
	return err
}

// FileLink finds a link by ID in any tenant: the public download route learns the tenant only
// from the link, after it has verified the token's signature. Unknown or malformed: not found.
func (tx *Tx) FileLink(ctx context.Context, linkID string) (*files.Link, error) {
	if !tutela.ValidID(linkID) {
		return nil, errNoLink
	}
	return scanFileLink(tx.queryRow(ctx, `SELECT `+fileLinkCols+` FROM file_links WHERE id = $1`, linkID))
}

// UseFileLink spends a single-use link, atomically: the UPDATE matches only an unused,
// unrevoked, unexpired row, so of two concurrent downloads exactly one wins and the other (and
// every later use) is tutela.ELINKGONE. For a multi-use link it does nothing; the caller has
// checked expiry and revocation on the row it read.
func (tx *Tx) UseFileLink(ctx context.Context, link *files.Link) error {
	if link == nil || !tutela.ValidID(link.ID) || !tutela.ValidID(link.TenantID) {
		return errNoLink
	}
	if !link.SingleUse {
		return nil
	}
	res, err := tx.exec(ctx, `UPDATE file_links SET used_at = $1 WHERE tenant_id = $2 AND id = $3 AND single_use
		AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1`, tx.now, link.TenantID, link.ID)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return tutela.Errorf(tutela.ELINKGONE, "the link was already used, was revoked or has expired")
	}
	now := tx.now
	link.UsedAt = &now
	return nil
}

// FileLinkKeysSource is the rewrap source of the file_links keyset. Link tokens are signed
// with it and never stored (only the link's key ID is), so there is nothing to rewrap: retiring
// an old key after a rotation is exactly how every link it signed is revoked at once, and
// `keys retire` is allowed to do so.
func FileLinkKeysSource() vault.RewrapSource { return fileLinkKeys{} }

type fileLinkKeys struct{}

func (fileLinkKeys) Name() string { return "file_links" }

// Next lists nothing: no token is stored anywhere.
func (fileLinkKeys) Next(context.Context, string, int) ([]vault.RewrapItem, error) { return nil, nil }

// Save has nothing to write.
func (fileLinkKeys) Save(context.Context, []vault.RewrapItem) error { return nil }
