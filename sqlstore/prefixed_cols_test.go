package sqlstore

import (
	"slices"
	"strings"
	"testing"
)

func TestPrefixedSessionCols(t *testing.T) {
	cols := func(s string) []string { return strings.Split(strings.Join(strings.Fields(s), " "), ", ") }
	want := cols(sessionCols)
	for i := range want {
		want[i] = "s." + want[i]
	}
	if got := cols(prefixedSessionCols); !slices.Equal(got, want) {
		t.Fatalf("prefixedSessionCols = %v\nwant %v (sessionCols with the alias)", got, want)
	}
}
