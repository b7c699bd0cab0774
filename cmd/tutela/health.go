package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// healthCmd asks this host's own listener for /healthz (or /readyz): the container health check
// for images with no shell or HTTP client (compose.yaml, the Dockerfile's HEALTHCHECK). It reads
// the same configuration as serve and connects to http.addr on loopback.
type healthCmd struct {
	Path string `default:"/healthz" enum:"/healthz,/readyz" help:"Probe path: /healthz (alive) or /readyz (database reachable, schema current)."`
}

func (c healthCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		scheme = "https"
		pinned, err := leafDER(cfg.TLS.CertFile)
		if err != nil {
			return err
		}
		// The listener is reached by loopback address, which its certificate (issued for the
		// public name) does not list; instead of skipping the check, the answer must come with
		// exactly the certificate this node serves.
		tr.TLSClientConfig = &tls.Config{
			MinVersion:         cfg.TLS.MinTLSVersion(),
			InsecureSkipVerify: true, // #nosec G402 -- the name check only; VerifyConnection (run whatever this says) accepts nothing but tls.cert_file's leaf, and the handshake proves its key
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
					return errors.New("the listener does not serve tls.cert_file's certificate")
				}
				return nil
			},
		}
	}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+c.Path, nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d", c.Path, res.StatusCode)
	}
	fmt.Fprintf(e.stdout, "%s ok\n", c.Path)
	return nil
}

// leafDER is the first certificate in a PEM file: the one a TLS server presents first.
func leafDER(path string) ([]byte, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- tls.cert_file from the configuration
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w", err)
	}
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return nil, errors.New("tls.cert_file: no certificate")
		}
		if blk.Type == "CERTIFICATE" {
			return blk.Bytes, nil
		}
	}
}
