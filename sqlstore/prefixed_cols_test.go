package sqlstore

import (
	"slices"
	"strings"
	"testing"
)

// TestPrefixedCols keeps each column list written with a table alias (for statements that join)
// equal to the list it stands for: a column added to one and not the other would scan into the
// wrong field.
func TestPrefixedCols(t *testing.T) {
	cols := func(s string) []string { return strings.Split(strings.Join(strings.Fields(s), " "), ", ") }
	for _, c := range []struct{ name, alias, cols, prefixed string }{
		{"sessionCols", "s", sessionCols, prefixedSessionCols},
		{"tenantCols", "t", tenantCols, prefixedTenantCols},
		{"userCols", "u", userCols, prefixedUserCols},
	} {
		want := cols(c.cols)
		for i := range want {
			want[i] = c.alias + "." + want[i]
		}
		if got := cols(c.prefixed); !slices.Equal(got, want) {
			t.Errorf("prefixed %s = %v\nwant %v (%s with the alias)", c.name, got, want, c.name)
		}
	}
}
