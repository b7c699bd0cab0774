// Package corpus names the hostile and good files of files/inspect/testdata (made by
// testdata/gen.go) and the reason each hostile one is refused for, so the inspector's own tests
// and the end-to-end upload tests judge the same files against the same table.
package corpus

import (
	"path/filepath"
	"runtime"

	"tutela/files"
)

// EICAR is the one hostile file inspection accepts (it is valid text): the malware scanner
// refuses it.
const EICAR = "eicar.txt"

// Hostile is every file of testdata/hostile and the reason an upload of it is refused for.
var Hostile = map[string]string{
	"eicar.txt":                 files.ReasonMalware,
	"pe-renamed.png":            files.ReasonExecutable,
	"elf-named.pdf":             files.ReasonExecutable,
	"mach-o.jpg":                files.ReasonExecutable,
	"batch-as.csv":              files.ReasonScript,
	"shebang.txt":               files.ReasonScript,
	"html-as.csv":               files.ReasonHTML,
	"png-zip-polyglot.png":      files.ReasonPolyglot,
	"jpeg-trailer.jpg":          files.ReasonPolyglot,
	"bomb.png":                  files.ReasonImageTooLarge,
	"pdf-html-polyglot.pdf":     files.ReasonPDFHTML,
	"pdf-javascript.pdf":        files.ReasonPDFJavaScript,
	"pdf-javascript-hex.pdf":    files.ReasonPDFJavaScript,
	"pdf-objstm-javascript.pdf": files.ReasonPDFJavaScript,
	"pdf-launch.pdf":            files.ReasonPDFLaunch,
	"pdf-embedded-file.pdf":     files.ReasonPDFEmbeddedFile,
	"svg-script.svg":            files.ReasonSVGScript,
	"svg-onload.svg":            files.ReasonSVGScript,
	"svg-external-entity.svg":   files.ReasonXMLEntity,
	"svg-external-href.svg":     files.ReasonSVGExternal,
	"docx-macro.docx":           files.ReasonOfficeMacro,
	"xlsm-macro.xlsm":           files.ReasonOfficeMacro,
	"zip-bomb.zip":              files.ReasonArchiveBomb,
	"nested-zip-bomb.zip":       files.ReasonArchiveNested,
	"zip-traversal.zip":         files.ReasonArchiveInvalid,
	"zip-exe.zip":               files.ReasonExecutable,
	// The security review's findings.
	"pdf-objstm-indirect-filter.pdf": files.ReasonArchiveInvalid,
	"pdf-objstm-untyped.pdf":         files.ReasonArchiveInvalid,
	"pdf-encrypted-objstm.pdf":       files.ReasonArchiveInvalid,
	"pdf-zip-trailer.pdf":            files.ReasonPolyglot,
	"png-chunk-zip.png":              files.ReasonPolyglot,
	"zip-hidden-entry.zip":           files.ReasonArchiveInvalid,
	"zip-html.zip":                   files.ReasonHTML,
	"zip-html-content.zip":           files.ReasonHTML,
	"zip-disk-image.zip":             files.ReasonExecutable,
}

// Dir is the absolute path of testdata/<kind> ("hostile" or "good"), wherever the caller runs.
func Dir(kind string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", kind)
}
