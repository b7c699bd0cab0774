package lazyfree

import (
	"os"
	"strings"
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
	return syscall.Exec(selfPath(), os.Args, env) // #nosec G204 G702 -- the process's own executable (selfPath), its own arguments and environment (GODEBUG added): nothing from outside it
}

// selfPath is the path to execute the running executable by. Linux names a process after the
// file name it was executed by: "exe" for /proc/self/exe, which is what ps, top and process
// monitors would then show. So it is the executable's own path when that still names the
// running file, and /proc/self/exe (always the running executable, even when its file was
// replaced or removed since: an upgrade in place) otherwise.
func selfPath() string {
	const self = "/proc/self/exe"
	path, err := os.Readlink(self)
	if err != nil || !strings.HasPrefix(path, "/") || strings.HasSuffix(path, " (deleted)") {
		return self
	}
	running, err := os.Stat(self)
	if err != nil {
		return self
	}
	if named, err := os.Stat(path); err != nil || !os.SameFile(running, named) {
		return self
	}
	return path
}
