package webtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

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
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 = PNG
	if err != nil {
		return "", fmt.Errorf("screenshot %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", err
	}
	return path, nil
}
