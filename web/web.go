package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tutela"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/oidc"
	"tutela/sqlstore"
)

// Flow is the provider side of a pending authorization request (*oidc.Provider implements it).
type Flow interface {
	Pending(ctx context.Context, tenantID, id string) (*oidc.Pending, error) // ENOTFOUND when unknown/expired/done
	Complete(ctx context.Context, tenantID, id string, a oidc.Authenticated) (redirect string, err error)
	Deny(ctx context.Context, tenantID, id, reason string) (redirect string, err error) // reason: oidc.Deny*
}

// Deps are the pages' collaborators.
type Deps struct {
	DB       *sqlstore.DB
	Identity *identity.Service
	// Flow is the OpenID Provider; nil: no sign-in journey (the pages that continue an
	// authorization request answer with the error page).
	Flow  Flow
	Clock tutela.Clock
	Log   *slog.Logger
	// PublicURL is where browsers reach Tutela (https://id.example.org): POSTs must come from
	// its origin.
	PublicURL string
	// TLS: served over TLS (directly or behind a TLS-terminating proxy): HSTS is sent.
	TLS bool
	// CSRFKey keys the HMAC that binds form tokens to the browser's CSRF cookie. Every node
	// serving the pages needs the same key (32 bytes or more); nil: a random key per process,
	// so a form must be posted back to the node that rendered it.
	CSRFKey []byte
}

