package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Records of processing and the sub-processor register (issue 14; GDPR Art. 30, Art. 28):
// READ on processing shows them, EXPORT downloads them as CSV, MANAGE declares what the live
// configuration cannot tell. The record is generated on each read from the register of
// purposes and the subject schema, so it is never stale.

func (s *Server) processingRoutes() {
	const base = "/v1/tenants/{tenant}"
	s.handle("GET", base+"/records-of-processing", false, s.authed(false, s.getRecordsOfProcessing))
	s.handle("PUT", base+"/records-of-processing/{purpose}", false, s.authed(false, s.putProcessingRecord))
	s.handle("PUT", base+"/controller", false, s.authed(false, s.putController))
	s.handle("GET", base+"/subprocessors", false, s.authed(false, s.listSubprocessors))
	s.handle("POST", base+"/subprocessors", false, s.authed(false, s.addSubprocessor))
	s.handle("PATCH", base+"/subprocessors/{id}", false, s.authed(false, s.patchSubprocessor))
	s.handle("DELETE", base+"/subprocessors/{id}", false, s.authed(false, s.removeSubprocessor))
}

// queryChoice reads query parameter name, which must be one of allowed; absent is allowed[0].
func queryChoice(r *http.Request, name string, allowed ...string) (string, error) {
	q := r.URL.Query()
	if len(q[name]) > 1 {
		return "", tutela.FieldErrorf(name, "%s may be given once", name)
	}
	v := q.Get(name)
	if v == "" {
		return allowed[0], nil
	}
	if !slices.Contains(allowed, v) {
		return "", tutela.FieldErrorf(name, "%s must be one of %s", name, strings.Join(allowed, ", "))
	}
	return v, nil
}

// exportAction is READ for JSON, EXPORT for a CSV download.
func exportAction(format string) authz.Action {
	if format == "csv" {
		return authz.Export
	}
	return authz.Read
}

// writeCSVAttachment renders the CSV before sending anything, so a failure is still a JSON
// error and never half a file.
func writeCSVAttachment(w http.ResponseWriter, r *http.Request, filename string, write func(io.Writer) error) {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) getRecordsOfProcessing(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	format, err := queryChoice(r, "format", "json", "csv")
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var rop *privacy.RecordsOfProcessing
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, exportAction(format), authz.ResProcessing)
		if err != nil {
			return err
		}
		rop, err = tx.Processing(t.ID).Generate(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if format == "csv" {
		writeCSVAttachment(w, r, "records-of-processing-"+rop.TenantSlug+".csv", func(w io.Writer) error {
			return privacy.WriteRecordsCSV(w, rop)
		})
		return
	}
	middleware.WriteJSON(w, http.StatusOK, rop)
}

type processingRecordBody struct {
	SubjectCategories []string           `json:"subject_categories"`
	Recipients        []string           `json:"recipients"`
	Transfers         []privacy.Transfer `json:"transfers"`
	RetentionNote     string             `json:"retention_note"`
	SecurityMeasures  string             `json:"security_measures"`
}

func (s *Server) putProcessingRecord(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req processingRecordBody
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	rec := &privacy.Record{Purpose: r.PathValue("purpose"), SubjectCategories: req.SubjectCategories, Recipients: req.Recipients,
		Transfers: req.Transfers, RetentionNote: req.RetentionNote, SecurityMeasures: req.SecurityMeasures}
	var created bool
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResProcessing)
		if err != nil {
			return err
		}
		created, err = tx.Processing(t.ID).PutRecord(r.Context(), rec)
		return err
	})
	if e := (*tutela.Error)(nil); errors.As(err, &e) && e.Code == tutela.EINVALID && e.Field == "purpose" {
		err = tutela.Errorf(tutela.ENOTFOUND, "purpose not found in this tenant's register of purposes")
	}
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	middleware.WriteJSON(w, status, rec)
}

type controllerBody struct {
	Name           string `json:"name"`
	Contact        string `json:"contact"`
	DPOContact     string `json:"dpo_contact"`
	Representative string `json:"representative"`
}

func (s *Server) putController(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req controllerBody
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	c := &privacy.Controller{Name: req.Name, Contact: req.Contact, DPOContact: req.DPOContact, Representative: req.Representative}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResProcessing)
		if err != nil {
			return err
		}
		return tx.Processing(t.ID).PutController(r.Context(), c)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, c)
}

func (s *Server) listSubprocessors(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	format, err := queryChoice(r, "format", "json", "csv")
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	removed, err := queryChoice(r, "include_removed", "false", "true")
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var subs []*privacy.Subprocessor
	var slug string
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, exportAction(format), authz.ResProcessing)
		if err != nil {
			return err
		}
		slug = t.Slug
		subs, err = tx.Processing(t.ID).Subprocessors(r.Context(), removed == "true")
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if format == "csv" {
		writeCSVAttachment(w, r, "subprocessors-"+slug+".csv", func(w io.Writer) error {
			return privacy.WriteSubprocessorsCSV(w, subs)
		})
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"subprocessors": subs})
}

type subprocessorBody struct {
	Name              *string            `json:"name"`
	Service           *string            `json:"service"`
	Locations         []string           `json:"locations"`
	DataCategories    []string           `json:"data_categories"`
	TransferSafeguard *privacy.Safeguard `json:"transfer_safeguard"`
	SafeguardDetails  *string            `json:"safeguard_details"`
	ContractRef       *string            `json:"contract_ref"`
}

// apply sets the fields the body gives on sp (PATCH: the others stay).
func (b subprocessorBody) apply(sp *privacy.Subprocessor) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&sp.Name, b.Name)
	set(&sp.Service, b.Service)
	set(&sp.SafeguardDetails, b.SafeguardDetails)
	set(&sp.ContractRef, b.ContractRef)
	if b.TransferSafeguard != nil {
		sp.TransferSafeguard = *b.TransferSafeguard
	}
	if b.Locations != nil {
		sp.Locations = b.Locations
	}
	if b.DataCategories != nil {
		sp.DataCategories = b.DataCategories
	}
}

func (s *Server) addSubprocessor(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req subprocessorBody
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	sp := &privacy.Subprocessor{}
	req.apply(sp)
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResProcessing)
		if err != nil {
			return err
		}
		return tx.Processing(t.ID).AddSubprocessor(r.Context(), sp)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, sp)
}

func (s *Server) patchSubprocessor(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req subprocessorBody
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var sp *privacy.Subprocessor
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResProcessing)
		if err != nil {
			return err
		}
		if sp, err = tx.Processing(t.ID).Subprocessor(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		req.apply(sp)
		return tx.Processing(t.ID).UpdateSubprocessor(r.Context(), sp)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, sp)
}

// removeSubprocessor marks the sub-processor removed as of now; its entry stays in the
// register (GET …?include_removed=true) as history.
func (s *Server) removeSubprocessor(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var sp *privacy.Subprocessor
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResProcessing)
		if err != nil {
			return err
		}
		sp, err = tx.Processing(t.ID).RemoveSubprocessor(r.Context(), r.PathValue("id"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, sp)
}
