package httpapi

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
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
	"tutela/vault"
)

// Download links: the only way a stored file's bytes leave. A link is signed (files.LinkSigner),
// expires (5 minutes by default, at most 24 hours), is for one user or for anyone holding it,
// and may work once. Its token is in the path; the audit log and the access log record the
// route pattern, never the path, so the token reaches neither.

const fileDownloadPrefix = "/v1/files/download/"

type fileLinkRequest struct {
	// Audience is "user" (default: only the caller, signed in) or "anyone" (EXPORT).
	Audience files.Audience `json:"audience"`
	// ExpiresIn is the link's lifetime in seconds (default 300, 10 – 86400).
	ExpiresIn *int   `json:"expires_in"`
	SingleUse bool   `json:"single_use"`
	Purpose   string `json:"purpose"`
}

type fileLinkResponse struct {
	files.Link
	// URL is the download path, relative to this API's base URL; Token is its last segment.
	URL   string `json:"url"`
	Token string `json:"token"`
}

func (s *Server) createFileLink(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req fileLinkRequest
	if r.ContentLength != 0 {
		if err := middleware.DecodeJSON(w, r, &req); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	ttl := files.DefaultLinkTTL
	if req.ExpiresIn != nil {
		ttl = time.Duration(*req.ExpiresIn) * time.Second
		if ttl < files.MinLinkTTL || ttl > files.MaxLinkTTL {
			middleware.WriteError(w, r, tutela.FieldErrorf("expires_in", "expires_in must be between %d and %d seconds",
				int(files.MinLinkTTL.Seconds()), int(files.MaxLinkTTL.Seconds())))
			return
		}
	}
	action := authz.Read
	switch req.Audience {
	case "":
		req.Audience = files.AudienceUser
	case files.AudienceUser:
	case files.AudienceAnyone:
		action = authz.Export
	default:
		middleware.WriteError(w, r, tutela.FieldErrorf("audience", "audience must be user or anyone"))
		return
	}
	if req.Audience == files.AudienceUser && p.Kind != tutela.PrincipalUser {
		middleware.WriteError(w, r, tutela.FieldErrorf("audience", "a service account has no user to issue a link to; use audience anyone"))
		return
	}
	l := &files.Link{ID: tutela.NewID(), Audience: req.Audience, SingleUse: req.SingleUse,
		ExpiresAt: s.d.Clock().Add(ttl), CreatedBy: p.UserID}
	if req.Audience == files.AudienceUser {
		l.UserID = p.UserID
	}
	var token string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, f, err := s.fileFor(r, tx, p, action, req.Purpose)
		if err != nil {
			return err
		}
		if err := s.filesConfigured(); err != nil {
			return err
		}
		// Inside the transaction the vault must not create the file_links keyset (on SQLite
		// that would wait for this transaction's own write lock): the first link ever ends
		// this transaction with a missing-keyset error, Update creates the keyset outside it
		// and runs this again.
		if token, err = (files.LinkSigner{Vault: s.d.Keys}).Sign(vault.WithoutCreate(r.Context(), nil), l); err != nil {
			return err
		}
		l.FileID = f.ID
		if err := tx.Files(t.ID).CreateLink(r.Context(), l); err != nil {
			return err
		}
		return tx.Record(r.Context(), "file.link_created", t.ID, "file", f.ID, "", map[string]any{
			"link_id": l.ID, "audience": string(l.Audience), "single_use": l.SingleUse,
			"expires_at": l.ExpiresAt.Format(time.RFC3339), "key_id": l.KeyID, "purpose": req.Purpose})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	middleware.WriteJSON(w, http.StatusCreated, fileLinkResponse{Link: *l, URL: fileDownloadPrefix + token, Token: token})
}

func (s *Server) listFileLinks(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var links []files.Link
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, f, err := s.fileFor(r, tx, p, authz.Read, r.URL.Query().Get("purpose"))
		if err != nil {
			return err
		}
		links, err = tx.Files(t.ID).Links(r.Context(), f.ID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if links == nil {
		links = []files.Link{}
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"links": links})
}

// revokeFileLink ends a link before its expiry: its creator may (READ), anyone else needs MANAGE.
func (s *Server) revokeFileLink(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, f, err := s.fileFor(r, tx, p, authz.Read, r.URL.Query().Get("purpose"))
		if err != nil {
			return err
		}
		links, err := tx.Files(t.ID).Links(r.Context(), f.ID)
		if err != nil {
			return err
		}
		var mine, found bool
		for _, l := range links {
			if l.ID == r.PathValue("link") {
				found, mine = true, l.CreatedBy == p.UserID
			}
		}
		if !found {
			return tutela.Errorf(tutela.ENOTFOUND, "link not found")
		}
		if !mine {
			if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Manage, Resource: authz.ResFiles,
				Class: authz.Classification(f.Classification)}); err != nil {
				return err
			}
		}
		if err := tx.Files(t.ID).RevokeLink(r.Context(), f.ID, r.PathValue("link")); err != nil {
			return err
		}
		return tx.Record(r.Context(), "file.link_revoked", t.ID, "file", f.ID, "", map[string]any{"link_id": r.PathValue("link")})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// downloadFile serves a file through a link. The signature is checked before anything is read;