// Pages are the hosted pages (sign-in, second factor, enrolment, consent, password reset,
// logout, errors). See doc.go for how to add one.
type Pages struct {
	d       Deps
	csrfKey []byte
	cat     *catalogues
	tmpl    map[string]*template.Template
	assets  fs.FS
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/*
var assetFS embed.FS

// New returns the pages. Templates and catalogues are embedded: a broken one is a programming
// error caught by every test, so New panics on it rather than serve a half-built site.
func New(d Deps) *Pages {
	if d.Clock == nil {
		d.Clock = tutela.SystemClock
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	key := d.CSRFKey
	if len(key) < 32 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	cat, err := loadCatalogues()
	if err != nil {
		panic("web: " + err.Error())
	}
	p := &Pages{d: d, csrfKey: key, cat: cat, tmpl: map[string]*template.Template{}}
	p.assets, _ = fs.Sub(assetFS, "assets")
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic("web: " + err.Error())
	}
	for _, f := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		p.tmpl[name] = template.Must(template.New(name).ParseFS(templateFS, "templates/layout.html", f))
	}
	return p
}

// Routes registers the pages on mux, under /t/{tenant}/ (the tenant's slug).
// Pattern is the http.ServeMux pattern that reaches every page (httpapi.Deps.HostedPatterns):
// the pages are under each tenant's path, beside the OpenID Provider's endpoints, whose
// patterns are more specific.
const Pattern = "/t/{tenant}/"

func (p *Pages) Routes(mux *http.ServeMux) {
	mux.Handle("GET /t/{tenant}/assets/{name}", http.HandlerFunc(p.asset))
	mux.Handle("GET /t/{tenant}/login", p.page(p.loginPage))
	mux.Handle("POST /t/{tenant}/login", p.page(p.loginSubmit))
	mux.Handle("GET /t/{tenant}/mfa", p.page(p.mfaPage))
	mux.Handle("POST /t/{tenant}/mfa", p.page(p.mfaSubmit))
	mux.Handle("GET /t/{tenant}/enroll", p.page(p.enrollPage))
	mux.Handle("POST /t/{tenant}/enroll", p.page(p.enrollSubmit))
	mux.Handle("GET /t/{tenant}/consent", p.page(p.consentPage))
	mux.Handle("POST /t/{tenant}/consent", p.page(p.consentSubmit))
	mux.Handle("GET /t/{tenant}/forgot", p.page(p.forgotPage))
	mux.Handle("POST /t/{tenant}/forgot", p.page(p.forgotSubmit))
	mux.Handle("GET /t/{tenant}/reset", p.page(p.resetPage))
	mux.Handle("POST /t/{tenant}/reset", p.page(p.resetSubmit))
	mux.Handle("GET /t/{tenant}/logout", p.page(p.logoutPage))
	mux.Handle("POST /t/{tenant}/logout", p.page(p.logoutSubmit))
	mux.Handle("GET /t/{tenant}/logged-out", p.page(p.loggedOutPage))
	p.accountRoutes(mux)
}

// Request is one page request: the resolved tenant, the chosen language, the CSP nonce and
// the CSRF token of this response.
type Request struct {
	W        http.ResponseWriter
	R        *http.Request
	Tenant   *tutela.Tenant
	Branding sqlstore.Branding
	// Lang is the page's language; set it again (setLanguage) once the pending request's
	// ui_locales are known.
	Lang      string
	Nonce     string
	CSRF      string
	RequestID string
	// FormAction adds sources to the CSP form-action directive (a relying party's redirect
	// origin, see redirectSource).
	FormAction []string
}

// page wraps a handler with what every page needs, in this order: the tenant (unknown or
// disabled: the 404 error page), the CSP nonce and headers, the CSRF secret, and for a POST the
// body limit and the CSRF check (refused: the 403 error page, before the handler runs).
func (p *Pages) page(h func(*Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr := &Request{W: w, R: r, Nonce: randomToken(18), RequestID: middleware.RequestIDFrom(r.Context())}
		if pr.RequestID == "" {
			pr.RequestID = tutela.NewID()
			w.Header().Set(middleware.RequestIDHeader, pr.RequestID)
		}
		pr.Lang, _ = chooseLanguage(r, nil)
		p.setHeaders(w, r, pr.Nonce, nil)
		t, b, err := p.tenant(r.Context(), r.PathValue("tenant"))
		if err != nil {
			if tutela.ErrorCode(err) != tutela.ENOTFOUND {
				p.d.Log.Error("hosted page: tenant lookup", "err", err, "request_id", pr.RequestID)
				p.fail(pr, http.StatusInternalServerError, msgErrInternal)
				return
			}
			p.fail(pr, http.StatusNotFound, msgErrNotFound)
			return
		}
		pr.Tenant, pr.Branding = t, b
		pr.CSRF = p.csrfToken(p.browserSecret(w, r), t.ID)
		p.rememberLanguage(pr)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					p.fail(pr, http.StatusRequestEntityTooLarge, msgErrTooLarge)
					return
				}
				p.fail(pr, http.StatusBadRequest, msgErrBadRequest)
				return
			}
			if !p.checkCSRF(r, t.ID) {
				p.fail(pr, http.StatusForbidden, msgErrCSRF)
				return
			}
		}
		h(pr)
	})
}

// tenant resolves a slug to an active tenant and its branding; anything else is ENOTFOUND.
func (p *Pages) tenant(ctx context.Context, slug string) (*tutela.Tenant, sqlstore.Branding, error) {
	if !sqlstore.ValidSlug(slug) {
		return nil, sqlstore.Branding{}, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	var t *tutela.Tenant
	var b sqlstore.Branding
	err := p.d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if t, err = tx.TenantBySlug(ctx, slug); err != nil {
			return err
		}
		b, err = tx.TenantBranding(ctx, t.ID)
		return err
	})
	switch tutela.ErrorCode(err) {
	case "":
	case tutela.ENOTFOUND, tutela.EWRONGREGION:
		return nil, b, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	default:
		return nil, b, err
	}
	if t.Status != tutela.StatusActive {
		return nil, b, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	return t, b, nil
}

// setLanguage chooses the language again with the relying party's ui_locales.
func (p *Pages) setLanguage(pr *Request, uiLocales []string) {
	pr.Lang, _ = chooseLanguage(pr.R, uiLocales)
}

// rememberLanguage keeps a language chosen with the switch for the next pages.
func (p *Pages) rememberLanguage(pr *Request) {
	if l, switched := chooseLanguage(pr.R, nil); switched {
		http.SetCookie(pr.W, &http.Cookie{Name: langCookie, Value: l, Path: "/", Secure: true, HttpOnly: true,
			SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
	}
}

// view is what the layout and every page template see.
type view struct {
	Lang, Dir, Nonce, CSRF, RequestID string
	// Tenant is the slug (for URLs); TenantName what the pages call it.
	Tenant, TenantName string
	Brand              sqlstore.Branding
	Title              msgKey
	Languages          []langLink
	// Scripts are the asset names of the page's scripts (each gets the nonce).
	Scripts []string
	Data    any
	print   func(key msgKey, args ...any) string
}

// T translates a catalogue key into the page's language.
func (v *view) T(key msgKey, args ...any) string { return v.print(key, args...) }

// render writes the page template name inside the layout.
func (p *Pages) render(pr *Request, status int, name string, title msgKey, data any, scripts ...string) {
	t := p.tmpl[name]
	printer := p.cat.printer(pr.Lang)
	v := &view{Lang: pr.Lang, Dir: "ltr", Nonce: pr.Nonce, CSRF: pr.CSRF, RequestID: pr.RequestID, Title: title,
		Data: data, Scripts: scripts, Languages: p.languageLinks(pr.R, pr.Lang),
		print: func(key msgKey, args ...any) string { return printer.Sprintf(string(key), args...) }}
	if rtl[pr.Lang] {
		v.Dir = "rtl"
	}
	if pr.Tenant != nil {
		v.Tenant, v.TenantName, v.Brand = pr.Tenant.Slug, pr.Tenant.Name, pr.Branding
		if pr.Branding.DisplayName != "" {
			v.TenantName = pr.Branding.DisplayName
		}
	}
	if len(pr.FormAction) > 0 {
		p.setHeaders(pr.W, pr.R, pr.Nonce, pr.FormAction)
	}
	var buf bytes.Buffer
	if t == nil {
		p.d.Log.Error("hosted page: no template", "name", name)
		status, t = http.StatusInternalServerError, p.tmpl["error"]
		v.Data = errorView{Message: msgErrInternal}
	}
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		p.d.Log.Error("hosted page: render", "page", name, "err", err, "request_id", pr.RequestID)
		http.Error(pr.W, "internal error "+pr.RequestID, http.StatusInternalServerError)
		return
	}
	pr.W.Header().Set("Content-Type", "text/html; charset=utf-8")
	pr.W.WriteHeader(status)
	_, _ = pr.W.Write(buf.Bytes())
}

type errorView struct {
	Message msgKey
	// Wait is shown for a throttled attempt ("try again in N minutes").
	WaitMinutes int
	// Back is a link to try again ("" for none).
	Back string
}

// fail renders the error page: a localised explanation and the request ID, never an internal
// message.
func (p *Pages) fail(pr *Request, status int, m msgKey) {
	p.render(pr, status, "error", msgTitleError, errorView{Message: m})
}

// throttled renders the 429 page with the wait, and Retry-After.
func (p *Pages) throttled(pr *Request, wait time.Duration) {
	mins := int((wait + time.Minute - 1) / time.Minute)
	if mins < 1 {
		mins = 1
	}
	pr.W.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.Round(time.Second)/time.Second))))
	p.render(pr, http.StatusTooManyRequests, "error", msgTitleError, errorView{Message: msgErrThrottled, WaitMinutes: mins})
}

// internal logs err and renders the 500 page.
func (p *Pages) internal(pr *Request, err error) {
	p.d.Log.Error("hosted page", "path", pr.R.URL.Path, "err", err, "request_id", pr.RequestID)
	p.fail(pr, http.StatusInternalServerError, msgErrInternal)
}

func (p *Pages) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, err := fs.ReadFile(p.assets, name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Cross-Origin-Resource-Policy", "same-origin")
	_, _ = w.Write(b) // #nosec G705 -- an embedded static asset with nosniff, not request data
}
