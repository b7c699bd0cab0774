package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/mail"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Delivery of an access or portability package to the subject: a link with a 256-bit random
// token, of which only the SHA-256 is stored, that works once and for a short time. The download
// route needs no login (the subject has no account); the token is the credential, so it never
// reaches a log or the audit log (both record the route pattern, never the path).

const dsrDownloadPrefix = "/v1/dsr-downloads/"

type dsrLinkRequest struct {
	// Delivery is "" (by e-mail when the subject's record holds an address, else in person),
	// "email" or "in_person" (the subject asked to collect it).
	Delivery string `json:"delivery"`
}

// dsrDelivery is how a package's one link reaches the subject.
type dsrDelivery struct {
	mode     string // sqlstore.DSRDeliveryEmail or DSRDeliveryInPerson
	field    string // the email field the address is read from
	sealedTo []byte // its ciphertext: the address must not change between planning and sending
	to       string // the address (e-mail only; opened in the first transaction)
}

// dsrDownloadLink issues a completed request's one download link (EXPORT on dsr: sensitive, a
// person proves a fresh second factor). Whoever asks for the link must not thereby get the
// package: EXPORT on requests says nothing about reading a subject's RED fields. So the token
// goes either to the subject, e-mailed by the system to the address in their record (the caller
// sees only that it was sent), or, for a hand-over in person, to a caller who may read every
// field of the package in clear anyway (READ on subjects at each field's classification, RED
// with a fresh step-up, as readSubject decides). One link per approval: see
// sqlstore.DSRs.SetDownloadLink.
func (s *Server) dsrDownloadLink(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req dsrLinkRequest
	if r.ContentLength != 0 {
		if err := middleware.DecodeJSON(w, r, &req); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	if req.Delivery != "" && req.Delivery != sqlstore.DSRDeliveryEmail && req.Delivery != sqlstore.DSRDeliveryInPerson {
		middleware.WriteError(w, r, tutela.FieldErrorf("delivery", "delivery must be email or in_person"))
		return
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	clear(raw)
	ttl := s.dsrPolicy().DownloadTTL
	id := r.PathValue("id")
	path := dsrDownloadPrefix + token
	url := ""
	if s.d.Identity != nil && s.d.Identity.PublicURL != "" {
		url = strings.TrimRight(s.d.Identity.PublicURL, "/") + path
	}

	// First the plan: who may have the link, and the address it goes to. The e-mail is sealed
	// outside any transaction (jobs.Queue.Prepare), then queued with the link.
	var plan *dsrDelivery
	var tenantID string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Export, authz.ResDSR)
		if err != nil {
			return err
		}
		tenantID = t.ID
		plan, err = s.planDSRDelivery(r, tx, p, t, pol, id, req.Delivery, url != "", true)
		return err
	})
	var notice *identity.Notice
	if err == nil && plan.mode == sqlstore.DSRDeliveryEmail {
		notice, err = s.d.Identity.PrepareMail(tenantID, dsrLinkMail(plan.to, id, url, ttl))
		if err == nil && notice == nil {
			err = tutela.Errorf(tutela.EINTERNAL, "e-mail is not configured")
		}
	}
	if plan != nil {
		plan.to = ""
	}
	var expires time.Time
	if err == nil {
		err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
			t, pol, err := s.authorize(r, tx, p, authz.Export, authz.ResDSR)
			if err != nil {
				return err
			}
			again, err := s.planDSRDelivery(r, tx, p, t, pol, id, req.Delivery, url != "", false)
			if err != nil {
				return err
			}
			if again.mode != plan.mode || again.field != plan.field || !bytes.Equal(again.sealedTo, plan.sealedTo) {
				return tutela.Errorf(tutela.ECONFLICT, "the subject's e-mail address changed meanwhile: ask for the link again")
			}
			if expires, err = tx.DSRs(t.ID).SetDownloadLink(r.Context(), id, sqlstore.DSRTokenHash(token), ttl, plan.mode); err != nil {
				return err
			}
			return notice.Enqueue(r.Context(), tx)
		})
	}
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if plan.mode == sqlstore.DSRDeliveryEmail {
		middleware.WriteJSON(w, http.StatusCreated, map[string]any{"delivered_to": "email", "expires_at": expires})
		return
	}
	out := map[string]any{"delivered_to": sqlstore.DSRDeliveryInPerson, "path": path, "expires_at": expires}
	if url != "" {
		out["url"] = url
	}
	middleware.WriteJSON(w, http.StatusCreated, out)
}

