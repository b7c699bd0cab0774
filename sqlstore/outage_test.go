package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"tutela"
)

// outage is the one place driver errors become "the database is unavailable" (503): a dead,
// slow or overloaded database. Input errors, constraint violations and bugs must stay what they
// are, or a client would retry what can never succeed.
func TestOutage_SortsDriverErrors(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"request deadline", fmt.Errorf("begin: %w", context.DeadlineExceeded), true},
		{"connection refused", refused, true},
		{"connection reset mid-query", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), true},
		{"bad connection", driver.ErrBadConn, true},
		{"connection done", sql.ErrConnDone, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, true},
		{"wrapped in an internal error", tutela.Wrap(refused, "load user"), true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"no rows", sql.ErrNoRows, false},
		{"client went away", context.Canceled, false},
		{"plain bug", errors.New("nil map"), false},
	}
	for _, tt := range tests {
		if got := outage(tt.err); got != tt.want {
			t.Errorf("%s: outage = %v, want %v", tt.name, got, tt.want)
		}
		err := unavailable(tt.err)
		if tt.want != (tutela.ErrorCode(err) == tutela.EUNAVAILABLE) {
			t.Errorf("%s: unavailable() code %q", tt.name, tutela.ErrorCode(err))
		}
		if tt.want && (strings.Contains(tutela.ErrorMessage(err), "refused") || !errors.Is(err, tt.err)) {
			t.Errorf("%s: message %q leaks the cause, or the cause is lost", tt.name, tutela.ErrorMessage(err))
		}
	}
	// A code a caller already chose is kept.
	nf := &tutela.Error{Code: tutela.ENOTFOUND, Message: "not found", Err: context.DeadlineExceeded}
	if got := unavailable(nf); got != nf {
		t.Errorf("unavailable replaced not_found: %v", got)
	}
}

// A PostgreSQL URL without connect_timeout gets the store's; one with its own keeps it.
func TestWithConnectTimeout(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u@db:5432/t":                      "connect_timeout=3",
		"postgres://u@db/t?sslmode=verify-full":       "connect_timeout=3",
		"postgres://u@db/t?connect_timeout=9":         "connect_timeout=9",
		"postgresql://u:p%40ss@db/t?application_name": "connect_timeout=3",
	} {
		got := withConnectTimeout(in, 2500*time.Millisecond)
		if !strings.Contains(got, want) || strings.Count(got, "connect_timeout") != 1 {
			t.Errorf("withConnectTimeout(%q) = %q, want %s", in, got, want)
		}
	}
}
