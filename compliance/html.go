package compliance

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"strings"
)

//go:embed report.html.tmpl
var reportHTML string

// reportCSS is the page's only style; the CSP admits it by hash, so the file loads nothing and
// runs nothing (default-src 'none', no script anywhere).
const reportCSS = `body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#1a1a1a;padding:0 1em}
h1{margin-bottom:.2em}h3{margin:.2em 0}small{color:#555;font-weight:normal}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:600}dd{margin:0;word-break:break-all}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
.summary td{font-weight:600;text-align:center}
section.control{border-left:6px solid #999;padding:.3em 1em;margin:1.2em 0;page-break-inside:avoid}
.met{border-color:#1b7f3b}.partial{border-color:#b8860b}.gap{border-color:#b22222}.not_applicable{border-color:#888}
td.met{background:#e6f4ea}td.partial{background:#fdf6e3}td.gap{background:#fbeaea}td.not_applicable{background:#f0f0f0}
.status{text-transform:uppercase;font-size:.8em;padding:.1em .4em;border:1px solid currentColor;border-radius:3px}
.close{background:#fbeaea;padding:.3em .8em}.map{color:#444;font-size:.9em}.verify{background:#eef;padding:.5em}
@media print{body{margin:0}}`

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"join": func(s []string) string {
		if len(s) == 0 {
			return "—"
		}
		return strings.Join(s, ", ")
	},
}).Parse(reportHTML))

// CSP is the page's Content-Security-Policy: nothing may load, only its own style applies.
func CSP() string {
	sum := sha256.Sum256([]byte(reportCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; form-action 'none'"
}

// RenderHTML renders r as one self-contained page (unsigned: see SignHTML).
func RenderHTML(r *Report) ([]byte, error) {
	var b bytes.Buffer
	err := reportTmpl.Execute(&b, struct {
		R   *Report
		CSP string
		CSS template.CSS
	}{r, CSP(), template.CSS(reportCSS)})
	return b.Bytes(), err
}
