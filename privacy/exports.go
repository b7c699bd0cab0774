package privacy

import (
	"context"
	"fmt"
)

// An export is a subject's record as one read returned it, serialized and sealed under the
// subject's own key, so that erasing the subject makes every export of it unreadable with the
// rest of their data (crypto-shredding reaches exported files).

// exportField is the binding of an export's ciphertext: tenant, subject and this export's ID,
// so a ciphertext copied to another export row or subject does not open.
func exportField(exportID string) string { return "subject_exports:" + exportID }

// SealExport seals plaintext as export exportID of the subject st holds. An erased subject
// (no wrapped key) is ErrErased.
func (s Subjects) SealExport(ctx context.Context, tenantID string, st *Stored, exportID string, plaintext []byte) ([]byte, error) {
	pk, err := s.Keys.Open(ctx, tenantID, st.SubjectID, st.Wrapped)
	if err != nil {
		return nil, err
	}
	return pk.Seal(exportField(exportID), plaintext)
}

// OpenExport opens what SealExport made for the same tenant, subject and export. An erased
// subject is ErrErased; a ciphertext of another export, subject or tenant, or altered, is
// ErrDecrypt.
func (s Subjects) OpenExport(ctx context.Context, tenantID, subjectID string, wrapped []byte, exportID string, ciphertext []byte) ([]byte, error) {
	pk, err := s.Keys.Open(ctx, tenantID, subjectID, wrapped)
	if err != nil {
		return nil, err
	}
	pt, err := pk.Open(exportField(exportID), ciphertext)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", exportID, err)
	}
	return pt, nil
}
