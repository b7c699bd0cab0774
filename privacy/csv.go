package privacy

import (
	"encoding/csv"
	"io"
)

// WriteCSV writes header and rows as RFC 4180 CSV, every cell made safe to open in a
// spreadsheet: a cell starting with =, +, -, @, a tab or a carriage return is prefixed with a
// single quote, so a value someone typed ("=HYPERLINK(...)") is shown as text instead of run as
// a formula (CSV injection, OWASP). Every CSV Tutela hands out goes through here.
func WriteCSV(w io.Writer, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(safeCells(header)); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(safeCells(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func safeCells(in []string) []string {
	out := make([]string, len(in))
	for i, c := range in {
		out[i] = SafeCell(c)
	}
	return out
}

// SafeCell is c as WriteCSV writes it.
func SafeCell(c string) string {
	if c != "" {
		switch c[0] {
		case '=', '+', '-', '@', '\t', '\r':
			return "'" + c
		}
	}
	return c
}
