package main

import (
	"context"
	"fmt"
	"time"

	"tutela/config"
	"tutela/files/blob"
	"tutela/files/clamd"
	"tutela/files/intake"
)

// fileIntake builds the node's file intake (issue 17): the blob store the configuration names,
// the clamd client, and the scan and purge jobs on the node's queue. Temporaries a crash left in
// the local store are removed first.
func (m *Main) fileIntake(ctx context.Context, cfg *config.Config) (*intake.Service, error) {
	var store blob.Store
	switch cfg.Files.Backend {
	case "s3":
		s3c := cfg.Files.S3
		s, err := blob.NewS3(ctx, blob.S3Config{Bucket: s3c.Bucket, Prefix: s3c.Prefix, Region: s3c.Region,
			Endpoint: s3c.Endpoint, UsePathStyle: s3c.PathStyle, AccessKeyID: s3c.AccessKeyID,
			SecretAccessKey: cfg.FilesS3SecretKey})
		if err != nil {
			return nil, fmt.Errorf("files.s3: %w", err)
		}
		if n, err := s.CleanTemp(ctx, cfg.Files.TransferTimeout+time.Hour); err != nil {
			m.Logger.Warn("files: removing unfinished uploads from the bucket failed", "error", err)
		} else if n > 0 {
			m.Logger.Info("files: removed unfinished uploads a stop left in the bucket", "count", n)
		}
		store = s
	default:
		l, err := blob.NewLocal(cfg.FilesDir())
		if err != nil {
			return nil, fmt.Errorf("files.dir: %w", err)
		}
		// An upload takes at most the transfer timeout; a temporary older than that is a
		// crash's leftover.
		if n, err := l.CleanTemp(cfg.Files.TransferTimeout + time.Hour); err != nil {
			m.Logger.Warn("files: removing unfinished uploads failed", "error", err)
		} else if n > 0 {
			m.Logger.Info("files: removed unfinished uploads a stop left behind", "count", n)
		}
		store = l
	}
	svc := &intake.Service{DB: m.DB, Blobs: store, ScanTimeout: cfg.Files.ScanTimeout, ScanMaxSize: cfg.Files.ScanMaxSize,
		DBTimeout: cfg.Database.RequestTimeout, Log: m.Logger}
	if cfg.Files.MalwareScan {
		network, address := cfg.Files.ClamdAddress()
		c := &clamd.Client{Network: network, Address: address, Timeout: cfg.Files.ScanTimeout}
		// Not fatal (files wait in quarantine until it answers), but said at once.
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := c.Ping(pctx); err != nil {
			m.Logger.Warn("files: the malware scanner (files.clamd) does not answer; uploads will wait in quarantine until it does",
				"clamd", cfg.Files.Clamd, "error", err)
		}
		cancel()
		svc.Scanner = c
	}
	svc.Register(m.jobs)
	return svc, nil
}
