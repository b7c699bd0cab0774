package privacy_test

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
)

func TestSubjects_OpenReturnsOnlyNamedFields(t *testing.T) {
	v, a, _ := newVault(t)
	s := privacy.NewSubjects(v)
	schema := privacy.Schema{
		{Name: "full_name", Type: privacy.FieldName, Classification: authz.Yellow, Purposes: []string{"aid"}, RetentionDays: 30, Mask: authz.MaskPartial, Searchable: true},
		{Name: "notes", Type: privacy.FieldText, Classification: authz.Red, Purposes: []string{"aid"}, RetentionDays: 30, Mask: authz.MaskHidden},
	}
	sealed, err := s.SealNew(ctx, a.ID, schema, map[string]string{"full_name": "Ada Lovelace", "notes": "private"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed.Digests) != 1 || sealed.Digests["full_name"].Sum == nil {
		t.Fatalf("digests = %v, want full_name only (notes is not searchable)", slices.Collect(maps.Keys(sealed.Digests)))
	}
	st := &privacy.Stored{SubjectID: sealed.SubjectID, Wrapped: sealed.Wrapped, Values: sealed.Values}
	for _, tc := range []struct {
		fields []string
		want   map[string]string
	}{
		{nil, map[string]string{}},
		{[]string{}, map[string]string{}},
		{[]string{"full_name"}, map[string]string{"full_name": "Ada Lovelace"}},
		{[]string{"full_name", "notes", "absent"}, map[string]string{"full_name": "Ada Lovelace", "notes": "private"}},
	} {
		got, err := s.Open(ctx, a.ID, st, tc.fields)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("Open(%v) = %v, %v; want %v", tc.fields, got, err, tc.want)
		}
	}
	if _, err := s.Open(ctx, a.ID, &privacy.Stored{SubjectID: sealed.SubjectID, Values: sealed.Values}, []string{"full_name"}); !errors.Is(err, privacy.ErrErased) {
		t.Errorf("erased: %v", err)
	}
	// Sealing refuses what the schema does not declare or the type does not allow, and an update
	// of an erased subject.
	if _, err := s.SealNew(ctx, a.ID, schema, map[string]string{"religion": "x"}); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := s.SealNew(ctx, a.ID, schema, nil); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Errorf("no values: %v", err)
	}
	name := "Ada"
	if _, err := s.SealUpdate(ctx, a.ID, sealed.SubjectID, nil, schema, map[string]*string{"full_name": &name}); !errors.Is(err, privacy.ErrErased) {
		t.Errorf("update of erased: %v", err)
	}
	// Search digests are refused for a field that is not searchable, and a value invalid for the
	// field's type.
	if _, err := s.SearchDigests(ctx, a.ID, schema[1], "x"); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Errorf("unsearchable: %v", err)
	}
	if _, err := s.SearchDigests(ctx, a.ID, schema[0], "a\nb"); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Errorf("invalid value: %v", err)
	}
	ds, err := s.SearchDigests(ctx, a.ID, schema[0], "  ADA  lovelace")
	if err != nil || len(ds) != 1 || string(ds[0].Sum) != string(sealed.Digests["full_name"].Sum) {
		t.Errorf("search digests do not match the stored digest: %v", err)
	}
}