// then the link (not revoked, not used up, its key and expiry as signed), its audience (the
// signed-in user it was issued to), and the file (available: a quarantined one is 409
// file_quarantined). The use is recorded (file.downloaded), and a single-use link used up, in
// one transaction before the first byte is sent.
func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// HEAD (which a GET route also answers) would spend a single-use link and record a
		// download that sent nothing: link previews and mail scanners send it.
		w.Header().Set("Allow", http.MethodGet)
		middleware.WriteError(w, r, tutela.Errorf(tutela.EMETHODNOTALLOWED, "download links answer GET only"))
		return
	}
	if err := s.filesConfigured(); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	claims, err := files.LinkSigner{Vault: s.d.Keys}.Verify(ctx, r.PathValue("token"), s.d.Clock())
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var p *tutela.Principal
	var l *files.Link
	var f *files.File
	var dek []byte
	var name string
	dbCtx, cancel := context.WithTimeout(ctx, s.d.DBTimeout)
	defer cancel()
	err = s.d.DB.Update(dbCtx, func(tx *sqlstore.Tx) error {
		ctx := dbCtx
		var err error
		if l, err = tx.FileLink(ctx, claims.LinkID); err != nil {
			return err
		}
		if l.KeyID != claims.KeyID || !l.ExpiresAt.Equal(claims.ExpiresAt) {
			return tutela.Errorf(tutela.ENOTFOUND, "download link not found")
		}
		if l.RevokedAt != nil {
			return tutela.Errorf(tutela.ELINKGONE, "this download link was revoked")
		}
		if l.SingleUse && l.UsedAt != nil {
			return tutela.Errorf(tutela.ELINKGONE, "this download link was already used")
		}
		if l.Audience == files.AudienceUser {
			if p, err = s.authenticate(r, false); err != nil {
				return err
			}
			if p.UserID != l.UserID || p.TenantID != l.TenantID {
				return tutela.Errorf(tutela.EFORBIDDEN, "this download link was issued to another user")
			}
			// As every authenticated route: an account that must first change its password
			// or enrol a second factor does nothing else.
			if p.MustChangePassword || p.MustEnrollMFA {
				return tutela.Errorf(tutela.EFORBIDDEN, "finish your account's required set-up (password change or second factor) first")
			}
			if m := tutela.RequestMetaFrom(ctx); m != nil {
				m.Principal = p
			}
		}
		if f, err = tx.Files(l.TenantID).Get(ctx, l.FileID); err != nil {
			return err
		}
		if err := f.Downloadable(); err != nil {
			return err
		}
		if err := s.linkStillAllowed(r, tx, p, l, f); err != nil {
			return err
		}
		if dek, name, err = tx.OpenFile(ctx, f); err != nil {
			return err
		}
		if err := tx.UseFileLink(ctx, l); err != nil {
			return err
		}
		return tx.Record(ctx, "file.downloaded", l.TenantID, "file", f.ID, "", map[string]any{
			"link_id": l.ID, "audience": string(l.Audience), "single_use": l.SingleUse, "size": f.Size})
	})
	if err != nil {
		if tutela.ErrorCode(err) == tutela.EUNAUTHENTICATED {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tutela"`)
		}
		middleware.WriteError(w, r, err)
		return
	}
	defer clear(dek)
	body, err := s.d.Files.Content(ctx, f, dek)
	if err != nil {
		middleware.WriteError(w, r, tutela.Wrap(err, "the file could not be read"))
		return
	}
	defer body.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(s.d.FileTransferTimeout))
	h := w.Header()
	h.Set("Content-Type", f.DetectedType)
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	h.Set("Content-Disposition", contentDisposition(name, f))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox; frame-ancestors 'none'")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, body); err != nil {
		// Headers are gone; a tampered or unreadable blob ends the response short, which the
		// client sees against Content-Length. Never altered bytes: decryption fails first.
		middleware.Logger(ctx).Error("files: download failed mid-stream", "file", f.ID, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// linkPurpose is the purpose a download through a link is decided under: the person stated
// theirs when the link was issued (audited with file.link_created).
const linkPurpose = "file_download_link"

// linkStillAllowed decides the download again, now: a link outlives neither the right it was
// issued under nor its user's account. A user link needs the user (signed in) to hold READ on
// files at the file's classification; an anyone link needs its issuer to still hold EXPORT. The
// fresh second factor RED data and EXPORT need was proved when the link was issued, minutes ago
// at most by default; it is not asked of the download.
func (s *Server) linkStillAllowed(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, l *files.Link, f *files.File) error {
	ctx := r.Context()
	req := authz.Request{Resource: authz.ResFiles, Class: authz.Classification(f.Classification), Purpose: linkPurpose}
	var pol *authz.Policy
	var err error
	if l.Audience == files.AudienceUser {
		req.Action = authz.Read
		pol, err = principalPolicy(r, tx, p)
	} else {
		req.Action = authz.Export
		pol, err = s.issuerPolicy(r, tx, l)
	}
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return tutela.Errorf(tutela.EFORBIDDEN, "whoever this link was issued by or for may no longer read this file")
	}
	if err != nil {
		return err
	}
	if d := authz.Decide(pol, req, s.d.Clock()); !d.Allow {
		noteDenial(ctx, denial{action: string(req.Action), resource: authz.ResFiles, targetTenant: l.TenantID,
			targetID: f.ID, reason: d.Reason})
		return tutela.Errorf(tutela.EFORBIDDEN, "whoever this link was issued by or for may no longer read this file")
	}
	return nil
}

