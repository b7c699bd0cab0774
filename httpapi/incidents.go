package httpapi

import (
	"net/http"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/incidents"
	"tutela/sqlstore"
)

func (s *Server) incidentRoutes() {
	const base = "/v1/incidents"
	s.handle("POST", base, false, s.authed(false, s.openIncident))
	s.handle("GET", base, false, s.authed(false, s.listIncidents))
	s.handle("GET", base+"/{id}", false, s.authed(false, s.getIncident))
	s.handle("PATCH", base+"/{id}", false, s.authed(false, s.patchIncident))
	s.handle("POST", base+"/{id}/confirm", false, s.authed(false, s.confirmIncident))
	s.handle("POST", base+"/{id}/timeline", false, s.authed(false, s.addIncidentNote))
	s.handle("PUT", base+"/{id}/tenants/{tenant_id}", false, s.authed(false, s.setIncidentTenant))
	s.handle("POST", base+"/{id}/notifications", false, s.authed(false, s.recordIncidentNotification))
	s.handle("GET", base+"/{id}/notification", false, s.authed(false, s.incidentNotification))
	const tbase = "/v1/tenants/{tenant}/incidents"
	s.handle("GET", tbase, false, s.authed(false, s.listTenantIncidents))
	s.handle("GET", tbase+"/{id}", false, s.authed(false, s.getTenantIncident))
	s.handle("GET", tbase+"/{id}/notification", false, s.authed(false, s.tenantIncidentNotification))
}

// incidentView is an incident as the API answers it: the record and its breach clocks now.
type incidentView struct {
	Incident *incidents.Incident `json:"incident"`
	Clocks   []incidents.Clock   `json:"clocks"`
}

func (s *Server) incidentView(inc *incidents.Incident) incidentView {
	return incidentView{Incident: inc, Clocks: inc.Clocks(s.d.Clock())}
}

// authorizePlatformIncidents lets only the platform act on /v1/incidents: incidents belong to
// the deployment, and this path shows every tenant's part of them. A tenant's readers use
// /v1/tenants/{tenant}/incidents.
func (s *Server) authorizePlatformIncidents(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, action authz.Action) error {
	if !isPlatform(p) {
		noteDenial(r.Context(), denial{action: string(action), resource: authz.ResIncidents,
			reason: "the deployment's incidents are the platform's; a tenant reads its own under /v1/tenants/{tenant}/incidents"})
		return tutela.Errorf(tutela.EFORBIDDEN, "only the platform manages incidents; read your tenant's at /v1/tenants/{tenant}/incidents")
	}
	_, _, err := s.decide(r, tx, p, authz.Request{Action: action, Resource: authz.ResIncidents})
	return err
}

type incidentOpenRequest struct {
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Severity    string    `json:"severity"`
	DetectedAt  time.Time `json:"detected_at"`
	Frameworks  []string  `json:"frameworks"`
	Owners      []string  `json:"owners"`
	// EventIDs are security-event or audit-event IDs; each is looked up in the security events
	// first, then in the audit log.
	EventIDs []string `json:"event_ids"`
}

// openIncident opens an incident (incidents CREATE, the platform), its timeline filled from the
// events named. The opener owns it unless owners are given.
func (s *Server) openIncident(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body incidentOpenRequest
	if err := middleware.DecodeJSON(w, r, &body); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	req := incidents.OpenRequest{Title: body.Title, Description: body.Description, Severity: incidents.Severity(body.Severity),
		DetectedAt: body.DetectedAt, Frameworks: body.Frameworks, Owners: body.Owners, Actor: p.UserID}
	for _, id := range body.EventIDs {
		req.Events = append(req.Events, incidents.EventRef{ID: id})
	}
	var inc *incidents.Incident
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		if err := s.authorizePlatformIncidents(r, tx, p, authz.Create); err != nil {
			return err
		}
		var err error
		inc, err = incidents.Open(r.Context(), tx, req)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/incidents/"+inc.ID)
	middleware.WriteJSON(w, http.StatusCreated, s.incidentView(inc))
}

func incidentFilter(r *http.Request) (sqlstore.IncidentFilter, error) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return sqlstore.IncidentFilter{}, err
	}
	f := sqlstore.IncidentFilter{Cursor: cursor, Limit: limit, Status: incidents.Status(r.URL.Query().Get("status"))}
	switch r.URL.Query().Get("breach") {
	case "", "false":
	case "true":
		f.Breaches = true
	default:
		return f, tutela.FieldErrorf("breach", "breach must be true or false")
	}
	return f, nil
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.writeIncidentList(w, r, p, false)
}

func (s *Server) listTenantIncidents(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.writeIncidentList(w, r, p, true)
}