// planDSRDelivery decides how request id's link is delivered. By e-mail when the subject's record
// holds a value of an email-typed field (the first in schema order) and has not changed since
// the request was received, unless the request asks for in person or e-mail cannot go out (no
// public URL for the link, or no mail configured); in
// person otherwise, and then only to a caller who may read every field the package holds in
// clear. With open, the address is opened with the subject's key.
func (s *Server) planDSRDelivery(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, t *tutela.Tenant, pol *authz.Policy,
	id, asked string, haveURL, open bool) (*dsrDelivery, error) {
	ctx := r.Context()
	d, err := tx.DSRs(t.ID).PackageState(ctx, id)
	if err != nil {
		return nil, err
	}
	schema, err := tx.SubjectSchema(t.ID).Get(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := tx.Subjects(t.ID).Get(ctx, d.SubjectID)
	if err != nil {
		return nil, err
	}
	mailing := haveURL && s.d.Identity != nil && s.d.Identity.Mailer != nil && s.d.Identity.Jobs != nil
	// The address is trusted only if the record has not changed since the request was received:
	// otherwise whoever may edit subjects (YELLOW) could put their own address in and have the
	// whole package, RED included, mailed to themselves.
	changed := rec.UpdatedAt.After(d.ReceivedAt)
	if asked != sqlstore.DSRDeliveryInPerson && mailing && !changed {
		for _, f := range schema {
			ct, held := rec.Stored.Values[f.Name]
			if f.Type != privacy.FieldEmail || !held {
				continue
			}
			plan := &dsrDelivery{mode: sqlstore.DSRDeliveryEmail, field: f.Name, sealedTo: ct}
			if open {
				vals, err := s.subjects().Open(ctx, t.ID, &rec.Stored, []string{f.Name})
				if err != nil {
					return nil, subjectErr(err)
				}
				plan.to = vals[f.Name]
			}
			return plan, nil
		}
	}
	if asked == sqlstore.DSRDeliveryEmail && changed {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the link cannot be e-mailed: the subject's record changed after the request "+
			"was received, so its e-mail address is not trusted for delivery; hand the package over in person (delivery in_person)")
	}
	if asked == sqlstore.DSRDeliveryEmail {
		return nil, tutela.FieldErrorf("delivery", "the link cannot be e-mailed: the subject's record holds no e-mail address, "+
			"or e-mail is not configured; hand the package over in person (delivery in_person)")
	}
	// The package also holds the subject's own words (request texts, consent evidence): those
	// open for READ on dsr at YELLOW, as GET …/dsr/{id} decides.
	if !authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResDSR, Class: authz.Yellow}, s.d.Clock()).Allow {
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "handing the package over in person needs a caller allowed to read all of it "+
			"in clear, and you may not read the subject's texts (READ on dsr at YELLOW)")
	}
	for _, f := range schema {
		if _, held := rec.Stored.Values[f.Name]; !held {
			continue
		}
		// The purpose a RED read states is the request itself: answering the subject's access.
		dec := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResSubjects, Class: f.Classification,
			Purpose: "data_subject_request", StepUpAt: p.StepUpAt}, s.d.Clock())
		if fieldMask(pol, dec, f) != authz.MaskFull {
			return nil, tutela.Errorf(tutela.EFORBIDDEN, "handing the package over in person needs a caller allowed to read all of it "+
				"in clear, and you may not read %s (%s) in clear; a user cleared to read subjects at %s hands it over, or the "+
				"link is e-mailed to an address in the subject's record", f.Name, f.Classification, f.Classification)
		}
		if err := s.requireStepUp(p, dec); err != nil {
			return nil, err
		}
	}
	return &dsrDelivery{mode: sqlstore.DSRDeliveryInPerson}, nil
}

// dsrLinkMail is the e-mail that carries the link to the subject: the link, how long it works,
// and nothing of the package.
func dsrLinkMail(to, requestID, url string, ttl time.Duration) mail.Message {
	return mail.Message{To: to, Subject: "Your personal data is ready to download",
		Text: "You asked for a copy of the personal data held about you (request " + requestID + ").\n\n" +
			"Download it here:\n" + url + "\n\n" +
			"The link works once, for " + dsrTTLText(ttl) + " from when this e-mail was sent; after that it no longer works " +
			"and the copy is deleted. Keep the file safe: it holds all your data.\n\n" +
			"If you did not ask for this, tell the organisation that holds your data.\n"}
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

// dsrTTLText says ttl in words for the e-mail ("1 hour", "90 minutes").
func dsrTTLText(ttl time.Duration) string {
	switch {
	case ttl == time.Hour:
		return "1 hour"
	case ttl%time.Hour == 0:
		return strconv.Itoa(int(ttl/time.Hour)) + " hours"
	}
	return strconv.Itoa(int(ttl.Round(time.Minute)/time.Minute)) + " minutes"
}
