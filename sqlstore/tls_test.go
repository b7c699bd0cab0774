package sqlstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tutela/sqlstore"
)

// pgBinDir finds the newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl.
func pgBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
				return d
			}
		}
	}
	return ""
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issueServer returns PEM certificate and key for 127.0.0.1 and localhost.
func (ca *testCA) issueServer(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tlsCluster starts a throwaway PostgreSQL cluster that accepts only TLS connections over TCP
// (hostssl) with a certificate from ca, and returns its port. initdb refuses to run as root,
// so as root the cluster runs as the postgres OS user.
func tlsCluster(t *testing.T, ca *testCA) int {
	t.Helper()
	bin := pgBinDir()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) missing; CI=true forbids skipping")
		}
		t.Skip("no /usr/lib/postgresql/*/bin/initdb; skipping (set CI=true to fail instead)")
	}
	var asUser []string
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres OS user: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	// A private directory of our own (t.TempDir's parent is 0700 root, unreachable for postgres).
	dir, err := os.MkdirTemp("", "tutela-pgtls-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return runCluster(t, bin, dir, asUser, uid, gid, ca)
}

func runCluster(t *testing.T, bin, dir string, asUser []string, uid, gid int, ca *testCA) int {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		full := append(slices.Clone(asUser), args...)
		c := exec.Command(full[0], full[1:]...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	certPEM, keyPEM := ca.issueServer(t)
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	certFile := write("server.crt", certPEM, 0o600)
	keyFile := write("server.key", keyPEM, 0o600) // PostgreSQL refuses a key group/others can read
	data := filepath.Join(dir, "data")
	run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	port := freePort(t)
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\nfsync = off\n", port, dir, certFile, keyFile)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(conf)
	f.Close()
	// TCP only over TLS; the Unix socket (local) is for pg_ctl's readiness check.
	write("data/pg_hba.conf", []byte("local all all trust\nhostssl all all 127.0.0.1/32 trust\n"), 0o600)
	run(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "20", "start")
	t.Cleanup(func() {
		full := append(slices.Clone(asUser), filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		if out, err := exec.Command(full[0], full[1:]...).CombinedOutput(); err != nil {
			t.Errorf("stop cluster: %v\n%s", err, out)
		}
	})
	return port
}

func pingURL(url string) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func TestPostgresTLS_VerifyFull(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "tutela test CA")
	port := tlsCluster(t, ca)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o600)
	otherFile := filepath.Join(dir, "other-ca.pem")
	os.WriteFile(otherFile, newTestCA(t, "some other CA").pem, 0o600)
	base := fmt.Sprintf("postgres://postgres@%%s:%d/postgres?", port)

	for _, host := range []string{"127.0.0.1", "localhost"} {
		url := fmt.Sprintf(base, host) + "sslmode=verify-full&sslrootcert=" + caFile
		db, err := sqlstore.Open(context.Background(), url, sqlstore.Options{})
		if err != nil {
			t.Fatalf("verify-full to %s with the right CA: %v", host, err)
		}
		var ssl bool
		err = db.SQL().QueryRow(`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl)
		db.Close()
		if err != nil || !ssl {
			t.Fatalf("connection to %s not encrypted: ssl=%v err=%v", host, ssl, err)
		}
	}
	if err := pingURL(fmt.Sprintf(base, "127.0.0.1") + "sslmode=verify-full&sslrootcert=" + otherFile); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("verify-full with another CA: %v, want a certificate error", err)
	}
	if err := pingURL(fmt.Sprintf(base, "127.0.0.1") + "sslmode=disable"); err == nil ||
		!strings.Contains(err.Error(), "pg_hba.conf") {
		t.Fatalf("sslmode=disable to a hostssl-only server: %v, want a pg_hba.conf rejection", err)
	}
}
