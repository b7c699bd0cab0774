package lazyfree

import (
	"os"
	"syscall"
)

// Reexec replaces the process with a fresh run of its own executable, with the same arguments
// and environment plus Setting in GODEBUG. It returns only when it did not replace the
// process: GODEBUG already names madvdontneed (after Reexec's own exec, or the operator's
// choice, which stands), or the exec failed, with its error; the process then goes on with the
// runtime's default. Call it first thing in main, before anything else starts.
func Reexec() error {
	env, changed := environ(os.Environ())
	if !changed {
		return nil
	}
	// /proc/self/exe is the running executable even when its file was replaced or removed
	// since (an upgrade in place).
	return syscall.Exec("/proc/self/exe", os.Args, env) // #nosec G204 G702 -- the process's own executable, its own arguments and environment (GODEBUG added): nothing from outside it
}
