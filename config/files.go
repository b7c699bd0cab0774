package config

import (
	"net"
	"path/filepath"
	"strings"
	"time"
)

// Files configures file intake (issue 17): where the encrypted blobs go, the malware scanner,
// and how long one transfer may take.
type Files struct {
	// Backend is "local" (default: encrypted blobs in Dir) or "s3" (an S3-compatible bucket).
	Backend string `koanf:"backend"`
	// Dir holds the blobs of the local backend; default <data_dir>/files. Keep it outside any
	// directory a web server serves.
	Dir string  `koanf:"dir"`
	S3  FilesS3 `koanf:"s3"`
	// Clamd is ClamAV's clamd: "unix:/path/to/clamd.ctl" or "tcp:host:port". Default Debian's
	// socket, unix:/run/clamav/clamd.ctl. A file waits in quarantine (not downloadable) until
	// clamd has judged it clean.
	Clamd string `koanf:"clamd"`
	// ScanTimeout bounds one scan (default 2m); past it the file stays quarantined and is
	// scanned again later.
	ScanTimeout time.Duration `koanf:"scan_timeout"`
	// ScanMaxSize is the largest file sent to clamd (default 100 MiB, clamd's own default
	// MaxFileSize): clamd's MaxFileSize, MaxScanSize and StreamMaxLength must be at least this,
	// with AlertExceedsMax yes. A larger file stays quarantined (scanner_limit), because past
	// its limits clamd answers "OK" for content it has not scanned.
	ScanMaxSize int64 `koanf:"scan_max_size"`
	// MalwareScan false accepts files without a malware scan (they are marked not_scanned).
	// Only for a deployment that scans elsewhere; the server warns at every start.
	MalwareScan bool `koanf:"malware_scan"`
	// TransferTimeout bounds one upload's body or one download (default 30m); an upload whose
	// body stalls for a minute ends sooner.
	TransferTimeout time.Duration `koanf:"transfer_timeout"`
	// MaxConcurrentUploads is how many upload bodies one node takes at once (default 32);
	// past it, 503 with Retry-After.
	MaxConcurrentUploads int `koanf:"max_concurrent_uploads"`
}

// FilesS3 is the bucket of the s3 backend. The secret key is TUTELA_FILES_S3_SECRET_ACCESS_KEY
// (or _FILE); with neither key set the AWS SDK's default chain is used (instance role, ...).
type FilesS3 struct {
	Bucket      string `koanf:"bucket"`
	Prefix      string `koanf:"prefix"`
	Region      string `koanf:"region"`
	Endpoint    string `koanf:"endpoint"` // an S3-compatible service (MinIO, Ceph): https URL
	PathStyle   bool   `koanf:"path_style"`
	AccessKeyID string `koanf:"access_key_id"`
}

func defaultFiles() Files {
	return Files{Backend: "local", Clamd: "unix:/run/clamav/clamd.ctl", ScanTimeout: 2 * time.Minute,
		ScanMaxSize: 100 << 20, MalwareScan: true, TransferTimeout: 30 * time.Minute, MaxConcurrentUploads: 32}
}

// FilesDir is where the local backend keeps blobs.
func (c *Config) FilesDir() string {
	if c.Files.Dir != "" {
		return c.Files.Dir
	}
	return filepath.Join(c.DataDir, "files")
}

// ClamdAddress splits Clamd into a network and an address for net.Dial.
func (f Files) ClamdAddress() (network, address string) {
	if rest, ok := strings.CutPrefix(f.Clamd, "unix:"); ok {
		return "unix", rest
	}
	if rest, ok := strings.CutPrefix(f.Clamd, "tcp:"); ok {
		return "tcp", rest
	}
	return "", ""
}

func (c *Config) validateFiles(p *problems) {
	f := c.Files
	switch f.Backend {
	case "local":
	case "s3":
		if f.S3.Bucket == "" {
			p.add("files.s3.bucket: required with files.backend s3")
		}
		if f.S3.Endpoint != "" && !httpsURL(f.S3.Endpoint) {
			p.add("files.s3.endpoint: must be an https URL (http only to a loopback address)")
		}
		if (f.S3.AccessKeyID == "") != c.FilesS3SecretKey.IsZero() {
			p.add("files.s3.access_key_id and TUTELA_FILES_S3_SECRET_ACCESS_KEY: set both or neither")
		}
	default:
		p.add("files.backend: must be local or s3")
	}
	if f.MalwareScan {
		n, a := f.ClamdAddress()
		if _, port, err := net.SplitHostPort(a); n == "" || a == "" || (n == "tcp" && (err != nil || port == "")) {
			p.add("files.clamd: must be unix:/path/to/clamd.ctl or tcp:host:port")
		}
	}
	if f.ScanMaxSize < 1 || f.ScanMaxSize > 4<<30 {
		p.add("files.scan_max_size: must be between 1 and 4294967296 bytes (clamd's largest stream is 4 GiB)")
	}
	if f.ScanTimeout < time.Second || f.ScanTimeout > time.Hour {
		p.add("files.scan_timeout: must be between 1s and 1h")
	}
	if f.MaxConcurrentUploads < 1 || f.MaxConcurrentUploads > 10000 {
		p.add("files.max_concurrent_uploads: must be between 1 and 10000")
	}
	if f.TransferTimeout < 10*time.Second || f.TransferTimeout > 24*time.Hour {
		p.add("files.transfer_timeout: must be between 10s and 24h")
	}
}
