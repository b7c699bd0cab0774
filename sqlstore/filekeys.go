package sqlstore

import (
	"context"
	"errors"

	"tutela"
	"tutela/files"
	"tutela/privacy"
	"tutela/vault"
)

// A stored file's data key and name are sealed for whoever owns the file: a subject's file under
// the subject's own person key (so erasing the subject, which deletes that key, shreds the
// file), any other file under the tenant's files keyset, bound to the file's row.

// Person-key fields of a subject's file (the person key binds tenant and person; the field
// binds the file).
func fileDEKField(fileID string) string  { return "files.wrapped_dek/" + fileID }
func fileNameField(fileID string) string { return "files.name_sealed/" + fileID }

// ErrFileShredded means a file's data key is gone: the file was deleted, found infected, or its
// subject erased. Nothing can read it any more.
var ErrFileShredded = tutela.Errorf(tutela.ENOTFOUND, "file not found")

// SealFile wraps a new file's data key and seals its name for tenantID, under subjectID's key
// when the file belongs to a subject.
func (tx *Tx) SealFile(ctx context.Context, tenantID, subjectID, fileID string, dek []byte, name string) (wrapped, nameSealed []byte, err error) {
	if subjectID != "" {
		pk, err := tx.userKey(ctx, tenantID, subjectID)
		if errors.Is(err, privacy.ErrErased) || tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, nil, tutela.Errorf(tutela.ENOTFOUND, "subject not found")
		}
		if err != nil {
			return nil, nil, err
		}
		if wrapped, err = pk.Seal(fileDEKField(fileID), dek); err != nil {
			return nil, nil, err
		}
		nameSealed, err = pk.Seal(fileNameField(fileID), []byte(name))
		return wrapped, nameSealed, err
	}
	vctx, v, err := tx.vaultCtx(ctx)
	if err != nil {
		return nil, nil, err
	}
	if wrapped, err = v.Encrypt(vctx, tenantID, vault.PurposeFiles, dek, FileDEKAAD(fileID)); err != nil {
		return nil, nil, err
	}
	nameSealed, err = v.Encrypt(vctx, tenantID, vault.PurposeFiles, []byte(name), FileNameAAD(fileID))
	return wrapped, nameSealed, err
}

// OpenFile opens f's data key and name. A shredded file (no key, or its subject erased) is
// ErrFileShredded.
func (tx *Tx) OpenFile(ctx context.Context, f *files.File) (dek []byte, name string, err error) {
	if f.WrappedDEK == nil {
		return nil, "", ErrFileShredded
	}
	var nm []byte
	if f.SubjectID != "" {
		pk, err := tx.userKey(ctx, f.TenantID, f.SubjectID)
		if errors.Is(err, privacy.ErrErased) || tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, "", ErrFileShredded
		}
		if err != nil {
			return nil, "", err
		}
		if dek, err = pk.Open(fileDEKField(f.ID), f.WrappedDEK); err != nil {
			return nil, "", err
		}
		if f.NameSealed != nil {
			if nm, err = pk.Open(fileNameField(f.ID), f.NameSealed); err != nil {
				return nil, "", err
			}
		}
		return dek, string(nm), nil
	}
	vctx, v, err := tx.vaultCtx(ctx)
	if err != nil {
		return nil, "", err
	}
	if dek, err = v.Decrypt(vctx, f.TenantID, vault.PurposeFiles, f.WrappedDEK, FileDEKAAD(f.ID)); err != nil {
		return nil, "", err
	}
	if f.NameSealed != nil {
		if nm, err = v.Decrypt(vctx, f.TenantID, vault.PurposeFiles, f.NameSealed, FileNameAAD(f.ID)); err != nil {
			return nil, "", err
		}
	}
	return dek, string(nm), nil
}
