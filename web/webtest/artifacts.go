package webtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// screenshotName keeps a screenshot's file inside the artifacts folder whatever a test passes.
var screenshotName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ArtifactsDir is where screenshots go: TUTELA_ARTIFACTS, or artifacts/screenshots at the root
// of the repository (the folder holding go.mod above the working directory; git-ignored).
func ArtifactsDir() (string, error) {
	if d := os.Getenv(EnvArtifacts); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "artifacts", "screenshots"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; set " + EnvArtifacts)
		}
		dir = parent
	}
}

// Screenshot writes a full-page PNG of the page of ctx to <ArtifactsDir>/<name>.png and returns
// its path. name is lower-case letters, digits, '-' and '_'.
func Screenshot(ctx context.Context, name string) (string, error) {
	if !screenshotName.MatchString(name) {
		return "", fmt.Errorf("screenshot name %q: want [a-z0-9_-], at most 64", name)
	}
	dir, err := ArtifactsDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	png, err := fullPage(ctx)
	if err != nil {
		return "", fmt.Errorf("screenshot %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// fullPage captures the whole page as PNG by growing the viewport to the content's height for
// the capture. Chromium's captureBeyondViewport shifts right-to-left pages sideways (the Arabic
// sign-in came out cut at the start edge), so it is not used.
func fullPage(ctx context.Context) ([]byte, error) {
	m, err := chromedp.Call(ctx, page.GetLayoutMetrics, cdp.Empty{})
	if err != nil {
		return nil, err
	}
	if m.CSSLayoutViewport == nil || m.CSSContentSize == nil {
		return nil, errors.New("no layout metrics")
	}
	width := m.CSSLayoutViewport.ClientWidth
	height := max(int64(math.Ceil(m.CSSContentSize.Height)), m.CSSLayoutViewport.ClientHeight)
	if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: width, Height: height, DeviceScaleFactor: 1}); err != nil {
		return nil, err
	}
	shot, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng})
	if _, cerr := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return shot.Data, nil
}
