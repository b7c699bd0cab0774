package tutela

import "context"

// RequestMeta describes who is asking and from where. The HTTP layer puts one in the context
// of every request and fills Principal once the caller is authenticated; the store reads it to
// attribute the audit event of each change it writes. Code without a request (CLI, background
// work) has none, and its changes are attributed to the system.
type RequestMeta struct {
	RequestID string
	IP        string
	UserAgent string
	Principal *Principal
	// BodyKeys are the top-level field names of the JSON body, for the request's audit record
	// (names only: values may be secrets).
	BodyKeys []string
	// Forbidden is the message of the 403 the request was answered with, if any, for the
	// request's authz.denied audit record.
	Forbidden string
}

type requestMetaKey struct{}

// WithRequestMeta returns ctx carrying m. The pointer is shared: later layers may fill fields.
func WithRequestMeta(ctx context.Context, m *RequestMeta) context.Context {
	return context.WithValue(ctx, requestMetaKey{}, m)
}

// RequestMetaFrom returns the request's metadata, or nil outside a request.
func RequestMetaFrom(ctx context.Context) *RequestMeta {
	m, _ := ctx.Value(requestMetaKey{}).(*RequestMeta)
	return m
}
