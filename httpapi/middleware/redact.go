package middleware

import (
	"context"
	"log/slog"
	"strings"
)

// redacted replaces the value of a sensitive attribute. The key is kept so a reader can see that
// something was there.
const redacted = "[redacted]"

// sensitiveKeys are matched case-insensitively anywhere in an attribute key, so "Authorization",
// "refresh_token", "Set-Cookie" and "X-Api-Key" are all caught. Over-redaction of a harmless
// "token_count" is the accepted price.
var sensitiveKeys = [...]string{
	"password", "passwd", "token", "secret", "authorization", "cookie",
	"api_key", "api-key", "apikey", "private_key", "private-key",
}

// NewRedactingHandler wraps h so that any attribute whose key names a secret (password, token,
// secret, authorization, cookie, api key, private key…) is logged as "[redacted]", at any depth
// of groups, whether it was added with Logger.With, WithGroup or on the record. LogValuer values
// are resolved first, so a value cannot hide a secret group behind LogValue.
//
// It is a second line of defence: secret types (tutela.Secret) already log as "[redacted]",
// and code should not log credentials at all. It inspects keys only: a secret inside the
// message text, an error string, or a struct or map logged whole with slog.Any is not caught.
func NewRedactingHandler(h slog.Handler) slog.Handler {
	return &redactingHandler{h: h}
}

type redactingHandler struct {
	h slog.Handler
	// inSecret is set under a group whose name is sensitive (WithGroup("cookies")): everything
	// added below it is redacted.
	inSecret bool
}

func (r *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return r.h.Enabled(ctx, l)
}

func (r *redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.redact(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = r.redact(a)
	}
	return &redactingHandler{h: r.h.WithAttrs(clean), inSecret: r.inSecret}
}

func (r *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{h: r.h.WithGroup(name), inSecret: r.inSecret || sensitive(name)}
}

func (r *redactingHandler) redact(a slog.Attr) slog.Attr {
	if r.inSecret {
		return slog.String(a.Key, redacted)
	}
	return redactAttr(a)
}

func redactAttr(a slog.Attr) slog.Attr {
	if sensitive(a.Key) {
		return slog.String(a.Key, redacted)
	}
	v := a.Value.Resolve()
	if v.Kind() != slog.KindGroup {
		return slog.Attr{Key: a.Key, Value: v}
	}
	group := v.Group()
	clean := make([]slog.Attr, len(group))
	for i, g := range group {
		clean[i] = redactAttr(g)
	}
	return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
}

func sensitive(key string) bool {
	for _, s := range sensitiveKeys {
		if containsFold(key, s) {
			return true
		}
	}
	return false
}

// containsFold reports whether sub (ASCII, lower case) occurs in s ignoring ASCII case, without
// allocating a lowered copy of s for every attribute logged.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
