package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"tutela"
	"tutela/config"
	"tutela/httpapi"
	"tutela/httpapi/middleware"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/vault"
)

// Main wires Tutela together: configuration, logger, master key, store and HTTP server. main()
// and the tests both use it, so a test can start the whole service in-process.
type Main struct {
	Config    *config.Config
	Logger    *slog.Logger
	DB        *sqlstore.DB
	MasterKey tutela.Secret

	httpServer *http.Server
	ln         net.Listener
}

// open loads the configuration and opens the store; with serving it also loads (or creates)
// the master key and applies migrations.
func open(e *env, serving bool) (*Main, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	m := &Main{Config: cfg, Logger: newLogger(cfg, e.stderr)}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if serving {
		if err := m.loadMasterKey(); err != nil {
			return nil, err
		}
	}
	dsn := cfg.DatabaseDSN()
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "tutela.db")
	}
	m.DB, err = sqlstore.Open(e.ctx, dsn, sqlstore.Options{
		MaxOpenConns:    cfg.Database.MaxOpenConns,
		MaxIdleConns:    cfg.Database.MaxIdleConns,
		ConnMaxLifetime: cfg.Database.ConnMaxLifetime,
	})
	if err != nil {
		return nil, err
	}
	if serving {
		if err := m.DB.Migrate(e.ctx); err != nil {
			m.DB.Close()
			return nil, err
		}
	}
	return m, nil
}

func newLogger(cfg *config.Config, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.Log.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(middleware.NewRedactingHandler(h))
}

func (m *Main) loadMasterKey() error {
	if !m.Config.MasterKey.IsZero() {
		k, err := vault.ParseMasterKey(m.Config.MasterKey.Reveal())
		if err != nil {
			return fmt.Errorf("TUTELA_MASTER_KEY: %w", err)
		}
		m.MasterKey = k
		return nil
	}
	path := filepath.Join(m.Config.DataDir, vault.MasterKeyFile)
	k, created, err := vault.LoadOrCreateMasterKey(path)
	if err != nil {
		return err
	}
	if created {
		m.Logger.Info("generated a new master key", "path", path)
	}
	m.Logger.Warn("the master key is a local file; production deployments should keep it in a KMS or HSM",
		"path", path)
	m.MasterKey = k
	return nil
}

// Listen builds the HTTP server and binds its address.
func (m *Main) Listen() error {
	cfg := m.Config
	proxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return err
	}
	hasher, err := password.NewHasher(password.DefaultParams(), 0, 2*time.Second)
	if err != nil {
		return err
	}
	useTLS := cfg.TLS.CertFile != ""
	api := httpapi.New(httpapi.Deps{
		DB: m.DB, Hasher: hasher, Policy: password.DefaultPolicy(), Logger: m.Logger,
		TLS: useTLS, TrustedProxies: proxies, BodyLimit: cfg.HTTP.BodyLimit,
		RateRPS: cfg.HTTP.RateLimit.RPS, RateBurst: cfg.HTTP.RateLimit.Burst,
	})
	m.httpServer = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return err
	}
	if useTLS {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		m.httpServer.TLSConfig = TLSConfig(cfg.TLS.MinTLSVersion(), cert)
		ln = tls.NewListener(ln, m.httpServer.TLSConfig)
	}
	m.ln = ln
	return nil
}

// TLSConfig returns the server TLS settings: TLS 1.3 by default; when 1.2 is allowed, only
// forward-secret AEAD suites (ASVS 12.1.2). TLS 1.3 suites are not configurable in Go and are
// all AEAD.
func TLSConfig(minVersion uint16, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   minVersion,
		Certificates: []tls.Certificate{cert},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// Addr is the bound address (useful with port 0).
func (m *Main) Addr() string { return m.ln.Addr().String() }

// BaseURL is the URL the server can be reached at, as configured.
func (m *Main) BaseURL() string {
	scheme := "http"
	if m.Config.TLS.CertFile != "" {
		scheme = "https"
	}
	addr := m.Config.HTTP.Addr
	if m.ln != nil {
		addr = m.Addr()
	}
	return scheme + "://" + addr
}

// Serve serves until ctx is cancelled, then shuts down gracefully: stop accepting, let
// in-flight requests finish (up to the shutdown timeout), and return.
func (m *Main) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- m.httpServer.Serve(m.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	m.Logger.Info("shutting down: draining in-flight requests", "timeout", m.Config.HTTP.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), m.Config.HTTP.ShutdownTimeout)
	defer cancel()
	err := m.httpServer.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Close releases the store.
func (m *Main) Close() error {
	if m.DB != nil {
		return m.DB.Close()
	}
	return nil
}

type serveCmd struct{}

func (serveCmd) Run(e *env) error {
	start := time.Now()
	m, err := open(e, true)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Listen(); err != nil {
		return err
	}
	if m.Config.TLS.CertFile == "" {
		m.Logger.Warn("serving plaintext HTTP: only safe on loopback or behind a TLS-terminating proxy",
			"allow_plaintext", m.Config.HTTP.AllowPlaintext)
	}
	m.Logger.Info("tutela ready", "addr", m.Addr(), "store", string(m.DB.Dialect()),
		"version", tutela.Version, "startup_ms", time.Since(start).Milliseconds())
	if err := m.Serve(e.ctx); err != nil {
		return err
	}
	m.Logger.Info("stopped")
	return nil
}
