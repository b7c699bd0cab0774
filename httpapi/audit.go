package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/sqlstore"
)

// requestMeta puts the request's metadata in its context: request ID, client IP and user
// agent now, the principal once authenticated, the body's field names once decoded. The store
// attributes every change's audit event with it.
func requestMeta(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, ua := clientInfo(r)
		m := &tutela.RequestMeta{RequestID: middleware.RequestIDFrom(r.Context()), IP: ip, UserAgent: truncateUA(ua)}
		next.ServeHTTP(w, r.WithContext(tutela.WithRequestMeta(r.Context(), m)))
	})
}

func truncateUA(ua string) string {
	if len(ua) > 512 {
		return ua[:512]
	}
	return ua
}

// denial is an authorization failure (ASVS 5.0 16.3.2). The client sees only a 403, or a 404
// for another tenant, and the change's transaction is rolled back, so the handler notes it in
// the request context and auditRequests records it. It holds names from the code and IDs from
// the path, never values from the request body.
type denial struct {
	action, resource string
	targetTenant     string // the {tenant} path value (ID or slug) as the caller sent it
	targetID         string
	purpose          string // a processing refused for a purpose (consent, issue 14) names it
	reason           string
}

type denialKey struct{}

// noteDenial keeps the request's first denial for auditRequests. Outside /v1 (or without a
// database) there is nowhere to keep it and it is dropped.
func noteDenial(ctx context.Context, d denial) {
	if slot, ok := ctx.Value(denialKey{}).(*atomic.Pointer[denial]); ok {
		slot.CompareAndSwap(nil, &d)
	}
}

// authFailure is a credential refused at the HTTP layer (ASVS 5.0 16.3.1): a bearer token or
// session cookie (auth.token) or a service account's client authentication (auth.client). The
// client sees only the 401, so the handler notes it in the request context and auditRequests
// records it with the call's api.request event, in the same transaction: a flood of bad
// credentials costs one extra row per call at most. It holds IDs of accounts that exist, a
// syntactically valid client ID and fixed codes, never a secret, assertion or token.
type authFailure struct {
	action               string
	tenantID             string // the account's tenant, "" when no account is known
	targetType, targetID string
	details              map[string]any
}

type authFailureKey struct{}

// noteAuthFailure keeps the request's first refused credential for auditRequests. Outside /v1
// (or without a database) there is nowhere to keep it and it is dropped.
func noteAuthFailure(ctx context.Context, f authFailure) {
	if slot, ok := ctx.Value(authFailureKey{}).(*atomic.Pointer[authFailure]); ok {
		slot.CompareAndSwap(nil, &f)
	}
}

// refusalFailure is the authFailure of err as the identity service explains it (reason, and
// the account when known), or reason when it gives none.
func refusalFailure(action, reason string, err error, details map[string]any) authFailure {
	f := authFailure{action: action, details: details}
	if r := identity.RefusalOf(err); r != nil {
		reason, f.tenantID, f.targetType, f.targetID = r.Reason, r.TenantID, r.TargetType, r.TargetID
		if r.SessionID != "" {
			details["session_id"] = r.SessionID
		}
	}
	details["reason"] = reason
	return f
}

// maxTargetRef bounds the caller-chosen tenant reference copied into the audit log.
const maxTargetRef = 128

// deniedEvent is the authz.denied event of d, attributed like the request's api.request event
// and linked to it by the request ID.
func deniedEvent(ctx context.Context, tenant, route string, status int, d *denial) audit.Event {
	ref := strings.ToValidUTF8(d.targetTenant, "\uFFFD")
	if len(ref) > maxTargetRef {
		ref = strings.ToValidUTF8(ref[:maxTargetRef], "")
	}
	details := map[string]any{"route": route, "status": status, "denied_resource": d.resource}
	if d.action != "" {
		details["denied_action"] = d.action
	}
	if ref != "" {
		details["target_tenant"] = ref
	}
	if d.purpose != "" {
		details["purpose"] = d.purpose
	}
	ev := sqlstore.EventFromContext(ctx, "authz.denied", tenant, d.resource, d.targetID, audit.OutcomeDenied, details)
	ev.Reason = d.reason
	return ev
}

