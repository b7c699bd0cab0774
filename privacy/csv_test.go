package privacy

import (
	"bytes"
	"encoding/csv"
	"testing"
)

func TestWriteCSV_NeutralizesFormulasAndRoundTrips(t *testing.T) {
	rows := [][]string{
		{"=HYPERLINK(\"http://evil\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"},
		{"plain", "with,comma", "with \"quote\"", "multi\nline", "", "a=b"},
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, []string{"a", "b", "c", "d", "e", "f"}, rows); err != nil {
		t.Fatal(err)
	}
	got, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("rows = %d, want 3", len(got))
	}
	for i, c := range got[1] {
		if c[0] != '\'' {
			t.Errorf("cell %d = %q: a formula-leading cell must be quoted", i, c)
		}
		if c[1:] != rows[0][i] {
			t.Errorf("cell %d = %q: content after the quote must be kept", i, c)
		}
	}
	for i, c := range got[2] {
		if c != rows[1][i] {
			t.Errorf("safe cell %d = %q, want %q unchanged", i, c, rows[1][i])
		}
	}
}
