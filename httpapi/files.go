package httpapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/files"
	"tutela/files/intake"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// Safe file intake (issue 17). Uploads stream through files/intake; a stored file's bytes
// leave only through a signed, expiring download link (files_links.go). Access is decided on
// (files, action) at the file's classification: CREATE uploads, READ lists and reads metadata
// and issues a link for oneself, EXPORT issues a link anyone may use, DELETE deletes, MANAGE
// sets the policy and asks for a rescan (the last three are step-up actions).

const filesBase = "/v1/tenants/{tenant}/files"

func (s *Server) fileRoutes() {
	s.handle("GET", filesBase+"/policy", false, s.authed(false, s.getFilePolicy))
	s.handle("PUT", filesBase+"/policy", false, s.authed(false, s.putFilePolicy))
	s.handle("POST", filesBase, false, s.authed(false, s.uploadFile))
	s.handle("GET", filesBase, false, s.authed(false, s.listFiles))
	s.handle("GET", filesBase+"/{id}", false, s.authed(false, s.getFile))
	s.handle("DELETE", filesBase+"/{id}", false, s.authed(false, s.deleteFile))
	s.handle("POST", filesBase+"/{id}/scan", false, s.authed(false, s.rescanFile))
	s.handle("POST", filesBase+"/{id}/links", false, s.authed(false, s.createFileLink))
	s.handle("GET", filesBase+"/{id}/links", false, s.authed(false, s.listFileLinks))
	s.handle("DELETE", filesBase+"/{id}/links/{link}", false, s.authed(false, s.revokeFileLink))
	s.handle("GET", fileDownloadPrefix+"{token}", true, s.downloadFile)
}

// isUpload reports whether r is an upload, whose body is bounded by the tenant's file policy
// (and read for as long as that takes) rather than by the API's JSON body limit.
func isUpload(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/tenants/")
	if !ok {
		return false
	}
	tenant, tail, ok := strings.Cut(rest, "/")
	return ok && tenant != "" && tail == "files"
}

// isFileTransfer reports whether r moves a file's bytes (upload or download): these are
// bounded by the files' own timeouts, not by the per-request database bound.
func isFileTransfer(r *http.Request) bool {
	return isUpload(r) || (r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, fileDownloadPrefix))
}

// filesConfigured is the answer of a file route on a server without file storage (or without
// the vault that signs links). Handlers ask it after the tenant check, so another tenant's
// path is 404 here as everywhere.
func (s *Server) filesConfigured() error {
	if s.d.Files == nil || s.d.Keys == nil {
		return tutela.Errorf(tutela.ENOTCONFIGURED, "file storage is not configured on this server")
	}
	return nil
}

func (s *Server) getFilePolicy(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var pol files.Policy
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResFiles)
		if err != nil {
			return err
		}
		pol, err = tx.Files(t.ID).Policy(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, pol)
}

func (s *Server) putFilePolicy(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var pol files.Policy
	if err := middleware.DecodeJSON(w, r, &pol); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResFiles)
		if err != nil {
			return err
		}
		if err := pol.Validate(); err != nil {
			return err
		}
		if err := tx.Files(t.ID).SetPolicy(r.Context(), pol, p.UserID); err != nil {
			return err
		}
		return tx.Record(r.Context(), "file.policy_updated", t.ID, "file_policy", t.ID, "", map[string]any{
			"allowed_types": pol.AllowedTypes, "max_size": pol.MaxSize})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, pol)
}

// uploadParams are an upload's query parameters.
type uploadParams struct {
	subjectID, class, name string
	size                   int64 // -1: not declared
}

func uploadParamsOf(r *http.Request) (uploadParams, error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "subject_id", "classification", "name", "size":
		default:
			return uploadParams{}, tutela.FieldErrorf(k, "unknown parameter %q", k)
		}
	}
	u := uploadParams{subjectID: q.Get("subject_id"), class: q.Get("classification"), name: q.Get("name"), size: -1}
	if u.subjectID != "" && !tutela.ValidID(u.subjectID) {
		return u, tutela.Errorf(tutela.ENOTFOUND, "subject not found")
	}
	if u.class != "" && !authz.Classification(u.class).Valid() {
		return u, tutela.FieldErrorf("classification", "classification must be GREEN, YELLOW or RED")
	}
	if v := q.Get("size"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return u, tutela.FieldErrorf("size", "size must be the file's size in bytes")
		}
		u.size = n
	}
	return u, nil
}