// issuerPolicy is the policy of whoever issued an anyone link: an active user of the tenant,
// or a service account of it. Disabled or gone: not found.
func (s *Server) issuerPolicy(r *http.Request, tx *sqlstore.Tx, l *files.Link) (*authz.Policy, error) {
	ctx := r.Context()
	if st, err := tx.Users(l.TenantID).Status(ctx, l.CreatedBy); err == nil {
		if st != tutela.StatusActive {
			return nil, tutela.Errorf(tutela.ENOTFOUND, "issuer not active")
		}
		return tx.Policy(ctx, l.TenantID, l.CreatedBy)
	} else if tutela.ErrorCode(err) != tutela.ENOTFOUND {
		return nil, err
	}
	return tx.ServiceAccountPolicy(ctx, l.TenantID, l.CreatedBy)
}

// contentDisposition makes every download an attachment named after the upload (RFC 6266):
// filename* carries the name exactly (RFC 8187 percent-encoding), and filename an ASCII
// fallback for clients that read only that one (curl -OJ), so no client falls back to the last
// path segment, the link's token.
func contentDisposition(name string, f *files.File) string {
	if name == "" {
		name = f.ID + f.Extension
	}
	fallback := asciiFilename(name)
	if fallback == "" || strings.Trim(fallback, "_.") == "" {
		fallback = f.ID + f.Extension
	}
	return `attachment; filename="` + fallback + `"; filename*=UTF-8''` + rfc8187(name)
}

