package sqlstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"tutela"
	"tutela/files"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// The file tables (migration 00027) carry row-level security: a runtime role scoped to tenant A
// sees none of B's policy, files or links, even with a query that forgets the tenant.
func TestRLS_FilesTablesSeeOnlyTheirTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := sqltest.PostgresURL(t)
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		for _, slug := range []string{"a", "b"} {
			tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
			s := tx.Files(tn.ID)
			if err := s.SetPolicy(ctx, files.DefaultPolicy(), "admin"); err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(slug))
			f := &files.File{DeclaredType: files.TypePDF, DetectedType: files.TypePDF, Size: 1, SHA256: hex.EncodeToString(sum[:]),
				Classification: "GREEN", BlobKey: "blob-" + slug, WrappedDEK: []byte("k"), NameSealed: []byte("n")}
			if err := s.Create(ctx, f); err != nil {
				return err
			}
			if _, err := s.RecordScan(ctx, f.ID, sqlstore.ScanRecord{Status: files.StatusAvailable, Result: "clean"}); err != nil {
				return err
			}
			if err := s.CreateLink(ctx, &files.Link{FileID: f.ID, Audience: files.AudienceAnyone,
				ExpiresAt: tx.Now().Add(time.Minute)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var a string
	if err := db.View(ctx, func(tx *sqlstore.Tx) error {
		tn, err := tx.TenantBySlug(ctx, "a")
		a = tn.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tables := []string{"file_policies", "files", "file_links"}
	wantOneRowPerTenant(t, db, dsn, a, tables...)
}
