package httpapi

import (
	"encoding/json"
	"net/http"

	"tutela/authz"
	"tutela/httpapi/middleware"
)

// writeMasked writes v as JSON after masking its classified fields for the principal: the one
// path every response with classified fields takes. v is an object of resource, or an envelope
// whose list (users, sessions, events) holds such objects. tenantID scopes hashed masks; "" (a
// platform-wide listing) scopes each object by its own tenant_id.
func (s *Server) writeMasked(w http.ResponseWriter, r *http.Request, status int, v any, tenantID, resource string, masks map[string]authz.Mask) {
	fields := map[string]authz.Mask{}
	prefix := resource + "."
	for k, m := range masks {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			fields[k[len(prefix):]] = m
		}
	}
	if len(fields) == 0 {
		middleware.WriteJSON(w, status, v)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if obj, ok := doc.(map[string]any); ok {
		list := false
		for _, key := range []string{"users", "sessions", "events"} {
			if items, ok := obj[key].([]any); ok {
				list = true
				for _, it := range items {
					if o, ok := it.(map[string]any); ok {
						s.masker.ApplyScoped(o, fields, maskScope(tenantID, o), resource)
					}
				}
			}
		}
		if !list {
			s.masker.ApplyScoped(obj, fields, maskScope(tenantID, obj), resource)
		}
	}
	middleware.WriteJSON(w, status, doc)
}

// maskScope is the tenant a masked object belongs to: tenantID, or the object's own tenant_id
// when the listing spans tenants.
func maskScope(tenantID string, obj map[string]any) string {
	if tenantID != "" {
		return tenantID
	}
	t, _ := obj["tenant_id"].(string)
	return t
}
