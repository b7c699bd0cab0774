// Package lazyfree has a process return the memory its Go heap frees to Linux lazily
// (MADV_FREE, GODEBUG=madvdontneed=0) instead of at once (MADV_DONTNEED, the runtime's default
// since Go 1.16).
//
// Why (issue 20): every Argon2id hash allocates its memory parameter afresh (19 MiB by
// default; golang.org/x/crypto/argon2 cannot reuse a buffer). Under sign-in load the runtime's
// scavenger keeps handing freed hashing memory back to the kernel — on heap growth it releases
// the fragments large allocations leave — and the next hash faults it back in, page by page,
// zeroed by the kernel: BenchmarkSignInConcurrent measured 300–640 page faults a sign-in
// against 16–70 for a bare hash, and sign-ins at 0.77–0.86 of the hash ceiling. With MADV_FREE
// the kernel takes such pages back only when it needs memory, and a page the heap reuses
// before then costs nothing: no faults once the heap has grown to its working size, sign-in
// CPU within 3–6% of the hash's.
//
// The cost: freed memory stays counted in the process's RSS until the kernel needs it (it is on
// the inactive file list, so a cgroup's working set — what Kubernetes evicts on — leaves it
// out). At idle that is about 1 MB more anonymous memory than with MADV_DONTNEED.
//
// The runtime reads the setting once, at start (a //go:debug line cannot set it), so Reexec
// replaces the process with itself with the setting added to GODEBUG.
package lazyfree

import (
	"fmt"
	"os"
	"strings"
)

// Setting is the GODEBUG setting Reexec adds.
const Setting = "madvdontneed=0"

// environ returns env with Setting added to GODEBUG, and whether it had to be added: not when
// GODEBUG already names madvdontneed, whatever its value (the operator's choice, or an earlier
// Reexec's).
func environ(env []string) (out []string, changed bool) {
	out = make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			out = append(out, kv)
			continue
		}
		if found {
			continue // a duplicate: the runtime reads the first
		}
		found = true
		for s := range strings.SplitSeq(v, ",") {
			// Parsed as the runtime parses it: no spaces trimmed (" madvdontneed=1" is
			// another setting's name to the runtime).
			if name, _, _ := strings.Cut(s, "="); name == "madvdontneed" {
				return env, false
			}
		}
		if v == "" {
			out = append(out, "GODEBUG="+Setting)
		} else {
			out = append(out, "GODEBUG="+v+","+Setting)
		}
	}
	if !found {
		out = append(out, "GODEBUG="+Setting)
	}
	return out, true
}

// Enabled reports whether this process runs with Setting: GODEBUG, as the runtime read it at
// start, sets madvdontneed=0 (the last mention wins and nothing is trimmed, as in the runtime).
func Enabled() bool {
	v := ""
	for s := range strings.SplitSeq(os.Getenv("GODEBUG"), ",") {
		if name, val, _ := strings.Cut(s, "="); name == "madvdontneed" {
			v = val
		}
	}
	return v == "0"
}

// MustReexec is Reexec for a test binary's TestMain, so that its tests and benchmarks run as
// tutela serve runs: an exec that fails ends the process (exit 1), as a failed set-up does.
func MustReexec() {
	if err := Reexec(); err != nil {
		fmt.Fprintln(os.Stderr, "lazyfree:", err)
		os.Exit(1)
	}
}
