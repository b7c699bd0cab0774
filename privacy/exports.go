package privacy

import (
	"context"
	"fmt"
	"strings"
)

// An export is a subject's record as one read returned it, serialized and sealed under the
// subject's own key, so that erasing the subject makes every export of it unreadable with the
// rest of their data (crypto-shredding reaches exported files).

// ExportBinding is what an export's ciphertext is bound to besides tenant and subject: its own
// ID, who made it (principal kind and ID) and the purpose and highest classification of the
// read it holds. The store keeps the same facts in clear so the download can refuse a caller
// before anything is decrypted; binding them here means a row whose maker, purpose or
// classification was altered in the database (to hand a RED export to someone else, or to
// make it look GREEN) no longer opens.
type ExportBinding struct {
	ExportID  string
	MakerKind string
	MakerID   string
	Purpose   string
	Class     string
}

// field is the binding as the field name PersonKey's associated data carries. Each part is
// length-prefixed, so no two bindings encode alike whatever their parts hold.
func (b ExportBinding) field() string {
	var sb strings.Builder
	sb.WriteString("subject_exports/v2")
	for _, s := range []string{b.ExportID, b.MakerKind, b.MakerID, b.Purpose, b.Class} {
		fmt.Fprintf(&sb, ":%d:%s", len(s), s)
	}
	return sb.String()
}

// SealExport seals plaintext as the export b names of the subject st holds. An erased subject
// (no wrapped key) is ErrErased.
func (s Subjects) SealExport(ctx context.Context, tenantID string, st *Stored, b ExportBinding, plaintext []byte) ([]byte, error) {
	pk, err := s.Keys.Open(ctx, tenantID, st.SubjectID, st.Wrapped)
	if err != nil {
		return nil, err
	}
	return pk.Seal(b.field(), plaintext)
}

// OpenExport opens what SealExport made for the same tenant, subject and binding. An erased
// subject is ErrErased; a ciphertext of another export, subject or tenant, one whose maker,
// purpose or classification differs, or one altered, is ErrDecrypt.
func (s Subjects) OpenExport(ctx context.Context, tenantID, subjectID string, wrapped []byte, b ExportBinding, ciphertext []byte) ([]byte, error) {
	pk, err := s.Keys.Open(ctx, tenantID, subjectID, wrapped)
	if err != nil {
		return nil, err
	}
	pt, err := pk.Open(b.field(), ciphertext)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", b.ExportID, err)
	}
	return pt, nil
}