// auditRequests records every /v1 call in the audit log after it is answered: actor, tenant,
// method, route pattern, status, latency, request ID, and the names (never the values) of the
// query parameters and body fields. A call refused by authorization adds one authz.denied
// event, and one whose credential was refused one auth.token or auth.client event (at most one
// of each per call, so a caller cannot grow the log faster than by calling).
func (s *Server) auditRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") || s.d.DB == nil {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := middleware.Recorder(w)
		denied := new(atomic.Pointer[denial])
		failed := new(atomic.Pointer[authFailure])
		recorded := new(atomic.Pointer[int])
		r = r.WithContext(context.WithValue(context.WithValue(context.WithValue(r.Context(), denialKey{}, denied),
			authFailureKey{}, failed), recordedKey{}, recorded))
		next.ServeHTTP(rec, r)
		route := "unmatched"
		if p := s.route(r); p != "" {
			route = p
		}
		ctx := r.Context()
		m := tutela.RequestMetaFrom(ctx)
		tenant := ""
		if m != nil && m.Principal != nil {
			tenant = m.Principal.TenantID
		}
		status := rec.Status()
		var events []audit.Event
		if rs := recorded.Load(); rs == nil || *rs != status {
			events = append(events, requestEvent(r, route, status, time.Since(start)))
		}
		// Only a denial the client was answered with: a handler that asked and then went on
		// (status below 400) was not refused.
		// A 403 from a check that noted nothing richer (a platform-only operation, a role or
		// service account the caller may not confer) is recorded too, with its message.
		if d := denied.Load(); d == nil && status == http.StatusForbidden && m != nil && m.Forbidden != "" {
			denied.Store(&denial{resource: route, reason: m.Forbidden})
		}
		if d := denied.Load(); d != nil && status >= 400 {
			events = append(events, deniedEvent(ctx, tenant, route, status, d))
		}
		if rr := residencyRefused(m); rr != nil {
			events = append(events, residencyEvent(ctx, route, status, rr))
		}
		if f := failed.Load(); f != nil && status >= 400 {
			events = append(events, sqlstore.EventFromContext(ctx, f.action, f.tenantID, f.targetType, f.targetID,
				audit.OutcomeFailure, f.details))
		}
		if len(events) == 0 {
			return // the handler recorded the call itself
		}
		// Recorded even if the client has gone: the call happened. The record goes with other
		// calls' in one group-committed transaction (sqlstore.AuditCommit), and the response is
		// complete only once that transaction has committed, as with one of its own.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.d.DBTimeout)
		defer cancel()
		if err := s.d.DB.AuditCommit(actx, events...); err != nil {
			middleware.Logger(ctx).Error("record API call in the audit log", "err", err)
		}
	})
}

// requestEvent is the api.request event of r, answered with status after latency: actor,
// tenant, method, route pattern, status, latency, request ID, and the names (never the values)
// of the query parameters and body fields, bounded (boundKeys) so that any request the server
// accepts can be recorded: the names are the client's to choose.
func requestEvent(r *http.Request, route string, status int, latency time.Duration) audit.Event {
	query := make([]string, 0, len(r.URL.Query()))
	for k := range r.URL.Query() {
		query = append(query, k)
	}
	ctx := r.Context()
	m := tutela.RequestMetaFrom(ctx)
	tenant := ""
	var bodyKeys []string
	if m != nil {
		bodyKeys = m.BodyKeys
		if m.Principal != nil {
			tenant = m.Principal.TenantID
		}
	}
	outcome := audit.OutcomeSuccess
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		outcome = audit.OutcomeDenied
	case status >= 500:
		outcome = audit.OutcomeError
	case status >= 400:
		outcome = audit.OutcomeFailure
	}
	// The method is a token of the client's choosing, limited only by the header size: the
	// standard ones are at most 7 bytes.
	method := r.Method
	if len(method) > maxAuditMethodBytes {
		method = method[:maxAuditMethodBytes]
	}
	details := map[string]any{"method": method, "status": status, "latency_ms": latency.Milliseconds()}
	boundKeys(details, "query_keys", query)
	boundKeys(details, "body_keys", bodyKeys)
	return sqlstore.EventFromContext(ctx, "api.request", tenant, "route", route, outcome, details)
}