func (s *Server) writeIncidentList(w http.ResponseWriter, r *http.Request, p *tutela.Principal, tenantView bool) {
	f, err := incidentFilter(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var list []incidents.Incident
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		tenantID := ""
		if tenantView {
			t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResIncidents)
			if err != nil {
				return err
			}
			tenantID = t.ID
		} else if err := s.authorizePlatformIncidents(r, tx, p, authz.Read); err != nil {
			return err
		}
		var err error
		list, _, err = tx.Incidents().List(r.Context(), tenantID, f)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	writePage(w, "incidents", list, f.Limit, func(i incidents.Incident) string { return i.ID })
}

// loadIncident reads the incident for the caller: the whole of it on the platform path; on a
// tenant's path, after (incidents, READ) there, the tenant's view of an incident affecting it
// (another tenant's is not found), with its subjects' IDs only for a caller who may read
// subjects.
func (s *Server) loadIncident(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, tenantView bool) (*incidents.Incident, error) {
	if !tenantView {
		if err := s.authorizePlatformIncidents(r, tx, p, authz.Read); err != nil {
			return nil, err
		}
		return tx.Incidents().Get(r.Context(), r.PathValue("id"))
	}
	t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResIncidents)
	if err != nil {
		return nil, err
	}
	withSubjects := pol.Holds(authz.Permission{Resource: authz.ResSubjects, Action: authz.Read, MaxClass: authz.Green}, s.d.Clock())
	return tx.Incidents().ForTenant(r.Context(), t.ID, r.PathValue("id"), withSubjects)
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.writeIncident(w, r, p, false)
}

func (s *Server) getTenantIncident(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.writeIncident(w, r, p, true)
}

func (s *Server) writeIncident(w http.ResponseWriter, r *http.Request, p *tutela.Principal, tenantView bool) {
	var inc *incidents.Incident
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
		inc, err = s.loadIncident(r, tx, p, tenantView)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, s.incidentView(inc))
}

// changeIncident runs one change of the platform's (incidents UPDATE) and answers the incident.
func (s *Server) changeIncident(w http.ResponseWriter, r *http.Request, p *tutela.Principal, status int,
	fn func(sqlstore.Incidents, string) (*incidents.Incident, error)) {
	s.changeIncidentTx(w, r, p, status, func(tx *sqlstore.Tx, id string) (*incidents.Incident, error) {
		return fn(tx.Incidents(), id)
	})
}

