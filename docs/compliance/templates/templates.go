// Package templates embeds the document templates `tutela compliance templates` fills from a
// compliance report (Go text/template; compliance.RenderTemplates gives them their data).
package templates

import "embed"

// FS holds every *.md template of this directory.
//
//go:embed *.md
var FS embed.FS
