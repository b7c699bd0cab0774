package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"tutela/password"
)

// The password strength estimator's dictionaries cost about 18 MB of heap and tens of
// milliseconds to build. They must load on the first password check, not when the binary
// starts: not for `tutela version`, not for `tutela serve` to become ready. And a ready serve
// hands its start-up garbage back to the operating system. Other tests in this package check
// passwords and collect garbage in the same process, so each case runs in a child process of
// its own.

const lazyHelperEnv = "TUTELA_TEST_LAZY_HELPER"

func TestStartup_VersionAndServeDoNotLoadPasswordEstimator(t *testing.T) {
	t.Parallel()
	// "control" scores one password: the helper must then see the estimator loaded, or the
	// check below could never fail.
	for cmd, want := range map[string]bool{"version": false, "serve": false, "control": true} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			c := exec.Command(os.Args[0], "-test.run=^TestLazyHelper$", "-test.count=1")
			c.Env = append(os.Environ(), lazyHelperEnv+"="+cmd)
			out, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), fmt.Sprintf("estimator loaded: %v", want)) {
				t.Fatalf("%s: want estimator loaded %v:\n%s", cmd, want, out)
			}
			if cmd == "serve" && !strings.Contains(string(out), "startup memory released: true") {
				t.Fatalf("serve did not release its start-up garbage (releaseStartupMemory):\n%s", out)
			}
		})
	}
}

func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestLazyHelper is the child process of the test above; it does nothing in a normal run.
func TestLazyHelper(t *testing.T) {
	cmd := os.Getenv(lazyHelperEnv)
	switch cmd {
	case "":
		t.Skip("child process of TestStartup_VersionAndServeDoNotLoadPasswordEstimator")
	case "version":
		if code, _, stderr := runCmd(t, nil, "version"); code != 0 {
			t.Fatalf("version: %d %s", code, stderr)
		}
	case "serve":
		_, _, stop := startServe(t, baseEnv(t))
		// Once ready, serve forces two collections (releaseStartupMemory); nothing else in
		// this process forces one.
		released := false
		for deadline := time.Now().Add(20 * time.Second); !released && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			released = forcedGCs() >= 2
		}
		fmt.Printf("startup memory released: %v\n", released)
		if code := stop(); code != 0 {
			t.Fatalf("serve exited %d", code)
		}
	case "control":
		if err := password.DefaultPolicy().Check(t.Context(), "correct horse battery staple", password.Context{}); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("estimator loaded: %v\n", password.EstimatorLoaded())
}