// rfc8187 percent-encodes every byte of s that is not an attr-char (RFC 8187 §3.2.1).
func rfc8187(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// asciiFilename keeps a name's printable ASCII letters, digits and a few safe marks; anything
// else (quotes, backslashes, separators, non-ASCII) becomes "_".
func asciiFilename(name string) string {
	b := make([]byte, 0, len(name))
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" ._-()+,", r):
			b = append(b, byte(r)) // #nosec G115 -- r is ASCII here (the case above admits only ASCII runes)
		default:
			b = append(b, '_')
		}
	}
	return strings.TrimSpace(string(b))
}

// uploadBody finds the file in an upload request: the one part "file" of a multipart body
// (name and declared type from it), or the whole body (declared type from Content-Type, size
// from Content-Length). part, when not nil, is closed after use.
func uploadBody(r *http.Request, up *intake.Upload) (io.Reader, *multipart.Part, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt == "multipart/form-data" {
		if up.Name != "" {
			return nil, nil, tutela.FieldErrorf("name", "a multipart upload is named by its part's filename, not ?name=")
		}
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, nil, tutela.Errorf(tutela.EINVALID, "the multipart body is malformed")
		}
		part, err := mr.NextRawPart()
		switch {
		case errors.Is(err, io.EOF):
			return nil, nil, tutela.FieldErrorf("file", "the multipart body has no part named file")
		case err != nil:
			return nil, nil, bodyErr(err, up.Policy.MaxSize)
		case part.FormName() != "file":
			_ = part.Close()
			return nil, nil, tutela.FieldErrorf("file", "the multipart body must hold exactly one part, named file")
		}
		// The name as sent: Part.FileName strips directories, which would hide a "../" the
		// inspector refuses in a raw upload's ?name= (name_invalid) for the same reason.
		_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if err != nil {
			_ = part.Close()
			return nil, nil, files.Refused(files.ReasonNameInvalid, "the file part's Content-Disposition is malformed")
		}
		up.Name, up.DeclaredType = params["filename"], part.Header.Get("Content-Type")
		return &onlyPart{part: part, mr: mr, limit: up.Policy.MaxSize}, part, nil
	}
	if up.Name == "" {
		return nil, nil, tutela.FieldErrorf("name", "a raw upload needs ?name= (the file's name)")
	}
	up.DeclaredType = ct
	if r.ContentLength >= 0 {
		if up.DeclaredSize >= 0 && up.DeclaredSize != r.ContentLength {
			return nil, nil, files.Refused(files.ReasonSizeMismatch, "?size= and Content-Length disagree")
		}
		up.DeclaredSize = r.ContentLength
	}
	return r.Body, nil, nil
}

// bodyErr is a multipart framing failure: past the limit or cut off, the intake's reading of
// it (too_large, truncated); anything else, a malformed body.
func bodyErr(err error, limit int64) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return intake.BodyError(err, limit)
	}
	return tutela.Errorf(tutela.EINVALID, "the multipart body is malformed")
}

// onlyPart reads the file part and, at its end, checks that the body ends there too: a second
// part is refused, and a body without its closing boundary is a truncated upload.
type onlyPart struct {
	part  *multipart.Part
	mr    *multipart.Reader
	limit int64
	done  bool
}

func (o *onlyPart) Read(p []byte) (int, error) {
	if o.done {
		return 0, io.EOF
	}
	n, err := o.part.Read(p)
	if !errors.Is(err, io.EOF) {
		return n, err // the intake reads what a failure means
	}
	o.done = true
	next, nerr := o.mr.NextRawPart()
	switch {
	case errors.Is(nerr, io.EOF):
		return n, io.EOF
	case nerr != nil:
		return n, bodyErr(nerr, o.limit)
	default:
		_ = next.Close()
		return n, tutela.FieldErrorf("file", "the multipart body must hold exactly one part, named file")
	}
}
