package lazyfree

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestEnviron(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env     []string
		want    []string
		changed bool
	}{
		{[]string{"HOME=/root"}, []string{"HOME=/root", "GODEBUG=madvdontneed=0"}, true},
		{[]string{"GODEBUG=", "A=1"}, []string{"GODEBUG=madvdontneed=0", "A=1"}, true},
		{[]string{"GODEBUG=gctrace=1"}, []string{"GODEBUG=gctrace=1,madvdontneed=0"}, true},
		// A duplicate GODEBUG is dropped: the runtime reads the first.
		{[]string{"GODEBUG=gctrace=1", "GODEBUG=x=2"}, []string{"GODEBUG=gctrace=1,madvdontneed=0"}, true},
		// Named already, whatever the value: the operator's choice (or an earlier Reexec).
		{[]string{"GODEBUG=madvdontneed=1"}, []string{"GODEBUG=madvdontneed=1"}, false},
		{[]string{"GODEBUG=gctrace=1,madvdontneed=0"}, []string{"GODEBUG=gctrace=1,madvdontneed=0"}, false},
		// The runtime trims nothing: " madvdontneed=0" sets nothing, so the setting is added.
		{[]string{"GODEBUG=gctrace=1, madvdontneed=0"}, []string{"GODEBUG=gctrace=1, madvdontneed=0,madvdontneed=0"}, true},
		// Not fooled by a setting whose name only contains it.
		{[]string{"GODEBUG=xmadvdontneed=1"}, []string{"GODEBUG=xmadvdontneed=1,madvdontneed=0"}, true},
	} {
		got, changed := environ(tc.env)
		if !slices.Equal(got, tc.want) || changed != tc.changed {
			t.Errorf("environ(%q) = %q, %v; want %q, %v", tc.env, got, changed, tc.want, tc.changed)
		}
	}
}

const helperEnv = "LAZYFREE_TEST_HELPER"

// TestHelperProcess is the process TestReexec runs: it calls Reexec, then reports whether
// freed memory left its RSS. It does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	fmt.Println("start")
	if err := Reexec(); err != nil {
		fmt.Println("reexec failed:", err)
		os.Exit(1)
	}
	// Touch 64 MiB of heap, drop it, and have the runtime return everything it can.
	b := make([]byte, 64<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	before := rssAnonKB(t)
	runtime.KeepAlive(b)
	b = nil
	debug.FreeOSMemory()
	after := rssAnonKB(t)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("comm=%s\n", strings.TrimSpace(string(comm)))
	fmt.Printf("enabled=%v godebug=%s released_kb=%d\n", Enabled(), os.Getenv("GODEBUG"), before-after)
	os.Exit(0)
}

func rssAnonKB(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssAnon in /proc/self/status")
	return 0
}

// TestReexec runs the helper as tutela serve runs: once with no madvdontneed in GODEBUG (it
// re-executes itself once, and the freed 64 MiB stays in its RSS: the runtime used MADV_FREE),
// once with the operator's madvdontneed=1 (no exec; the memory leaves at once).
func TestReexec(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the setting is Linux's; Reexec does nothing elsewhere")
	}
	t.Parallel()
	var comm string
	run := func(godebug string) (starts int, result string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") }),
			helperEnv+"=1")
		if godebug != "" {
			cmd.Env = append(cmd.Env, "GODEBUG="+godebug)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper (GODEBUG=%q): %v\n%s", godebug, err, out)
		}
		for line := range strings.Lines(string(out)) {
			switch {
			case line == "start\n":
				starts++
			case strings.HasPrefix(line, "comm="):
				comm = strings.TrimSpace(strings.TrimPrefix(line, "comm="))
			case strings.HasPrefix(line, "enabled="):
				result = strings.TrimSpace(line)
			}
		}
		return starts, result
	}
	released := func(result string) int {
		_, v, _ := strings.Cut(result, "released_kb=")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("result %q: %v", result, err)
		}
		return n
	}

	starts, result := run("")
	t.Logf("without GODEBUG: %s", result)
	if starts != 2 || !strings.HasPrefix(result, "enabled=true godebug=madvdontneed=0 ") {
		t.Fatalf("without GODEBUG: %d starts, %q; want 2 starts (one exec), enabled with GODEBUG=madvdontneed=0", starts, result)
	}
	// The process keeps its name (the kernel's 15 bytes of it), not "exe" from /proc/self/exe.
	if want := filepath.Base(os.Args[0]); comm != want[:min(len(want), 15)] {
		t.Errorf("after the exec the process is named %q, want %q", comm, want)
	}
	if r := released(result); r > 16<<10 {
		t.Errorf("with MADV_FREE, %d KB of the freed 64 MiB left RSS at once; want it kept until the kernel needs it", r)
	}

	starts, result = run("madvdontneed=1")
	t.Logf("with madvdontneed=1: %s", result)
	if starts != 1 || !strings.HasPrefix(result, "enabled=false godebug=madvdontneed=1 ") {
		t.Fatalf("with the operator's madvdontneed=1: %d starts, %q; want 1 start (no exec), not enabled", starts, result)
	}
	if r := released(result); r < 48<<10 {
		t.Errorf("with MADV_DONTNEED, only %d KB of the freed 64 MiB left RSS; want nearly all", r)
	}
}

func TestEnabled(t *testing.T) {
	for godebug, want := range map[string]bool{
		"":                              false,
		"madvdontneed=0":                true,
		"gctrace=1,madvdontneed=0":      true,
		"madvdontneed=0,madvdontneed=1": false, // the last mention wins
		"madvdontneed=1,madvdontneed=0": true,
		" madvdontneed=0":               false, // not trimmed, as in the runtime
	} {
		t.Setenv("GODEBUG", godebug)
		if got := Enabled(); got != want {
			t.Errorf("GODEBUG=%q: Enabled() = %v, want %v", godebug, got, want)
		}
	}
}
