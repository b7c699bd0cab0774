package oidc_test

import (
	"fmt"
	"os"
	"testing"

	"tutela/internal/lazyfree"
)

// The tests and benchmarks run as tutela serve runs: re-executed with lazily freed memory (the
// code-flow benchmark's password hashes, internal/lazyfree).
func TestMain(m *testing.M) {
	if err := lazyfree.Reexec(); err != nil {
		fmt.Fprintln(os.Stderr, "lazyfree:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