// Bounds on the names an api.request event lists. At most maxAuditKeys names of at most
// maxAuditKeyBytes bytes each, in both lists, encode within audit.MaxCanonicalSize even when
// every byte needs a six-byte JSON escape (2 × 64 × 64 × 6 = 48 KiB, plus the event's other
// fields), so the call is recorded however it was made.
const (
	maxAuditKeys        = 64
	maxAuditKeyBytes    = 64
	maxAuditMethodBytes = 32
)

// boundKeys sets details[name] to keys, sorted, each cut to maxAuditKeyBytes bytes (invalid
// UTF-8 replaced, at a character boundary) and at most maxAuditKeys of them, the first in
// sorted order. When it left names out or cut them it says how many: name+"_dropped" and
// name+"_truncated" (absent when none).
func boundKeys(details map[string]any, name string, keys []string) {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	listed := sorted[:min(len(sorted), maxAuditKeys)]
	out := make([]any, len(listed))
	truncated := 0
	for i, k := range listed {
		k = strings.ToValidUTF8(k, "\uFFFD")
		if len(k) > maxAuditKeyBytes {
			k = strings.ToValidUTF8(k[:maxAuditKeyBytes], "")
			truncated++
		}
		out[i] = k
	}
	details[name] = out
	if dropped := len(sorted) - len(listed); dropped > 0 {
		details[name+"_dropped"] = dropped
	}
	if truncated > 0 {
		details[name+"_truncated"] = truncated
	}
}

// recordedKey holds, for auditRequests, the status whose api.request event a handler already
// wrote in its own transaction (the AI gateway, with the inference's end), so it is not written
// twice.
type recordedKey struct{}

// requestRecorded returns r's api.request event for status and notes, for auditRequests, that
// the handler writes it itself.
func (s *Server) requestRecorded(r *http.Request, status int, latency time.Duration) audit.Event {
	if slot, ok := r.Context().Value(recordedKey{}).(*atomic.Pointer[int]); ok {
		slot.Store(&status)
	}
	return requestEvent(r, s.route(r), status, latency)
}

// residencyRefused is the tenant the store refused this request because its data lives in
// another region (tutela.ResidencyRefusal), or nil.
func residencyRefused(m *tutela.RequestMeta) *tutela.ResidencyRefusal {
	if m == nil {
		return nil
	}
	return m.Residency
}

// residencyEvent is the residency.refused event of a request the store refused a tenant of
// another data region: the tenant's ID, its region and this node's, linked to the api.request
// event by the request ID. It is the only event the request records about that tenant (the
// refused transaction rolled back, and a wrong_region error is not a refused credential), and it
// is the platform's, not the tenant's: an event of the tenant would be sealed under the tenant's
// keyset, whose KEK is its own region's, so this node neither can nor should use it.
func residencyEvent(ctx context.Context, route string, status int, rr *tutela.ResidencyRefusal) audit.Event {
	ev := sqlstore.EventFromContext(ctx, "residency.refused", "", "tenant", rr.TenantID, audit.OutcomeDenied,
		map[string]any{"route": route, "status": status, "tenant_region": rr.TenantRegion, "node_region": rr.NodeRegion})
	ev.Reason = "the tenant's data region is not this node's"
	return ev
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// auditScope checks that p may read the audit log and returns the tenant they see ("" = all,
// for the platform super-admin) and p's field masks.
func (s *Server) auditScope(r *http.Request, p *tutela.Principal) (string, map[string]authz.Mask, error) {
	var masks map[string]authz.Mask
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		pol, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResAudit})
		if pol != nil {
			masks = pol.Masks
		}
		return err
	})
	if err != nil {
		return "", nil, err
	}
	if isPlatform(p) {
		return "", masks, nil
	}
	return p.TenantID, masks, nil
}

