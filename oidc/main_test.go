package oidc_test

import (
	"os"
	"testing"

	"tutela/internal/lazyfree"
)

// The tests and benchmarks run as tutela serve runs: re-executed with lazily freed memory (the
// code-flow benchmark's password hashes, internal/lazyfree).
func TestMain(m *testing.M) {
	lazyfree.MustReexec()
	os.Exit(m.Run())
}