// changeIncidentTx is changeIncident for a change that reads more of the store first.
func (s *Server) changeIncidentTx(w http.ResponseWriter, r *http.Request, p *tutela.Principal, status int,
	fn func(*sqlstore.Tx, string) (*incidents.Incident, error)) {
	var inc *incidents.Incident
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		if err := s.authorizePlatformIncidents(r, tx, p, authz.Update); err != nil {
			return err
		}
		var err error
		inc, err = fn(tx, r.PathValue("id"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, status, s.incidentView(inc))
}

type incidentPatch struct {
	Title             *string   `json:"title"`
	Description       *string   `json:"description"`
	Severity          *string   `json:"severity"`
	Status            *string   `json:"status"`
	Frameworks        *[]string `json:"frameworks"`
	Owners            *[]string `json:"owners"`
	DataCategories    *[]string `json:"data_categories"`
	SubjectCategories *[]string `json:"subject_categories"`
	Contact           *string   `json:"contact"`
	Consequences      *string   `json:"consequences"`
	Measures          *string   `json:"measures"`
}

func optList(p *[]string) []string {
	if p == nil {
		return nil
	}
	if *p == nil {
		return []string{}
	}
	return *p
}

func (s *Server) patchIncident(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body incidentPatch
	if err := middleware.DecodeJSON(w, r, &body); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	c := sqlstore.IncidentChange{Title: body.Title, Description: body.Description, Contact: body.Contact,
		Consequences: body.Consequences, Measures: body.Measures, Frameworks: optList(body.Frameworks), Owners: optList(body.Owners),
		DataCategories: optList(body.DataCategories), SubjectCategories: optList(body.SubjectCategories)}
	if body.Severity != nil {
		v := incidents.Severity(*body.Severity)
		c.Severity = &v
	}
	if body.Status != nil {
		v := incidents.Status(*body.Status)
		c.Status = &v
	}
	s.changeIncident(w, r, p, http.StatusOK, func(st sqlstore.Incidents, id string) (*incidents.Incident, error) {
		return st.Update(r.Context(), id, c)
	})
}

// confirmIncident marks the incident a personal-data breach: the breach clock starts at
// aware_at (default now), when the controller became aware of it. The body is optional: with
// none, aware_at is now.
func (s *Server) confirmIncident(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body struct {
		AwareAt time.Time `json:"aware_at"`
	}
	if r.ContentLength != 0 {
		if err := middleware.DecodeJSON(w, r, &body); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	s.changeIncident(w, r, p, http.StatusOK, func(st sqlstore.Incidents, id string) (*incidents.Incident, error) {
		return st.ConfirmBreach(r.Context(), id, body.AwareAt)
	})
}

func (s *Server) addIncidentNote(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body struct {
		Text     string    `json:"text"`
		TenantID string    `json:"tenant_id"`
		At       time.Time `json:"at"`
	}
	if err := middleware.DecodeJSON(w, r, &body); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.changeIncident(w, r, p, http.StatusCreated, func(st sqlstore.Incidents, id string) (*incidents.Incident, error) {
		return st.AddNote(r.Context(), id, body.Text, body.TenantID, body.At)
	})
}

// setIncidentTenant records that the incident affects the tenant named by ID or slug (any
// tenant: the platform names it; not {tenant}, which marks the tenant-scoped routes), with
// approximate counts and the IDs of subjects concerned.
func (s *Server) setIncidentTenant(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body struct {
		SubjectsApprox *int     `json:"subjects_approx"`
		RecordsApprox  *int     `json:"records_approx"`
		SubjectIDs     []string `json:"subject_ids"`
	}
	if err := middleware.DecodeJSON(w, r, &body); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.changeIncidentTx(w, r, p, http.StatusOK, func(tx *sqlstore.Tx, id string) (*incidents.Incident, error) {
		tenantID := r.PathValue("tenant_id")
		if !tutela.ValidID(tenantID) {
			t, err := tx.TenantBySlug(r.Context(), tenantID)
			if tutela.ErrorCode(err) == tutela.ENOTFOUND {
				return nil, tutela.FieldErrorf("tenant_id", "no such tenant")
			} else if err != nil {
				return nil, err
			}
			tenantID = t.ID
		}
		return tx.Incidents().SetAffected(r.Context(), id, sqlstore.AffectedChange{TenantID: tenantID,
			SubjectsApprox: body.SubjectsApprox, RecordsApprox: body.RecordsApprox, SubjectIDs: body.SubjectIDs})
	})
}

func (s *Server) recordIncidentNotification(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body struct {
		Recipient        string    `json:"recipient"`
		Framework        string    `json:"framework"`
		TenantID         string    `json:"tenant_id"`
		To               string    `json:"to"`
		MadeAt           time.Time `json:"made_at"`
		Reference        string    `json:"reference"`
		SubjectsNotified int       `json:"subjects_notified"`
	}
	if err := middleware.DecodeJSON(w, r, &body); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	n := &incidents.Notification{Recipient: incidents.Recipient(body.Recipient), Framework: body.Framework, TenantID: body.TenantID,
		To: body.To, MadeAt: body.MadeAt, Reference: body.Reference, SubjectsNotified: body.SubjectsNotified}
	s.changeIncident(w, r, p, http.StatusCreated, func(st sqlstore.Incidents, id string) (*incidents.Incident, error) {
		return st.RecordNotification(r.Context(), id, n)
	})
}

func (s *Server) incidentNotification(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.writeIncidentReport(w, r, p, false)
}

func (s *Server) tenantIncidentNotification(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.writeIncidentReport(w, r, p, true)
}

// writeIncidentReport answers the Art. 33(3) facts of the incident as JSON, or as a Markdown
// document (served as text/plain, which any client shows) with ?format=markdown or an Accept of
// text/markdown or text/plain. On a tenant's path the counts are
// the tenant's own.
func (s *Server) writeIncidentReport(w http.ResponseWriter, r *http.Request, p *tutela.Principal, tenantView bool) {
	format := r.URL.Query().Get("format")
	if accept := r.Header.Get("Accept"); format == "" && (strings.Contains(accept, "text/markdown") || strings.Contains(accept, "text/plain")) {
		format = "markdown"
	}
	if format != "" && format != "json" && format != "markdown" {
		middleware.WriteError(w, r, tutela.FieldErrorf("format", "format must be json or markdown"))
		return
	}
	var inc *incidents.Incident
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
		inc, err = s.loadIncident(r, tx, p, tenantView)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	rep := inc.Report(s.d.Clock())
	w.Header().Set("Cache-Control", "no-store")
	if format == "markdown" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8") // Markdown, readable as plain text
		w.Header().Set("Content-Disposition", `attachment; filename="incident-`+inc.ID+`-notification.md"`)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(rep.Markdown()))
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"notification": rep})
}
