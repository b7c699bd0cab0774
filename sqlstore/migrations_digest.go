package sqlstore

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"path"
)

// MigrationsDigest identifies the dialect's migration set: the SHA-256 over every migration
// file's name and content, in name order. Equal digests mean Migrate builds the same schema, so
// a database migrated once can stand in for migrating anew (sqltest clones a migrated template
// database for each PostgreSQL test instead of migrating each one).
func MigrationsDigest(d Dialect) (string, error) {
	dir := migrationsDir(d)
	entries, err := fs.ReadDir(migrationsFS, dir) // sorted by name
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, e := range entries {
		b, err := fs.ReadFile(migrationsFS, path.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(b)
		h.Write([]byte(e.Name()))
		h.Write([]byte{0})
		h.Write(sum[:])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// migrationsDir is the dialect's directory in migrationsFS.
func migrationsDir(d Dialect) string {
	if d == Postgres {
		return "migrations/postgres"
	}
	return "migrations/sqlite"
}