// auditTenantInRegion refuses the platform super-admin a tenant of another data region than
// the node's (421 wrong_region, audited as residency.refused): its events are read at its own
// region (docs/residency.md). An unknown tenant is no refusal: it has no events to show.
func (s *Server) auditTenantInRegion(r *http.Request, tenantID string) error {
	if tenantID == "" {
		return nil
	}
	return s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		_, err := tx.Tenant(r.Context(), tenantID)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil
		}
		return err
	})
}

// AuditEventView is an audit event as GET /v1/audit/events shows it (exported for clients and
// tests). audit.Event has no JSON tags of its own (the log hashes its canonical encoding, not
// this one); the explicit view fixes the response's keys and lets writeMasked find source_ip
// and user_agent.
type AuditEventView struct {
	Index      int64          `json:"index"`
	ID         string         `json:"id"`
	Time       time.Time      `json:"time"`
	TenantID   string         `json:"tenant_id"`
	ActorType  string         `json:"actor_type"`
	ActorID    string         `json:"actor_id"`
	SourceIP   string         `json:"source_ip"`
	UserAgent  string         `json:"user_agent"`
	Action     string         `json:"action"`
	TargetType string         `json:"target_type"`
	TargetID   string         `json:"target_id"`
	Outcome    string         `json:"outcome"`
	RequestID  string         `json:"request_id"`
	Reason     string         `json:"reason"`
	Details    map[string]any `json:"details"`
}

func newAuditEventView(rec sqlstore.AuditRecord) AuditEventView {
	e := rec.Event
	if e.Details == nil {
		e.Details = map[string]any{} // as the canonical encoding has it
	}
	return AuditEventView{Index: rec.Index, ID: e.ID, Time: e.Time, TenantID: e.TenantID, ActorType: e.ActorType,
		ActorID: e.ActorID, SourceIP: e.SourceIP, UserAgent: e.UserAgent, Action: e.Action, TargetType: e.TargetType,
		TargetID: e.TargetID, Outcome: e.Outcome, RequestID: e.RequestID, Reason: e.Reason, Details: e.Details}
}

// maxAuditFilterBytes bounds each free-text filter of GET /v1/audit/events (actor, action,
// target_type, target_id, tenant), all of which the audit.read event records: five of them
// encode within audit.MaxCanonicalSize even when every byte needs a six-byte JSON escape. A
// longer one is refused (400) rather than recorded cut short.
const maxAuditFilterBytes = 1024

// resAuditEvents names the audit event fields in FieldClasses ("audit_events.source_ip").
const resAuditEvents = "audit_events"

