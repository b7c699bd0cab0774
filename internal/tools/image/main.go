// Command image builds Tutela's container image without a Docker daemon, with
// github.com/google/go-containerregistry: a scratch base, the static binary, Debian's CA bundle,
// a non-root user (65532) and /data owned by it. It writes an OCI image layout and a tarball that
// `docker load` / `podman load` accept, then checks what it wrote (non-root user, no shell, the
// binary runs). It lives under internal/tools so it never ships in the tutela binary.
//
//	CGO_ENABLED=0 go build -trimpath -ldflags "-X tutela.Version=$V" -o artifacts/tutela ./cmd/tutela
//	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) go run ./internal/tools/image -binary artifacts/tutela -version $V -revision $(git rev-parse HEAD)
package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if err := run(os.Args[1:], os.Getenv("SOURCE_DATE_EPOCH"), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string, epoch string, stdout io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	binary := fs.String("binary", "", "static tutela binary (CGO_ENABLED=0)")
	ca := fs.String("ca", "/etc/ssl/certs/ca-certificates.crt", "CA bundle (Debian ca-certificates)")
	arch := fs.String("arch", runtime.GOARCH, "GOARCH the binary was built for")
	version := fs.String("version", "dev", "version label (tutela.Version)")
	revision := fs.String("revision", "unknown", "VCS revision label")
	source := fs.String("source", defaultSource, "repository URL label")
	out := fs.String("out", "artifacts/image", "OCI image layout directory to write (replaced)")
	tarPath := fs.String("tar", "artifacts/tutela-image.tar", "docker/podman load tarball to write (\"\" for none)")
	tag := fs.String("tag", "", "image reference in the tarball and layout (default tutela:<version>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" {
		return errors.New("image: -binary is required")
	}
	created, err := sourceDate(epoch)
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(*binary)
	if err != nil {
		return err
	}
	if err := static(bin); err != nil {
		return err
	}
	certs, err := os.ReadFile(*ca)
	if err != nil {
		return err
	}
	img, err := build(spec{Binary: bin, CACerts: certs, Arch: *arch, Version: *version, Revision: *revision,
		Source: *source, Created: created})
	if err != nil {
		return err
	}
	if *tag == "" {
		*tag = "tutela:" + strings.ReplaceAll(*version, "+", "_")
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return err
	}
	if err := writeLayout(*out, img, ref.String()); err != nil {
		return err
	}
	if *tarPath != "" {
		if err := tarball.WriteToFile(*tarPath, ref, img); err != nil {
			return err
		}
	}
	// Check what is on disk, not what is in memory: the layout is what gets pushed.
	written, err := readLayout(*out)
	if err != nil {
		return err
	}
	got, err := check(written)
	if err != nil {
		return err
	}
	if *arch == runtime.GOARCH && runtime.GOOS == "linux" {
		v, err := runVersion(got)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "image runs: %s\n", v)
	}
	digest, err := written.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s -> %s", ref, digest, *out)
	if *tarPath != "" {
		fmt.Fprintf(stdout, ", %s", *tarPath)
	}
	fmt.Fprintln(stdout)
	return nil
}

// sourceDate is SOURCE_DATE_EPOCH (reproducible-builds.org/specs/source-date-epoch) or, unset,
// the Unix epoch: never the wall clock, so two builds of one commit have one digest.
func sourceDate(epoch string) (time.Time, error) {
	if epoch == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("image: SOURCE_DATE_EPOCH %q is not a Unix time", epoch)
	}
	return time.Unix(n, 0).UTC(), nil
}

// static refuses a dynamically linked binary: scratch has no C library or loader, so it would not
// start (a cgo build, as with PKCS#11, needs a glibc base instead).
func static(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("image: the binary is not a Linux ELF executable: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("image: the binary is dynamically linked; build it with CGO_ENABLED=0")
		}
	}
	return nil
}

func writeLayout(dir string, img v1.Image, ref string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
}

func readLayout(dir string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("image: %s holds %d manifests, want 1", dir, len(m.Manifests))
	}
	return idx.Image(m.Manifests[0].Digest)
}

// runVersion runs the binary taken out of the image with `version`, as the container would.
func runVersion(bin []byte) (string, error) {
	dir, err := os.MkdirTemp("", "tutela-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "tutela")
	if err := os.WriteFile(p, bin, 0o700); err != nil { // #nosec G306 -- the binary must be executable to run `version`; owner only, in its own 0700 temporary directory
		return "", err
	}
	cmd := exec.Command(p, "version") // #nosec G204 -- the binary this tool just packaged
	cmd.Env = []string{"TUTELA_DATA_DIR=" + dir}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "tutela ") {
		return "", fmt.Errorf("image: the packaged binary does not run `version`: %v: %.200s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
