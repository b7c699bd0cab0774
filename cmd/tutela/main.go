// Command tutela is the Tutela server and its operations tool.
package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"tutela/internal/lazyfree"
)

// reexecErr is why serve could not re-execute itself with lazily freed memory (lazyfree); serve
// logs it once its logger exists, and runs on with the runtime's default.
var reexecErr error

func main() {
	if subcommand(os.Args[1:]) == "serve" {
		// Sign-ins allocate 19 MiB per hash: with MADV_FREE the hashing memory the heap frees is
		// reused without a page fault (internal/lazyfree). Returns only when it did not exec.
		reexecErr = lazyfree.Reexec()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// subcommand is the first argument that is neither a flag nor --config's value.
func subcommand(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--config":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return ""
}