// uploadFile takes a file in: multipart/form-data with one part "file" (its filename and
// Content-Type are the name and declared type), or the raw bytes with the declared type as
// Content-Type and ?name=. ?size= declares the size (for a raw body, Content-Length does);
// ?subject_id= attaches the file to a subject (UPDATE on subjects too), ?classification= sets
// its classification (default YELLOW).
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	q, err := uploadParamsOf(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	class := authz.Classification(q.class)
	if class == "" {
		class = authz.Yellow
	}
	var t *tutela.Tenant
	var pol files.Policy
	dbCtx, cancel := context.WithTimeout(r.Context(), s.d.DBTimeout)
	defer cancel()
	err = s.d.DB.View(dbCtx, func(tx *sqlstore.Tx) error {
		var err error
		if t, err = pathTenant(r, tx, p); err != nil {
			return err
		}
		pl, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Create, Resource: authz.ResFiles, Class: class})
		if err != nil {
			return err
		}
		if q.subjectID != "" {
			if _, err := s.decideWith(r, p, pl, authz.Request{Action: authz.Update, Resource: authz.ResSubjects, Class: class}); err != nil {
				return err
			}
			// Before the body is read: a file for a subject that is not there (or erased) is
			// refused without streaming it first. Create checks again, under a row lock.
			if _, err := tx.Subjects(t.ID).Get(r.Context(), q.subjectID); err != nil {
				return err
			}
		}
		if err := s.filesConfigured(); err != nil {
			return err
		}
		pol, err = tx.Files(t.ID).Policy(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	// Each node takes at most MaxConcurrentUploads bodies at once: a stalled upload holds a
	// temporary blob and a few MB until it ends.
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	default:
		middleware.WriteError(w, r, middleware.WithRetryAfter(
			tutela.Errorf(tutela.EUNAVAILABLE, "this server is taking as many uploads as it can; try again shortly"), 5*time.Second))
		return
	}
	// The body may take a while: bound it by the files' own timeout, not the API's, and end
	// it when it stalls for FileIdleTimeout.
	rc := http.NewResponseController(w)
	until := time.Now().Add(s.d.FileTransferTimeout)
	_ = rc.SetWriteDeadline(until.Add(time.Minute))
	// multipart framing is a few hundred bytes; the intake enforces the file's own limit.
	r.Body = http.MaxBytesReader(w, &idleReader{r: r.Body, rc: rc, idle: s.d.FileIdleTimeout, until: until}, pol.MaxSize+64<<10)

	up := intake.Upload{TenantID: t.ID, SubjectID: q.subjectID, Classification: string(class), Name: q.name,
		DeclaredSize: q.size, UploadedBy: p.UserID, Policy: pol}
	body, part, err := uploadBody(r, &up)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if part != nil {
		defer part.Close()
	}
	up.Body = body
	f, err := s.d.Files.Upload(r.Context(), up)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.writeFile(w, r, http.StatusCreated, f, up.Name)
}

// idleReader moves the connection's read deadline forward before each read, to at most idle
// ahead and never past until: a stalled or deliberately slow client does not hold an upload
// slot, a temporary blob and its buffers for the whole transfer timeout.
type idleReader struct {
	r     io.ReadCloser
	rc    *http.ResponseController
	idle  time.Duration
	until time.Time
}

func (i *idleReader) Read(p []byte) (int, error) {
	d := time.Now().Add(i.idle)
	if d.After(i.until) {
		d = i.until
	}
	_ = i.rc.SetReadDeadline(d)
	return i.r.Read(p)
}

func (i *idleReader) Close() error { return i.r.Close() }

