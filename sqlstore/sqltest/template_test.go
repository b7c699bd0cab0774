package sqltest

import (
	"context"
	"database/sql"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
)

// TestSweepTemplates: building a template drops other migration sets' templates only when they
// are old (or of unknown age) and unused, so two checkouts testing at once keep each other's.
func TestSweepTemplates(t *testing.T) {
	RequirePostgres(t)
	ctx := context.Background()
	admin, err := sql.Open("pgx", AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prefix := "tutela_sweeptest_" + strings.ReplaceAll(tutela.NewID(), "-", "")[:12] + "_"
	now := time.Now()
	dbs := map[string]string{ // name suffix -> comment
		"young":   now.Add(-time.Hour).UTC().Format(templateBuilt),
		"old":     now.Add(-templateKeep - time.Minute).UTC().Format(templateBuilt),
		"unknown": "",
		"mine":    "", // the set being built, found half-built
		"inuse":   now.Add(-templateKeep - time.Minute).UTC().Format(templateBuilt),
	}
	for n, comment := range dbs {
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+prefix+n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + prefix + n + " WITH (FORCE)") })
		if comment != "" {
			if _, err := conn.ExecContext(ctx, "COMMENT ON DATABASE "+prefix+n+" IS '"+comment+"'"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A session using a template (another run copying it) keeps it.
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + prefix + "inuse"
	user, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	if err := user.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sweepTemplates(ctx, conn, prefix, prefix+"mine", now); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname", prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var left []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		left = append(left, strings.TrimPrefix(n, prefix))
	}
	if want := []string{"inuse", "young"}; !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}
