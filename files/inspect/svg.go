package inspect

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"tutela/files"
)

// maxSVG bounds an SVG whatever the policy: it is parsed as XML, token by token, and one
// token (an element with all its attributes, a text node) is held whole, several times its
// size in memory.
const maxSVG = 4 << 20

// maxSVGDepth bounds element nesting: the decoder keeps a record per open element.
const maxSVGDepth = 256

// checkSVG reads the SVG as an XML token stream. An SVG is a document a browser renders with
// scripting when it is opened directly, so anything that runs code or reaches outside the file is
// refused: script elements, event-handler attributes, javascript: and data: URLs, foreignObject
// (HTML inside), references to other documents, and any DTD (entities: XXE, billion laughs).
func checkSVG(src io.Reader) error {
	cr := &countingReader{r: io.LimitReader(src, maxSVG+1)}
	d := xml.NewDecoder(cr)
	d.Strict = true
	d.Entity = nil
	depth, inStyle := 0, false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if cr.n > maxSVG {
				return files.Refused(files.ReasonTooLarge, "the SVG is larger than %d bytes", maxSVG)
			}
			if depth != 0 {
				return invalidImage("SVG")
			}
			return nil
		}
		if err != nil {
			if cr.n > maxSVG {
				return files.Refused(files.ReasonTooLarge, "the SVG is larger than %d bytes", maxSVG)
			}
			// A read error is reported by finish; anything else is malformed XML, which a
			// browser would not render either but which we do not judge further.
			return invalidImage("SVG")
		}
		switch t := tok.(type) {
		case xml.Directive:
			return files.Refused(files.ReasonXMLEntity, "the SVG declares a document type or entities")
		case xml.ProcInst:
			if t.Target != "xml" {
				// xml-stylesheet loads a style sheet from elsewhere; other instructions have no
				// business in an image.
				return files.Refused(files.ReasonSVGExternal, "the SVG holds a processing instruction")
			}
		case xml.StartElement:
			depth++
			if depth > maxSVGDepth {
				return files.Refused(files.ReasonImageInvalid, "the SVG nests elements deeper than %d", maxSVGDepth)
			}
			switch strings.ToLower(t.Name.Local) {
			// iframe, embed and object are HTML, rendered only through foreignObject, but a
			// browser's parser is lenient: refused wherever they are.
			case "script", "foreignobject", "handler", "listener", "iframe", "embed", "object":
				return files.Refused(files.ReasonSVGScript, "the SVG holds script or embedded HTML")
			case "style":
				inStyle = true
			}
			for _, a := range t.Attr {
				if err := checkSVGAttr(a); err != nil {
					return err
				}
			}
			// <set>/<animate attributeName="href" to="https://..."> changes a link to one the
			// href check never saw.
			for _, a := range t.Attr {
				if strings.EqualFold(a.Name.Local, "attributeName") && strings.Contains(compact(a.Value), "href") {
					return files.Refused(files.ReasonSVGExternal, "the SVG animates a link")
				}
			}
		case xml.EndElement:
			depth--
			inStyle = false
		case xml.CharData:
			if inStyle {
				if err := checkCSS(string(t)); err != nil {
					return err
				}
			}
		}
	}
}

// compact lower-cases v and drops what browsers ignore inside a URL scheme (whitespace and
// control characters: "java\tscript:" runs).
func compact(v string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(v) {
		if c > ' ' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func checkSVGAttr(a xml.Attr) error {
	name := strings.ToLower(a.Name.Local)
	v := compact(a.Value)
	if strings.HasPrefix(name, "on") {
		return files.Refused(files.ReasonSVGScript, "the SVG holds an event handler")
	}
	// Anywhere, not only in href: <animate attributeName="href" values="javascript:..."> sets a
	// link through another attribute.
	if strings.Contains(v, "javascript:") || strings.Contains(v, "vbscript:") {
		return files.Refused(files.ReasonSVGScript, "the SVG holds a javascript: URL")
	}
	switch name {
	case "href", "src":
		if strings.HasPrefix(v, "data:") {
			return files.Refused(files.ReasonSVGScript, "the SVG holds a data: URL")
		}
		if !strings.HasPrefix(v, "#") {
			return files.Refused(files.ReasonSVGExternal, "the SVG refers to another document")
		}
	case "style":
		return checkCSS(a.Value)
	}
	if strings.Contains(v, "url(") {
		return checkCSS(a.Value) // presentation attributes: fill="url(#g)" is fine, url(http:...) is not
	}
	return nil
}

// checkCSS judges a style sheet or style attribute: every url() must point inside the document,
// and @import always reaches out.
func checkCSS(css string) error {
	v := compact(css)
	if strings.Contains(v, "javascript:") || strings.Contains(v, "expression(") {
		return files.Refused(files.ReasonSVGScript, "the SVG's style runs script")
	}
	// CSS escapes ("\75rl(") would hide a url( or @import from the checks below.
	if strings.Contains(v, "@import") || strings.Contains(v, `\`) {
		return files.Refused(files.ReasonSVGExternal, "the SVG's style imports another document")
	}
	for rest := v; ; {
		i := strings.Index(rest, "url(")
		if i < 0 {
			return nil
		}
		rest = strings.TrimLeft(rest[i+4:], `"'`)
		if strings.HasPrefix(rest, "data:") {
			return files.Refused(files.ReasonSVGScript, "the SVG's style holds a data: URL")
		}
		if !strings.HasPrefix(rest, "#") {
			return files.Refused(files.ReasonSVGExternal, "the SVG's style refers to another document")
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
