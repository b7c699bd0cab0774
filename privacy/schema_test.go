package privacy

import (
	"slices"
	"strings"
	"testing"

	"tutela"
	"tutela/authz"
)

func validField() Field {
	return Field{Name: "national_id", Type: FieldNationalID, Classification: authz.Red, Purposes: []string{"case_management"},
		RetentionDays: 365, Mask: authz.MaskHashed, Searchable: true}
}

func TestFieldValidate_RefusesEachBadPart(t *testing.T) {
	if err := validField().Validate(); err != nil {
		t.Fatalf("valid field: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Field)
		field  string
	}{
		{"upper-case name", func(f *Field) { f.Name = "NationalID" }, "name"},
		{"leading digit", func(f *Field) { f.Name = "1id" }, "name"},
		{"name too long", func(f *Field) { f.Name = "a" + strings.Repeat("b", 63) }, "name"},
		{"unknown type", func(f *Field) { f.Type = "blob" }, "type"},
		{"unknown classification", func(f *Field) { f.Classification = "PURPLE" }, "classification"},
		{"no purpose", func(f *Field) { f.Purposes = nil }, "purposes"},
		{"bad purpose", func(f *Field) { f.Purposes = []string{"Case Management"} }, "purposes"},
		{"duplicate purpose", func(f *Field) { f.Purposes = []string{"aid", "aid"} }, "purposes"},
		{"retention 0", func(f *Field) { f.RetentionDays = 0 }, "retention_days"},
		{"retention > 100 years", func(f *Field) { f.RetentionDays = 36501 }, "retention_days"},
		{"unknown mask", func(f *Field) { f.Mask = "blurred" }, "mask"},
	} {
		f := validField()
		tc.change(&f)
		err := f.Validate()
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: %v, want invalid", tc.name, err)
			continue
		}
		var te *tutela.Error
		if e, ok := err.(*tutela.Error); ok {
			te = e
		}
		if te == nil || te.Field != tc.field {
			t.Errorf("%s: error field = %+v, want %s", tc.name, te, tc.field)
		}
	}
	if err := (Schema{validField(), validField()}).Validate(); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Errorf("duplicate field name: %v", err)
	}
}

func TestValidateValue_PerType(t *testing.T) {
	for _, tc := range []struct {
		t  FieldType
		v  string
		ok bool
	}{
		{FieldName, "Ada Lovelace", true},
		{FieldName, "Zoë Ñúñez-Ø", true},
		{FieldName, "Ada\nLovelace", false},
		{FieldName, "Ada\u202eecalevoL", false}, // bidi override
		{FieldName, "   ", false},
		{FieldName, strings.Repeat("a", 201), false},
		{FieldName, "", false},
		{FieldName, "\xff", false},
		{FieldDate, "1815-12-10", true},
		{FieldDate, "1815-02-30", false},
		{FieldDate, "10/12/1815", false},
		{FieldDate, "1815-12-10T00:00:00Z", false},
		{FieldPhone, "+41 79 123 45 67", true},
		{FieldPhone, "(020) 7946-0958", true},
		{FieldPhone, "41+79", false},
		{FieldPhone, "+1234", false},
		{FieldPhone, "+1234567890123456", false},
		{FieldPhone, "call me", false},
		{FieldNationalID, "756.1234", false},
		{FieldNationalID, "AB-123 456", true},
		{FieldNationalID, " - ", false},
		{FieldNationalID, strings.Repeat("A", 65), false},
		{FieldAddress, "1 Main St\nSpringfield", true},
		{FieldAddress, "1 Main St\x1b[2J", false},
		{FieldAddress, strings.Repeat("a", 501), false},
		{FieldEmail, "ada@example.org", true},
		{FieldEmail, "ada@", false},
		{FieldText, "line 1\nline 2\ttab", true},
		{FieldText, "zero\u200bwidth", false},
		{FieldText, strings.Repeat("é", 4001), false},
		{FieldNumber, "-12.50", true},
		{FieldNumber, "1e5", false},
		{FieldNumber, "12.", false},
		{FieldNumber, "0x10", false},
	} {
		err := ValidateValue("f", tc.t, tc.v)
		if (err == nil) != tc.ok {
			t.Errorf("%s %q: err = %v, want ok=%v", tc.t, tc.v, err, tc.ok)
		}
		if err != nil && tc.v != "" && strings.Contains(tutela.ErrorMessage(err), tc.v) {
			t.Errorf("%s %q: the message repeats the value: %s", tc.t, tc.v, tutela.ErrorMessage(err))
		}
	}
}

