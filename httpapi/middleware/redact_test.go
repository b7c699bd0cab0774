package middleware_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"tutela"
	"tutela/httpapi/middleware"
)

// credentials is a LogValuer that expands to a group holding a secret.
type credentials struct{ user, pass string }

func (c credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", c.user), slog.String("password", c.pass))
}

// tokenValuer resolves to a plain string; the key alone must get it redacted.
type tokenValuer string

func (t tokenValuer) LogValue() slog.Value { return slog.StringValue(string(t)) }

func TestRedactingHandler_HidesSecrets(t *testing.T) {
	t.Parallel()
	buf := &logBuffer{}
	logger := slog.New(middleware.NewRedactingHandler(slog.NewJSONHandler(buf, nil)))

	logger.Info("login",
		"user", "ana@example.org",
		"password", "s3cret-pass",
		"Authorization", "Bearer s3cret-bearer",
		"Cookie", "session=s3cret-cookie",
		"Set-Cookie", "session=s3cret-setcookie",
		"refresh_token", "s3cret-refresh",
		"X-Api-Key", "s3cret-apikey",
		slog.Group("req",
			"method", "POST",
			slog.Group("headers", "authorization", "Basic s3cret-basic", "accept", "application/json"),
			"client_secret", "s3cret-client",
		),
		"creds", credentials{user: "ana", pass: "s3cret-valuer"},
		"access_token", tokenValuer("s3cret-tokvaluer"),
	)
	logger.With("session_token", "s3cret-with").Info("with attrs")
	logger.WithGroup("cookies").Info("group named for a secret", "sid", "s3cret-ingroup")
	logger.WithGroup("req").With("PRIVATE_KEY", "s3cret-pem").Info("nested with", "passwd", "s3cret-passwd")
	logger.Error("failed", "err", errors.New("boom"), "secret", tutela.NewSecret("s3cret-type"))

	out := buf.String()
	if strings.Contains(out, "s3cret") {
		t.Errorf("a secret reached the log:\n%s", out)
	}
	for _, keep := range []string{"ana@example.org", `"method":"POST"`, `"accept":"application/json"`, `"user":"ana"`, `"err":"boom"`, "[redacted]"} {
		if !strings.Contains(out, keep) {
			t.Errorf("log lost %s:\n%s", keep, out)
		}
	}
	if n := strings.Count(out, `"password":"[redacted]"`); n != 2 {
		t.Errorf(`"password":"[redacted]" appears %d times, want 2 (top level and inside the LogValuer)`, n)
	}
}

func TestRedactingHandler_RespectsLevel(t *testing.T) {
	t.Parallel()
	h := middleware.NewRedactingHandler(slog.NewJSONHandler(&logBuffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled does not follow the wrapped handler")
	}
}

func TestRedactingHandler_KeyMatching(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key    string
		redact bool
	}{
		{"password", true}, {"new_password", true}, {"PASSWORD", true}, {"passwd", true},
		{"token", true}, {"id_token", true}, {"secret", true}, {"totp_secret", true},
		{"authorization", true}, {"Proxy-Authorization", true}, {"cookie", true}, {"set-cookie", true},
		{"api_key", true}, {"apikey", true}, {"X-API-Key", true}, {"private_key", true},
		{"user", false}, {"email", false}, {"status", false}, {"request_id", false}, {"route", false},
	}
	for _, tt := range tests {
		buf := &logBuffer{}
		slog.New(middleware.NewRedactingHandler(slog.NewJSONHandler(buf, nil))).Info("m", tt.key, "value-x")
		if got := !strings.Contains(buf.String(), "value-x"); got != tt.redact {
			t.Errorf("key %q: redacted = %v, want %v", tt.key, got, tt.redact)
		}
	}
}
