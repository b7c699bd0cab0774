// Package webtest drives the hosted pages in a real headless Chromium for tests: it starts the
// browser through chromedp, runs axe-core inside a page, writes screenshots to the test
// artifacts folder and adds a DevTools virtual authenticator for passkey journeys.
//
// Chromium comes from Debian's `chromium` package and axe-core from npm; .ci/run installs both
// and exports TUTELA_AXE_JS. Under CI=true a missing browser or axe fails the test, so CI can
// never pass by skipping the browser journeys; elsewhere the test is skipped with the reason.
package webtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Environment variables the harness reads.
const (
	// EnvChromium names the browser binary; unset, the first of chromium, chromium-browser,
	// google-chrome found on PATH is used.
	EnvChromium = "TUTELA_CHROMIUM"
	// EnvAxe is the path of axe.min.js; unset, the path .ci/run installs to under $HOME is tried.
	EnvAxe = "TUTELA_AXE_JS"
	// EnvArtifacts is the folder screenshots go to; unset, <repository>/artifacts/screenshots.
	EnvArtifacts = "TUTELA_ARTIFACTS"
)

// tabDeadline bounds one tab's whole journey so a page that never shows the awaited element
// ends the test with an error instead of hanging until `go test` kills the binary. It is a
// guard, not a measurement: nothing asserts how long a journey takes.
const tabDeadline = 3 * time.Minute

// Browser is one headless Chromium process shared by the tabs of a test.
type Browser struct {
	ctx context.Context // the browser's first tab; its cancellation ends the process
}

// Start launches a headless Chromium for t and stops it when t ends. A missing browser or
// axe-core fails the test under CI=true and skips it otherwise.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := Require(t)

	// The flags follow what runs Chromium as root on a machine without network: no sandbox
	// (root), no GPU, nothing that phones home (background networking, component updates,
	// sync, first-run), and a fresh profile per test so no cookie or credential leaks between
	// tests.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the process; it gets no deadline because its context owns the
	// browser for the whole test.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return &Browser{ctx: ctx}
}

// Tab is one page in its own browser context: its own cookies and storage, as a second device
// or a second person would have.
type Tab struct {
	Ctx context.Context

	mu      sync.Mutex
	console []string
	changed chan struct{} // closed and replaced when console grows
}

// NewTab opens a tab in a fresh browser context, closed when t ends. Its context carries a
// deadline so a journey stuck on a missing element fails instead of hanging.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	ctx, cancelDeadline := context.WithTimeout(ctx, tabDeadline)
	t.Cleanup(func() {
		cancelDeadline()
		cancel()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	tab := &Tab{Ctx: ctx, changed: make(chan struct{})}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if (m.IsException() || m.Type == chromedp.ConsoleError) && !browserOwnRequest(m.URL) {
				tab.mu.Lock()
				tab.console = append(tab.console, m.String()+" ("+m.URL+")")
				close(tab.changed)
				tab.changed = make(chan struct{})
				tab.mu.Unlock()
			}
		}
	}()
	return tab
}

// browserOwnRequest reports whether a failed load is one the browser makes by itself rather
// than one the page asked for: Chromium fetches /favicon.ico for every page without an icon.
func browserOwnRequest(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Path == "/favicon.ico"
}

// ConsoleErrors returns the uncaught exceptions, console.error calls and browser-log errors
// (a script or style refused by the Content-Security-Policy shows up here) seen so far.
func (tab *Tab) ConsoleErrors() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.console...)
}

// WaitConsoleError waits until a console error containing substr arrives (or has arrived), or
// the tab's deadline passes. The browser logs some errors, such as a CSP refusal, after the
// action that caused them has returned.
func (tab *Tab) WaitConsoleError(substr string) error {
	for {
		tab.mu.Lock()
		found := slices.ContainsFunc(tab.console, func(s string) bool { return strings.Contains(s, substr) })
		changed := tab.changed
		tab.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-changed:
		case <-tab.Ctx.Done():
			return fmt.Errorf("no console error containing %q: %w; got %q", substr, tab.Ctx.Err(), tab.ConsoleErrors())
		}
	}
}

// Require returns the Chromium binary, after checking that axe-core is there too. Under
// CI=true anything missing fails t; otherwise t is skipped with what to install.
func Require(t testing.TB) string {
	t.Helper()
	path, err := ChromiumPath()
	if err == nil {
		_, err = AxePath()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser tests need Chromium and axe-core (CI=true forbids skipping): %v", err)
		}
		t.Skipf("browser tests skipped (set CI=true to fail instead): %v", err)
	}
	return path
}

// ChromiumPath finds the browser binary.
func ChromiumPath() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("%s=%q: %w", EnvChromium, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (apt-get install chromium, or set " + EnvChromium + ")")
}

// AxePath finds axe.min.js.
func AxePath() (string, error) {
	p := os.Getenv(EnvAxe)
	if p == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%s unset and no home directory: %w", EnvAxe, err)
		}
		p = filepath.Join(home, ".cache", "tutela-axe", "node_modules", "axe-core", "axe.min.js")
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("axe-core not found (npm install --prefix ~/.cache/tutela-axe axe-core, or set %s): %w", EnvAxe, err)
	}
	return p, nil
}
