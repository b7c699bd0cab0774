package privacy

import (
	"bytes"
	"encoding/csv"
	"slices"
	"testing"

	"tutela/authz"
)

func TestValidCountry_ISO3166Alpha2Only(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"DE", "US", "GB", "CH", "JO", "KE", "XK"} {
		if !ValidCountry(c) {
			t.Errorf("ValidCountry(%q) = false", c)
		}
	}
	// Lower case, regions and groupings, exceptionally reserved codes, unassigned codes, numbers.
	for _, c := range []string{"", "de", "De", "UK", "EU", "UN", "EZ", "ZZ", "XX", "AA", "QO", "001", "DEU", " DE"} {
		if ValidCountry(c) {
			t.Errorf("ValidCountry(%q) = true", c)
		}
	}
}

// A declaration for a purpose that is no longer in the register is not merged (the store's
// foreign key prevents it; the generator does not trust it), and a purpose's retention is the
// longest of its fields'.
func TestBuildRecords_RetentionAndStrayDeclaration(t *testing.T) {
	t.Parallel()
	purposes, gaps := BuildRecords(RecordsInput{
		Controller: &Controller{Name: "A", Contact: "c"},
		Purposes:   []*Purpose{{Name: "aid", LawfulBasis: BasisContract}},
		Schema: Schema{
			{Name: "a", Type: FieldText, Classification: authz.Green, Purposes: []string{"aid"}, RetentionDays: 10},
			{Name: "b", Type: FieldText, Classification: authz.Yellow, Purposes: []string{"aid"}, RetentionDays: 700},
		},
		Records: []*Record{{Purpose: "ghost", Recipients: []string{"x"}}},
	})
	if len(purposes) != 1 || purposes[0].RetentionDays != 700 || purposes[0].Declared || purposes[0].Recipients == nil {
		t.Fatalf("purposes = %+v", purposes)
	}
	if len(gaps) != 1 || gaps[0].Kind != GapNoRecord {
		t.Fatalf("gaps = %+v", gaps)
	}
}

// A purpose without fields still has a CSV row, so the CSV lists every purpose the JSON does.
func TestWriteRecordsCSV_PurposeWithoutFieldsHasARow(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	rop := &RecordsOfProcessing{Purposes: []PurposeRecord{{Purpose: "aid", InRegister: true, LawfulBasis: BasisContract,
		Transfers: []Transfer{{Country: "US", Recipient: "-R", Safeguard: SafeguardOther, SafeguardDetails: "x"}}}},
		Gaps: []Gap{{Kind: GapNoRecord, Purpose: "aid"}, {Kind: GapNoController}}}
	if err := WriteRecordsCSV(&buf, rop); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 2 || !slices.Equal(rows[0], RecordsCSVHeader) {
		t.Fatalf("rows = %v, %v", rows, err)
	}
	if rows[1][0] != "aid" || rows[1][6] != "" || rows[1][13] != "US: -R [other: x]" || rows[1][17] != GapNoRecord {
		t.Fatalf("row = %v", rows[1])
	}
}