// writeFile answers with f's metadata, its name in clear (the caller just gave it, or was
// allowed to read it).
func (s *Server) writeFile(w http.ResponseWriter, r *http.Request, status int, f *files.File, name string) {
	out := *f
	out.Name = name
	middleware.WriteJSON(w, status, out)
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := pageParamsOf(r, tutela.ValidID)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	fq := sqlstore.FileQuery{After: cursor, Limit: limit, SubjectID: r.URL.Query().Get("subject_id"),
		Status: files.Status(r.URL.Query().Get("status"))}
	if fq.SubjectID != "" && !tutela.ValidID(fq.SubjectID) {
		middleware.WriteError(w, r, tutela.FieldErrorf("subject_id", "subject_id is not valid"))
		return
	}
	switch fq.Status {
	case "", files.StatusQuarantined, files.StatusAvailable, files.StatusInfected, files.StatusDeleted, files.StatusErased:
	default:
		middleware.WriteError(w, r, tutela.FieldErrorf("status", "status is not a file status"))
		return
	}
	var list []files.File
	var next string
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResFiles)
		if err != nil {
			return err
		}
		// Only the classifications the caller may read (RED with ?purpose= and a fresh
		// step-up, as for one file): a file's metadata (hash, size, subject) is not for
		// someone who may not open it.
		fq.Classes = []string{}
		for _, c := range []authz.Classification{authz.Green, authz.Yellow, authz.Red} {
			d := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResFiles, Class: c,
				Purpose: r.URL.Query().Get("purpose"), StepUpAt: p.StepUpAt}, s.d.Clock())
			if d.Allow && s.requireStepUp(p, d) == nil {
				fq.Classes = append(fq.Classes, string(c))
			}
		}
		if list, next, err = tx.Files(t.ID).List(r.Context(), fq); err != nil {
			return err
		}
		for i := range list {
			list[i].Name = s.fileName(r, tx, p, pol, &list[i])
		}
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"files": list, "next_cursor": next})
}

// fileName is f's name when p may read files of f's classification without more (no step-up
// or purpose owed), else "" — the rest of the metadata says nothing of the content.
func (s *Server) fileName(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, pol *authz.Policy, f *files.File) string {
	d := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResFiles,
		Class: authz.Classification(f.Classification), StepUpAt: p.StepUpAt}, s.d.Clock())
	if !d.Allow || d.Obligations.PurposeRequired || s.requireStepUp(p, d) != nil {
		return ""
	}
	_, name, err := tx.OpenFile(r.Context(), f)
	if err != nil {
		return ""
	}
	return name
}

// fileFor reads the path's file after deciding action on files at its classification.
func (s *Server) fileFor(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, action authz.Action, purpose string) (*tutela.Tenant, *files.File, error) {
	t, err := pathTenant(r, tx, p)
	if err != nil {
		return nil, nil, err
	}
	f, err := tx.Files(t.ID).Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, nil, err
	}
	_, _, err = s.decide(r, tx, p, authz.Request{Action: action, Resource: authz.ResFiles,
		Class: authz.Classification(f.Classification), Purpose: purpose})
	return t, f, err
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var f *files.File
	var name string
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		var err error
		if _, f, err = s.fileFor(r, tx, p, authz.Read, r.URL.Query().Get("purpose")); err != nil {
			return err
		}
		if f.WrappedDEK != nil {
			if _, name, err = tx.OpenFile(r.Context(), f); err != nil && tutela.ErrorCode(err) != tutela.ENOTFOUND {
				return err
			}
		}
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.writeFile(w, r, http.StatusOK, f, name)
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var f *files.File
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, cur, err := s.fileFor(r, tx, p, authz.Delete, "")
		if err != nil {
			return err
		}
		if err := s.filesConfigured(); err != nil {
			return err
		}
		if f, err = tx.Files(t.ID).Delete(r.Context(), cur.ID); err != nil {
			return err
		}
		return tx.Record(r.Context(), "file.deleted", t.ID, "file", f.ID, "", map[string]any{"subject_id": f.SubjectID})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	// Removed now; the purge job enqueued with the deletion retries if this fails.
	if err := s.d.Files.Purge(r.Context(), f.TenantID, f.ID); err != nil {
		middleware.Logger(r.Context()).Warn("files: removing a deleted file's blob failed; the purge job will retry",
			"file", f.ID, "error", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

// rescanFile scans a quarantined file again now (MANAGE: the scan job does it on its own with
// backoff; this is for an operator who has just brought the scanner back).
func (s *Server) rescanFile(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var f *files.File
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		var err error
		if _, f, err = s.fileFor(r, tx, p, authz.Manage, ""); err != nil {
			return err
		}
		return s.filesConfigured()
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	out, err := s.d.Files.Scan(r.Context(), f.TenantID, f.ID)
	if err != nil && out == nil {
		middleware.WriteError(w, r, err)
		return
	}
	out.Name = ""
	middleware.WriteJSON(w, http.StatusOK, out)
}