func TestNormalize_EqualOnlyWhereDocumented(t *testing.T) {
	same := []struct {
		t    FieldType
		a, b string
	}{
		{FieldName, "Ada Lovelace", "  ADA   lovelace "},
		{FieldName, "Straße", "STRASSE"}, // full case folding
		{FieldName, "ﬁona", "fiona"},     // NFKC: the ligature is two letters
		{FieldEmail, "Ada@Example.ORG", "ada@example.org"},
		{FieldPhone, "+41 (79) 123-45.67", "+41791234567"},
		{FieldNationalID, "ab-123 456", "AB123456"},
		{FieldNumber, "007.50", "7.5"},
		{FieldNumber, "-0.0", "0"},
		{FieldDate, "1815-12-10", "1815-12-10"},
	}
	for _, tc := range same {
		if Normalize(tc.t, tc.a) != Normalize(tc.t, tc.b) {
			t.Errorf("%s: %q and %q normalize differently: %q vs %q", tc.t, tc.a, tc.b, Normalize(tc.t, tc.a), Normalize(tc.t, tc.b))
		}
	}
	differ := []struct {
		t    FieldType
		a, b string
	}{
		{FieldName, "Élodie", "Elodie"}, // accents count
		{FieldName, "Ada Lovelace", "Ada Lovelac"},
		{FieldPhone, "+41791234567", "0791234567"},
		{FieldNationalID, "AB123456", "AB12345"},
		{FieldNumber, "-1", "1"},
		{FieldNumber, "10", "1"},
	}
	for _, tc := range differ {
		if Normalize(tc.t, tc.a) == Normalize(tc.t, tc.b) {
			t.Errorf("%s: %q and %q normalize alike (%q)", tc.t, tc.a, tc.b, Normalize(tc.t, tc.a))
		}
	}
}

func TestSchemaChanges_ListsAddedRemovedChangedWithTheirHigherClass(t *testing.T) {
	red := validField()
	yellow := red
	yellow.Classification = authz.Yellow
	notes := Field{Name: "notes", Type: FieldText, Classification: authz.Red, Purposes: []string{"aid"}, RetentionDays: 30, Mask: authz.MaskHidden}
	phone := Field{Name: "phone", Type: FieldPhone, Classification: authz.Yellow, Purposes: []string{"aid"}, RetentionDays: 30, Mask: authz.MaskPartial}
	old := Schema{red, notes, phone}
	next := Schema{yellow, phone, {Name: "alias", Type: FieldName, Classification: authz.Green, Purposes: []string{"aid"}, RetentionDays: 1, Mask: authz.MaskFull}}
	got := next.Changes(old)
	want := []struct {
		name  string
		class authz.Classification
		old   bool
		new   bool
	}{{"alias", authz.Green, false, true}, {"national_id", authz.Red, true, true}, {"notes", authz.Red, true, false}}
	if len(got) != len(want) {
		t.Fatalf("changes = %+v", got)
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Class() != w.class || (got[i].Old != nil) != w.old || (got[i].New != nil) != w.new {
			t.Errorf("change %d = %s %s old=%v new=%v, want %+v", i, got[i].Name, got[i].Class(), got[i].Old, got[i].New, w)
		}
	}
	// A purpose added to a field is a change too; an identical schema has none.
	widened := slices.Clone(old)
	widened[2].Purposes = []string{"aid", "marketing"}
	if c := widened.Changes(old); len(c) != 1 || c[0].Name != "phone" {
		t.Errorf("purpose added: %+v", c)
	}
	if c := old.Changes(slices.Clone(old)); len(c) != 0 {
		t.Errorf("no change: %+v", c)
	}
}
