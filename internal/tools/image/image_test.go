package main

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// staticBinary builds cmd/tutela once with CGO_ENABLED=0, as the image build does, so the test
// also proves the service builds without cgo (PKCS#11 is left out by its build tag).
func staticBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tutela-image-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "tutela")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X tutela.Version=9.9.9-test", "-o", binPath, "tutela/cmd/tutela")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/tutela: %v\n%s", binErr, binPath)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" && binErr == nil {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// The image the tool writes passes its own checks on what is on disk (non-root user, no shell,
// /data owned by 65532, the binary runs `version`), and two builds with one SOURCE_DATE_EPOCH
// have one digest.
func TestImage_BuildsChecksAndIsReproducible(t *testing.T) {
	bin := staticBinary(t)
	digests := make([]string, 2)
	for i := range digests {
		dir := t.TempDir()
		var out bytes.Buffer
		err := run([]string{"-binary", bin, "-version", "9.9.9-test", "-revision", "abc123",
			"-out", filepath.Join(dir, "oci"), "-tar", filepath.Join(dir, "image.tar")}, "1700000000", &out)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "image runs: tutela 9.9.9-test") {
			t.Fatalf("output %q: the packaged binary did not report its version", out.String())
		}
		img, err := readLayout(filepath.Join(dir, "oci"))
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		digests[i] = d.String()
		// The tarball holds the same image, for docker/podman load.
		timg, err := tarball.ImageFromPath(filepath.Join(dir, "image.tar"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := check(timg); err != nil {
			t.Fatalf("tarball image: %v", err)
		}
		cf, _ := img.ConfigFile()
		if cf.Config.User != "65532:65532" || cf.Created.Unix() != 1700000000 ||
			cf.Config.Labels["org.opencontainers.image.revision"] != "abc123" ||
			cf.Config.Labels["org.opencontainers.image.version"] != "9.9.9-test" {
			t.Fatalf("config user %q created %v labels %v", cf.Config.User, cf.Created, cf.Config.Labels)
		}
		if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
			t.Fatalf("manifest media type %s, want OCI", mt)
		}
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same input differ: %s vs %s", digests[0], digests[1])
	}
	if err := run([]string{"-binary", bin}, "yesterday", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Fatalf("a bad SOURCE_DATE_EPOCH = %v, want refused", err)
	}
}

var testCA = []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

func testImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := build(spec{Binary: []byte("\x7fELF not really"), CACerts: testCA, Arch: "amd64", Version: "1", Revision: "r",
		Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func withLayer(t *testing.T, img v1.Image, entries ...entry) v1.Image {
	t.Helper()
	l, err := layer(time.Unix(0, 0), entries)
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func withConfig(t *testing.T, img v1.Image, edit func(*v1.Config)) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	edit(&cf.Config)
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The check is what stands between a careless change and a root or shell-bearing image, so each
// rule is attacked: each image below differs from a good one in one way and must be refused.
func TestImageCheck_RefusesWhatMustNotShip(t *testing.T) {
	t.Parallel()
	if _, err := check(testImage(t)); err != nil {
		t.Fatalf("good image refused: %v", err)
	}
	tests := []struct {
		name string
		img  func(t *testing.T) v1.Image
		want string
	}{
		{"root user", func(t *testing.T) v1.Image {
			return withConfig(t, testImage(t), func(c *v1.Config) { c.User = "0:0" })
		}, "is root"},
		{"no user (defaults to root)", func(t *testing.T) v1.Image {
			return withConfig(t, testImage(t), func(c *v1.Config) { c.User = "" })
		}, "is root"},
		{"user named root", func(t *testing.T) v1.Image {
			return withConfig(t, testImage(t), func(c *v1.Config) { c.User = "root" })
		}, "is root"},
		{"a shell", func(t *testing.T) v1.Image {
			return withLayer(t, testImage(t), dir("bin", 0, 0o755), file("bin/sh", []byte("x"), 0, 0o755))
		}, "/bin/sh"},
		{"busybox", func(t *testing.T) v1.Image {
			return withLayer(t, testImage(t), file("usr/local/bin/busybox", []byte("x"), 0, 0o755))
		}, "busybox"},
		{"a setuid file", func(t *testing.T) v1.Image {
			return withLayer(t, testImage(t), file("usr/local/bin/helper", []byte("x"), 0, 0o4755))
		}, "setuid"},
		{"/data owned by root", func(t *testing.T) v1.Image {
			return withLayer(t, testImage(t), dir("data", 0, 0o700))
		}, "/data is not"},
		{"/data readable by others", func(t *testing.T) v1.Image {
			return withLayer(t, testImage(t), dir("data", nonrootUID, 0o755))
		}, "/data is not"},
		{"another entrypoint", func(t *testing.T) v1.Image {
			return withConfig(t, testImage(t), func(c *v1.Config) { c.Entrypoint = []string{"/bin/sh", "-c"} })
		}, "entrypoint"},
		{"no revision label", func(t *testing.T) v1.Image {
			return withConfig(t, testImage(t), func(c *v1.Config) { delete(c.Labels, "org.opencontainers.image.revision") })
		}, "revision"},
		{"binary deleted by a whiteout", func(t *testing.T) v1.Image {
			return withLayer(t, testImage(t), entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/local/bin/.wh.tutela"}})
		}, "no /usr/local/bin/tutela"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := check(tt.img(t))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("check = %v, want a problem mentioning %q", err, tt.want)
			}
		})
	}
}

func TestImage_RefusesADynamicBinaryAndBadInput(t *testing.T) {
	t.Parallel()
	ls, err := os.ReadFile("/bin/ls") // dynamically linked on every Debian
	if err != nil {
		t.Fatal(err)
	}
	if err := static(ls); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("static(/bin/ls) = %v, want refused", err)
	}
	if err := static([]byte("#!/bin/sh\n")); err == nil {
		t.Fatal("a script was accepted as the binary")
	}
	if _, err := build(spec{Binary: []byte("x"), CACerts: []byte("not pem")}); err == nil {
		t.Fatal("a CA bundle without certificates was accepted")
	}
}