func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	scope, masks, err := s.auditScope(r, p)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	// The filter goes into the audit.read event; a filter no event field could match is
	// refused before the read, so that record can always be written.
	for _, name := range []string{"actor", "action", "target_type", "target_id", "tenant"} {
		if len(q.Get(name)) > maxAuditFilterBytes {
			middleware.WriteError(w, r, tutela.FieldErrorf(name, "%s must be at most %d bytes", name, maxAuditFilterBytes))
			return
		}
	}
	f := sqlstore.AuditFilter{TenantID: scope, ActorID: q.Get("actor"), Action: q.Get("action"),
		TargetType: q.Get("target_type"), TargetID: q.Get("target_id"), Cursor: q.Get("cursor")}
	if scope == "" {
		f.TenantID = q.Get("tenant") // the super-admin may narrow to one tenant
		if err := s.auditTenantInRegion(r, f.TenantID); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				middleware.WriteError(w, r, tutela.FieldErrorf(name, "%s must be an RFC 3339 time", name))
				return
			}
			*dst = t.UTC()
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			middleware.WriteError(w, r, tutela.FieldErrorf("limit", "limit must be 1-1000"))
			return
		}
		f.Limit = n
	}
	recs, next, err := s.d.DB.AuditEvents(r.Context(), f)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	// Reading the audit log is itself an audited act, with the filter used; the events are
	// shown only once that record has committed.
	err = s.d.DB.AuditCommit(r.Context(), sqlstore.EventFromContext(r.Context(), "audit.read", p.TenantID, "audit_log", "", "",
		map[string]any{"tenant": f.TenantID, "actor": f.ActorID, "action": f.Action, "target_type": f.TargetType,
			"target_id": f.TargetID, "returned": len(recs)}))
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	out := make([]AuditEventView, 0, len(recs))
	for _, rec := range recs {
		out = append(out, newAuditEventView(rec))
	}
	// IPs and user agents are YELLOW here as in sessions and security events (ASVS 5.0 8.2.3).
	s.writeMasked(w, r, http.StatusOK, map[string]any{"events": out, "next_cursor": next}, f.TenantID, resAuditEvents, masks)
}

func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := s.d.DB.AuditCheckpoint(r.Context())
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(cp)
}

func (s *Server) auditPublicKey(w http.ResponseWriter, r *http.Request) {
	if s.d.AuditVerifierKey == "" {
		middleware.WriteError(w, r, tutela.Errorf(tutela.ENOTFOUND, "no audit signing key configured"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(s.d.AuditVerifierKey + "\n"))
}

func int64Param(r *http.Request, name string) (int64, error) {
	v, err := strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
	if err != nil || v < 0 {
		return 0, tutela.FieldErrorf(name, "%s must be a non-negative integer", name)
	}
	return v, nil
}

func hashesB64(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// auditInclusion proves that the event at index is in the tree of the given size. An auditor
// of one tenant can only ask about their tenant's events.
func (s *Server) auditInclusion(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	scope, _, err := s.auditScope(r, p)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	index, err := int64Param(r, "index")
	if err == nil {
		var size int64
		if size, err = int64Param(r, "size"); err == nil {
			s.writeInclusion(w, r, scope, index, size)
			return
		}
	}
	middleware.WriteError(w, r, err)
}

func (s *Server) writeInclusion(w http.ResponseWriter, r *http.Request, scope string, index, size int64) {
	if index >= size {
		middleware.WriteError(w, r, tutela.FieldErrorf("index", "index must be below size"))
		return
	}
	entries, err := s.d.DB.AuditEntries(r.Context(), index, index+1)
	if err != nil || len(entries) != 1 {
		middleware.WriteError(w, r, tutela.Errorf(tutela.ENOTFOUND, "no event at that index"))
		return
	}
	ev, err := sqlstore.DecodeAuditEvent(entries[0].Canonical)
	if err != nil || (scope != "" && ev.TenantID != scope) {
		middleware.WriteError(w, r, tutela.Errorf(tutela.ENOTFOUND, "no event at that index"))
		return
	}
	if scope == "" {
		if err := s.auditTenantInRegion(r, ev.TenantID); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	proof, err := s.d.DB.AuditInclusionProof(r.Context(), index, size)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"index": index, "size": size,
		"leaf_hash": base64.StdEncoding.EncodeToString(entries[0].LeafHash[:]), "proof": hashesB64(proof)})
}

// auditConsistency proves that the tree of size `from` is a prefix of the tree of size `to`.
// It reveals only interior hashes, so anyone holding two checkpoints may ask.
func (s *Server) auditConsistency(w http.ResponseWriter, r *http.Request) {
	from, err := int64Param(r, "from")
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	to, err := int64Param(r, "to")
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if from > to {
		middleware.WriteError(w, r, tutela.FieldErrorf("from", "from must not exceed to"))
		return
	}
	proof, err := s.d.DB.AuditConsistencyProof(r.Context(), from, to)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "proof": hashesB64(proof)})
}
