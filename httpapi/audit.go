package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/httpapi/middleware"
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

// auditRequests records every /v1 call in the audit log after it is answered: actor, tenant,
// method, route pattern, status, latency, request ID, and the names (never the values) of the
// query parameters and body fields.
func (s *Server) auditRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") || s.d.DB == nil {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := middleware.Recorder(w)
		next.ServeHTTP(rec, r)
		route := "unmatched"
		if _, p := s.mux.Handler(r); p != "" && p != "/" {
			route = p
		}
		query := make([]string, 0, len(r.URL.Query()))
		for k := range r.URL.Query() {
			query = append(query, k)
		}
		sort.Strings(query)
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
		status := rec.Status()
		outcome := audit.OutcomeSuccess
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			outcome = audit.OutcomeDenied
		case status >= 500:
			outcome = audit.OutcomeError
		case status >= 400:
			outcome = audit.OutcomeFailure
		}
		ev := sqlstore.EventFromContext(ctx, "api.request", tenant, "route", route, outcome, map[string]any{
			"method": r.Method, "status": status, "latency_ms": time.Since(start).Milliseconds(),
			"query_keys": toAny(query), "body_keys": toAny(bodyKeys),
		})
		// Recorded even if the client has gone: the call happened.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.d.DB.Update(actx, func(tx *sqlstore.Tx) error { return tx.Audit(actx, ev) }); err != nil {
			middleware.Logger(ctx).Error("record API call in the audit log", "err", err)
		}
	})
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// auditScope checks that p may read the audit log and returns the tenant they see ("" = all,
// for the platform super-admin).
func (s *Server) auditScope(r *http.Request, p *tutela.Principal) (string, error) {
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		_, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResAudit})
		return err
	})
	if err != nil {
		return "", err
	}
	if isPlatform(p) {
		return "", nil
	}
	return p.TenantID, nil
}

type auditEventView struct {
	Index int64 `json:"index"`
	audit.Event
}

func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	scope, err := s.auditScope(r, p)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := sqlstore.AuditFilter{TenantID: scope, ActorID: q.Get("actor"), Action: q.Get("action"),
		TargetType: q.Get("target_type"), TargetID: q.Get("target_id"), Cursor: q.Get("cursor")}
	if scope == "" {
		f.TenantID = q.Get("tenant") // the super-admin may narrow to one tenant
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
	// Reading the audit log is itself an audited act, with the filter used.
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		return tx.Record(r.Context(), "audit.read", p.TenantID, "audit_log", "", "", map[string]any{
			"tenant": f.TenantID, "actor": f.ActorID, "action": f.Action, "target_type": f.TargetType,
			"target_id": f.TargetID, "returned": len(recs)})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	out := make([]auditEventView, 0, len(recs))
	for _, rec := range recs {
		out = append(out, auditEventView{Index: rec.Index, Event: rec.Event})
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"events": out, "next_cursor": next})
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
	scope, err := s.auditScope(r, p)
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
	if scope != "" {
		ev, err := sqlstore.DecodeAuditEvent(entries[0].Canonical)
		if err != nil || ev.TenantID != scope {
			middleware.WriteError(w, r, tutela.Errorf(tutela.ENOTFOUND, "no event at that index"))
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
