package webtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Violation is one axe-core rule a page breaks, with the elements that break it.
type Violation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target  []string `json:"target"`
		HTML    string   `json:"html"`
		Summary string   `json:"summary"`
	} `json:"nodes"`
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s <%s>", v.ID, v.Impact, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %s %s\n      %s", strings.Join(n.Target, " "), n.HTML,
			strings.ReplaceAll(n.Summary, "\n", "\n      "))
	}
	return b.String()
}

// axeRun runs axe-core's default rule set (WCAG 2.0–2.2 A/AA and best practices) over the
// whole document and keeps only what the report needs, so a page with many nodes does not
// send megabytes back over the protocol.
const axeRun = `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
	nodes: v.nodes.map(n => ({target: n.target.map(String), html: n.html, summary: n.failureSummary || ''})),
})))`

// RunAxe injects axe-core into the page of ctx and returns the violations of impact serious or
// critical; minor and moderate findings are not returned. axe.min.js comes from TUTELA_AXE_JS.
//
// The script is evaluated through DevTools, which the page's Content-Security-Policy does not
// govern, so the pages keep their strict policy under test.
func RunAxe(ctx context.Context) ([]Violation, error) {
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === 'object'`))
	if err != nil {
		return nil, fmt.Errorf("axe: probe page: %w", err)
	}
	if !loaded {
		path, err := AxePath()
		if err != nil {
			return nil, err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("axe: %w", err)
		}
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](string(src))); err != nil {
			return nil, fmt.Errorf("axe: inject %s: %w", path, err)
		}
	}
	all, err := chromedp.Run(ctx, chromedp.Evaluate[[]Violation](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("axe: run: %w", err)
	}
	return seriousOrCritical(all), nil
}

func seriousOrCritical(all []Violation) []Violation {
	var out []Violation
	for _, v := range all {
		if v.Impact == "serious" || v.Impact == "critical" {
			out = append(out, v)
		}
	}
	return out
}

// CheckAccessible runs axe on the page of ctx and fails t (without stopping it) on each serious
// or critical violation; page names the page in the failure.
func CheckAccessible(t testing.TB, ctx context.Context, page string) {
	t.Helper()
	vs, err := RunAxe(ctx)
	if err != nil {
		t.Errorf("%s: %v", page, err)
		return
	}
	for _, v := range vs {
		t.Errorf("%s: accessibility violation %s", page, v)
	}
}
