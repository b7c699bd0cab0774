package inspect

import (
	"bytes"
	"io"
	"unicode/utf8"

	"tutela/files"
)

// textHTML are tags that make a browser, or a spreadsheet's HTML import, treat text as a page.
var textHTML = []string{"<script", "<html", "<iframe", "<object", "<embed"}

// checkText requires UTF-8 without NUL bytes and no HTML tags, streaming: a rune or a tag split
// across two reads is judged whole.
func checkText(src io.Reader) error {
	html := newMatcher(textHTML...)
	buf := make([]byte, 64<<10)
	carry := 0 // bytes of an incomplete rune kept at the start of buf
	for {
		n, err := src.Read(buf[carry:])
		chunk := buf[:carry+n]
		_, _ = html.Write(buf[carry : carry+n])
		if html.found != nil {
			return files.Refused(files.ReasonHTML, "the text holds HTML")
		}
		if bytes.IndexByte(chunk, 0) >= 0 {
			return files.Refused(files.ReasonTextInvalid, "the text holds NUL bytes")
		}
		end := len(chunk)
		if err == nil {
			// Keep a possibly incomplete rune at the end for the next read.
			for i := len(chunk) - 1; i >= 0 && i >= len(chunk)-utf8.UTFMax+1; i-- {
				if utf8.RuneStart(chunk[i]) {
					if !utf8.FullRune(chunk[i:]) {
						end = i
					}
					break
				}
			}
		}
		if !utf8.Valid(chunk[:end]) {
			return files.Refused(files.ReasonTextInvalid, "the text is not valid UTF-8")
		}
		carry = copy(buf, chunk[end:])
		if err != nil {
			return nil // io.EOF, or a read error finish reports
		}
	}
}
