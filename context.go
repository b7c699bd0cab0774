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
	// AuditPerson is the user an anonymous request proved to be: set by the identity service
	// once a sign-in (correct password), MFA completion, refresh or password reset/setup has
	// identified its user. Every audit event of the request with no acting user (its
	// api.request event included) seals its source IP and user agent under that user's person
	// key, so erasing the user shreds them. A failed attempt sets nothing: it carries the
	// attacker's address, which stays under the tenant's keyset as evidence (docs/audit.md).
	AuditPerson AuditPerson
	// Residency is the first tenant the store refused to this request because its data lives in
	// another region than this node's, for the request's residency.refused audit record.
	Residency *ResidencyRefusal
}

// AuditPerson names a user by tenant and ID.
type AuditPerson struct{ TenantID, UserID string }

// SetAuditPerson records, in the request metadata of ctx (if any), the user the request has
// identified with a successful outcome (see RequestMeta.AuditPerson).
func SetAuditPerson(ctx context.Context, tenantID, userID string) {
	if m := RequestMetaFrom(ctx); m != nil {
		m.AuditPerson = AuditPerson{TenantID: tenantID, UserID: userID}
	}
}

// WithoutAuditPerson returns ctx with a copy of its request metadata naming no audit person:
// for an event recorded while a second factor is being checked that reports an attack (a
// cloned passkey), whose address must stay as evidence under the tenant's keyset.
func WithoutAuditPerson(ctx context.Context) context.Context {
	m := RequestMetaFrom(ctx)
	if m == nil || m.AuditPerson.UserID == "" {
		return ctx
	}
	c := *m
	c.AuditPerson = AuditPerson{}
	return WithRequestMeta(ctx, &c)
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
