package main

import "testing"

// TestSubcommand: main re-executes with lazily freed memory only for serve, wherever the
// global --config flag stands.
func TestSubcommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "serve"},
		{[]string{"--config", "serve", "version"}, "version"}, // a file named serve
		{[]string{"--config=tutela.yaml", "serve"}, "serve"},
		{[]string{"--config", "tutela.yaml", "serve", "--help"}, "serve"},
		{[]string{"audit", "verify"}, "audit"},
		{[]string{"--help"}, ""},
		{nil, ""},
	} {
		if got := subcommand(tc.args); got != tc.want {
			t.Errorf("subcommand(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
