package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/audit/receiver"
	"tutela/auditship"
	"tutela/config"
	"tutela/sqlstore"
)

// startShipper builds the audit shipper for audit.ship (docs/audit.md, "Shipping the log"); nil
// when no destination is configured. A destination this build cannot serve stops the start:
// a log the operator asked to ship must not silently stay home.
func (m *Main) startShipper() error {
	dests := m.Config.ShipDestinations()
	if len(dests) == 0 {
		return nil
	}
	var out []auditship.Destination
	for _, d := range dests {
		switch d.Type {
		case config.ShipHTTPS:
			client := &http.Client{Timeout: time.Minute,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			h, err := auditship.NewHTTPS(d.Name, d.URL, d.Secret, client, nil)
			if err != nil {
				return err
			}
			out = append(out, h)
		case config.ShipSyslog:
			dest, closer, err := syslogDestination(d)
			if err != nil {
				return fmt.Errorf("audit.ship: destination %q: %w", d.Name, err)
			}
			m.closers = append(m.closers, closer)
			out = append(out, dest)
		default:
			return fmt.Errorf("audit.ship: destination %q: unknown type %s", d.Name, d.Type)
		}
	}
	s, err := auditship.New(m.DB, out, auditship.Options{VerifierKey: m.auditVKey, Origin: AuditOrigin,
		Interval: m.Config.Audit.CheckpointInterval, Logger: m.Logger})
	if err != nil {
		return err
	}
	m.shipper = s
	return nil
}

// auditReceiveCmd runs a receiver of shipped batches (audit/receiver) on a system apart from
// the Tutela deployment. It reads no Tutela configuration: only its flags and the shared secret.
type auditReceiveCmd struct {
	Listen  string `required:"" help:"Address to listen on (host:port)."`
	Dir     string `required:"" help:"Directory keeping the received entries, tree hashes and checkpoints."`
	Key     string `required:"" help:"The log's verifier key (tutela audit key on the deployment), never taken from a batch."`
	Origin  string `default:"tutela/audit" help:"The log's origin."`
	TLSCert string `name:"tls-cert" help:"Certificate (PEM) to serve HTTPS with; without one, only a loopback address is allowed (behind a TLS proxy)."`
	TLSKey  string `name:"tls-key" help:"Private key (PEM) of --tls-cert."`
	// As audit.checkpoint_keep_hourly on the deployment; 0 keeps every checkpoint.
	CheckpointKeepHourly time.Duration `name:"checkpoint-keep-hourly" default:"720h" help:"Keep the first and latest checkpoint, the last of each hour for this long and the last of each day before; 0 keeps every one."`
}

// receiveSecretVar holds the shared signing secret (or its _FILE variant names a file with it):
// the value of TUTELA_AUDIT_SHIP_SECRET_<NAME> on the shipping side.
const receiveSecretVar = "TUTELA_AUDIT_RECEIVE_SECRET" // #nosec G101 -- the name of an environment variable, not a credential

func (c auditReceiveCmd) Run(e *env) error {
	secret, err := config.SecretFromEnviron(e.environ, receiveSecretVar)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.TLSCert == "" && !tutela.IsLoopbackHost(host) {
		return errors.New("--listen on a non-loopback address needs --tls-cert and --tls-key: batches carry the audit log")
	}
	if c.CheckpointKeepHourly < 0 {
		return errors.New("--checkpoint-keep-hourly: must be 0 (keep every checkpoint) or positive")
	}
	store, err := receiver.Open(c.Dir, c.Key, c.Origin)
	if err != nil {
		return err
	}
	defer store.Close()
	store.ThinCheckpoints(c.CheckpointKeepHourly)
	log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{ReplaceAttr: utcTime}))
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: &receiver.Handler{Store: store, Secret: secret.Reveal(), Log: log},
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	st := store.State()
	log.Info("audit receiver ready", "addr", ln.Addr().String(), "size", st.Size, "checkpoint_size", st.CheckpointSize)
	errc := make(chan error, 1)
	go func() {
		if c.TLSCert != "" {
			errc <- srv.ServeTLS(ln, c.TLSCert, c.TLSKey)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-e.ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// auditShippingCmd prints how far the log has been shipped to each destination.
type auditShippingCmd struct{}

func (auditShippingCmd) Run(e *env) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	size := int64(0)
	if signed, err := m.DB.AuditCheckpoint(e.ctx); err == nil {
		if c, err := audit.ParseCheckpoint(checkpointBody(signed)); err == nil {
			size = c.Size
		}
	} else if tutela.ErrorCode(err) != tutela.ENOTFOUND {
		return err
	}
	cursors, err := m.DB.AuditShipCursors(e.ctx)
	if err != nil {
		return err
	}
	byName := map[string]sqlstore.AuditShipCursor{}
	for _, c := range cursors {
		byName[c.Destination] = c
	}
	configured := map[string]bool{}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DESTINATION\tSHIPPED\tBEHIND\tCHECKPOINT\tLAST SHIPPED\tFAILURES\tLAST ERROR")
	line := func(name string, c sqlstore.AuditShipCursor, note string) {
		last := "never"
		if !c.ShippedAt.IsZero() {
			last = c.ShippedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%d\t%s\n", name+note, c.Next, max(size-c.Next, 0), c.CheckpointSize, last,
			c.Failures, c.LastError)
	}
	for _, d := range m.Config.ShipDestinations() {
		configured[d.Name] = true
		line(d.Name, byName[d.Name], "")
	}
	for _, c := range cursors {
		if !configured[c.Destination] {
			line(c.Destination, c, " (not configured)")
		}
	}
	return w.Flush()
}

// checkpointBody is the note text of a signed checkpoint (before the blank line and signatures).
func checkpointBody(signed []byte) []byte {
	if i := strings.Index(string(signed), "\n\n"); i >= 0 {
		return signed[:i+1]
	}
	return signed
}
