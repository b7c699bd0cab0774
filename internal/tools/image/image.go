package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed facts. 65532 is the uid distroless calls "nonroot"; the same number in the
// Dockerfile, the Helm chart's securityContext and the docs keeps them interchangeable.
const (
	nonrootUID = 65532
	binaryPath = "usr/local/bin/tutela"
	caPath     = "etc/ssl/certs/ca-certificates.crt"
	dataDir    = "data"
	// defaultSource is the OCI source label when -source is not given.
	defaultSource = "https://github.com/tutela/tutela"
)

// spec is what goes into the image; everything else is fixed by this package.
type spec struct {
	Binary   []byte    // static tutela binary (CGO_ENABLED=0)
	CACerts  []byte    // PEM bundle, from Debian's ca-certificates
	Arch     string    // GOARCH of Binary
	Version  string    // tutela.Version of Binary
	Revision string    // VCS revision it was built from
	Source   string    // repository URL
	Created  time.Time // SOURCE_DATE_EPOCH: every timestamp in the image, for reproducible digests
}

// build assembles the image from scratch: a base layer (users, CA bundle, /data, /tmp) and an app
// layer (the binary), OCI media types throughout. The same spec always gives the same digest.
func build(s spec) (v1.Image, error) {
	if len(s.Binary) == 0 || len(s.CACerts) == 0 {
		return nil, errors.New("image: the binary and the CA bundle are required")
	}
	if !bytes.Contains(s.CACerts, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, errors.New("image: the CA bundle holds no PEM certificate")
	}
	created := s.Created.UTC()
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonrootUID, nonrootUID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonrootUID)
	base, err := layer(created, []entry{
		dir("etc", 0, 0o755), file("etc/passwd", []byte(passwd), 0, 0o644), file("etc/group", []byte(group), 0, 0o644),
		dir("etc/ssl", 0, 0o755), dir("etc/ssl/certs", 0, 0o755), file(caPath, s.CACerts, 0, 0o644),
		// /tmp is sticky and world-writable as everywhere; the Helm chart mounts an emptyDir there
		// because the root filesystem is read-only.
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}},
		dir("home", 0, 0o755), dir("home/nonroot", nonrootUID, 0o700),
		// The data directory (master key, SQLite, checkpoints) belongs to the runtime user only.
		dir(dataDir, nonrootUID, 0o700),
	})
	if err != nil {
		return nil, err
	}
	app, err := layer(created, []entry{dir("usr", 0, 0o755), dir("usr/local", 0, 0o755), dir("usr/local/bin", 0, 0o755),
		file(binaryPath, s.Binary, 0, 0o755)})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), base, app)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", s.Arch
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", nonrootUID, nonrootUID),
		Entrypoint: []string{"/" + binaryPath},
		Cmd:        []string{"serve"},
		WorkingDir: "/" + dataDir,
		// http.addr must leave loopback to be reachable in a container; validation then still
		// demands TLS (tls.*) or http.allow_plaintext behind a proxy, so the image cannot serve
		// plaintext by accident.
		Env:          []string{"TUTELA_DATA_DIR=/" + dataDir, "TUTELA_HTTP_ADDR=:8080", "PATH=/usr/local/bin"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		Volumes:      map[string]struct{}{"/" + dataDir: {}},
		Labels:       labels(s),
	}
	for i := range cf.History {
		cf.History[i].Created = v1.Time{Time: created}
	}
	return mutate.ConfigFile(img, cf)
}

// labels are the OCI image annotations (image-spec annotations.md) a registry or scanner shows.
func labels(s spec) map[string]string {
	src := s.Source
	if src == "" {
		src = defaultSource
	}
	return map[string]string{
		"org.opencontainers.image.title":    "tutela",
		"org.opencontainers.image.source":   src,
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.revision": s.Revision,
		"org.opencontainers.image.created":  s.Created.UTC().Format(time.RFC3339),
	}
}

type entry struct {
	hdr  tar.Header
	body []byte
}

func dir(name string, uid, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: int(uid), Gid: int(uid)}}
}

func file(name string, body []byte, uid, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: int(uid), Gid: int(uid),
		Size: int64(len(body))}, body: body}
}

// layer writes entries as a tar with every timestamp set to created and no user or group names,
// so the bytes depend on the content alone (reproducible-builds.org/docs/archives).
func layer(created time.Time, entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime, h.Format = created, tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// shells are program names whose presence would give an attacker who gets code execution an
// interpreter; the image has none.
var shells = []string{"sh", "bash", "ash", "dash", "zsh", "ksh", "csh", "tcsh", "busybox", "toybox"}

// check inspects an image as a deployer would: the runtime user is not root, the filesystem holds
// no shell or package manager, /data belongs to the runtime user, the entrypoint is the tutela
// binary. It returns the binary's bytes for the caller to run.
func check(img v1.Image) ([]byte, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	var problems []string
	user := cf.Config.User
	if uid, _, _ := strings.Cut(user, ":"); user == "" || uid == "0" || uid == "root" {
		problems = append(problems, fmt.Sprintf("config user %q is root", user))
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/" + binaryPath}) {
		problems = append(problems, fmt.Sprintf("entrypoint %q is not /%s", cf.Config.Entrypoint, binaryPath))
	}
	if !slices.Contains(cf.Config.Env, "TUTELA_DATA_DIR=/"+dataDir) {
		problems = append(problems, "TUTELA_DATA_DIR is not /"+dataDir)
	}
	for _, k := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if cf.Config.Labels[k] == "" {
			problems = append(problems, "label "+k+" is missing")
		}
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var binary []byte
	dataOK, caOK := false, false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if slices.Contains(shells, path.Base(name)) || path.Base(name) == "apt" || path.Base(name) == "dpkg" {
			problems = append(problems, "the filesystem holds /"+name)
		}
		if h.Typeflag == tar.TypeReg && h.Mode&0o4000 != 0 {
			problems = append(problems, "/"+name+" is setuid")
		}
		switch name {
		case binaryPath:
			if binary, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		case dataDir:
			dataOK = h.Typeflag == tar.TypeDir && h.Uid == nonrootUID && h.Mode&0o077 == 0
		case caPath:
			caOK = h.Size > 0
		}
	}
	if binary == nil {
		problems = append(problems, "no /"+binaryPath)
	}
	if !dataOK {
		problems = append(problems, fmt.Sprintf("/%s is not a 0700 directory owned by %d", dataDir, nonrootUID))
	}
	if !caOK {
		problems = append(problems, "no CA bundle at /"+caPath)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("image: %s", strings.Join(problems, "; "))
	}
	return binary, nil
}
