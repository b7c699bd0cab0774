package compliance

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"text/template"

	"tutela/docs/compliance/templates"
)

// TemplateData is what a document template sees: the report's facts for one tenant, with the
// deployment's controls and recipients alongside the tenant's own.
type TemplateData struct {
	Format              string
	GeneratedAt         string
	Deployment          Deployment
	Tenant              TenantProfile
	Controls            []Control
	Subprocessors       []Subprocessor
	AuditControl        Control
	SubprocessorControl Control
}

// templateData selects r's facts for tenant t.
func templateData(r *Report, t TenantProfile) TemplateData {
	d := TemplateData{Format: r.Format, GeneratedAt: r.GeneratedAt.Format("2006-01-02 15:04 UTC"), Deployment: r.Deployment, Tenant: t}
	for _, c := range r.Controls {
		if c.Tenant == "" || c.Tenant == t.Slug {
			d.Controls = append(d.Controls, c)
		}
		switch {
		case c.ID == CtlAuditIntegrity:
			d.AuditControl = c
		case c.ID == CtlSubprocessors && c.Tenant == t.Slug:
			d.SubprocessorControl = c
		}
	}
	for _, s := range r.Subprocessors {
		if s.Tenant == "" || s.Tenant == t.Slug {
			d.Subprocessors = append(d.Subprocessors, s)
		}
	}
	return d
}

// RenderTemplates fills every template of docs/compliance/templates for each tenant of r,
// returning the documents by file name ("<slug>/dpa.md"). A template that names a value the
// data lacks is an error, never a blank.
func RenderTemplates(r *Report) (map[string][]byte, error) {
	names, err := fs.Glob(templates.FS, "*.md")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	set := template.New("").Option("missingkey=error").Funcs(template.FuncMap{"join": func(s []string) string { return strings.Join(s, ", ") }})
	if set, err = set.ParseFS(templates.FS, "*.md"); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, t := range r.Tenants {
		data := templateData(r, t)
		for _, name := range names {
			var b bytes.Buffer
			if err := set.ExecuteTemplate(&b, name, data); err != nil {
				return nil, fmt.Errorf("template %s for tenant %s: %w", name, t.Slug, err)
			}
			if bytes.Contains(b.Bytes(), []byte("<no value>")) {
				return nil, fmt.Errorf("template %s for tenant %s: a value is missing", name, t.Slug)
			}
			out[path.Join(t.Slug, name)] = b.Bytes()
		}
	}
	return out, nil
}
