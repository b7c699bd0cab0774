package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Delivery of an access or portability package to the subject: a link with a 256-bit random
// token, of which only the SHA-256 is stored, that works once and for a short time. The download
// route needs no login (the subject has no account); the token is the credential, so it never
// reaches a log or the audit log (both record the route pattern, never the path).

const dsrDownloadPrefix = "/v1/dsr-downloads/"

// dsrDownloadLink makes the request's package downloadable once (EXPORT on dsr: sensitive, a
// person proves a fresh second factor). A new link replaces the previous one.
func (s *Server) dsrDownloadLink(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	clear(raw)
	ttl := s.dsrPolicy().DownloadTTL
	var expires time.Time
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Export, authz.ResDSR)
		if err != nil {
			return err
		}
		expires, err = tx.DSRs(t.ID).SetDownloadLink(r.Context(), r.PathValue("id"), sqlstore.DSRTokenHash(token), ttl)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	path := dsrDownloadPrefix + token
	out := map[string]any{"path": path, "expires_at": expires}
	if s.d.Identity != nil && s.d.Identity.PublicURL != "" {
		out["url"] = strings.TrimRight(s.d.Identity.PublicURL, "/") + path
	}
	w.Header().Set("Cache-Control", "no-store")
	middleware.WriteJSON(w, http.StatusCreated, out)
}

// validDSRToken reports whether t has a download token's form (43 base64url characters).
func validDSRToken(t string) bool {
	if len(t) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil
}

// dsrDownload serves a package once. The first successful GET spends the link atomically;
// unknown, used, expired and erased all answer the same 404. A package that fails to open rolls
// back, leaving the link unspent.
func (s *Server) dsrDownload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	token := r.PathValue("token")
	if !validDSRToken(token) {
		middleware.WriteError(w, r, sqlstore.ErrDSRDownloadNotFound)
		return
	}
	var zipped []byte
	var dsrID string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		dl, err := tx.ConsumeDSRDownload(r.Context(), sqlstore.DSRTokenHash(token))
		if err != nil {
			return err
		}
		zipped, err = s.dsrExecutor().OpenDownload(r.Context(), dl)
		if privacy.IsErased(err) {
			return sqlstore.ErrDSRDownloadNotFound
		}
		dsrID = dl.DSRID
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="personal-data-`+dsrID+`.zip"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(zipped)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(zipped)
	clear(zipped)
}
