package inspect

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image/gif"
	"image/png"
	"io"

	"tutela/files"
)

// The image checks read the header for the dimensions (never the pixels: a 30000×30000 PNG of
// zeros is a few KiB and would take gigabytes to decode) and then walk the format's structure to
// its declared end, refusing anything after it: bytes past an image's end are how a PNG becomes
// a ZIP or a script at the same time (polyglot).

func invalidImage(format string) error {
	return files.Refused(files.ReasonImageInvalid, "the %s image is malformed", format)
}

// checkDims judges the dimensions against the policy.
func checkDims(w, h int, res *Result, p *files.Policy) error {
	if w <= 0 || h <= 0 {
		return files.Refused(files.ReasonImageInvalid, "the image has no size")
	}
	if w > p.MaxImageSide || h > p.MaxImageSide || int64(w)*int64(h) > p.MaxImagePixels {
		return files.Refused(files.ReasonImageTooLarge, "the image is %d×%d pixels, past the limit", w, h)
	}
	if res.Width == 0 {
		res.Width, res.Height = w, h
	}
	return nil
}

// atEnd refuses anything left in br after a format's end.
func atEnd(br *bufio.Reader) error {
	if _, err := br.ReadByte(); err == nil {
		return files.Refused(files.ReasonPolyglot, "the file holds data after the image's end")
	}
	return nil
}

func checkPNG(src io.Reader, res *Result, p *files.Policy) error {
	br := bufio.NewReaderSize(src, 32<<10)
	head, _ := br.Peek(64)
	cfg, err := png.DecodeConfig(bytes.NewReader(head))
	if err != nil {
		return invalidImage("PNG")
	}
	if err := checkDims(cfg.Width, cfg.Height, res, p); err != nil {
		return err
	}
	if _, err := br.Discard(8); err != nil {
		return invalidImage("PNG")
	}
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return invalidImage("PNG")
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n > 1<<31-1 {
			return invalidImage("PNG")
		}
		// The CRC is checked so that bytes smuggled inside a chunk are at least a chunk's
		// well-formed data; a PNG decoder would reject them otherwise anyway.
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:])
		if _, err := io.CopyN(crc, br, int64(n)); err != nil {
			return invalidImage("PNG")
		}
		var sum [4]byte
		if _, err := io.ReadFull(br, sum[:]); err != nil || binary.BigEndian.Uint32(sum[:]) != crc.Sum32() {
			return invalidImage("PNG")
		}
		if string(hdr[4:]) == "IEND" {
			return atEnd(br)
		}
	}
}

func checkGIF(src io.Reader, res *Result, p *files.Policy) error {
	br := bufio.NewReaderSize(src, 32<<10)
	head, _ := br.Peek(13 + 3*256)
	cfg, err := gif.DecodeConfig(bytes.NewReader(head))
	if err != nil {
		return invalidImage("GIF")
	}
	if err := checkDims(cfg.Width, cfg.Height, res, p); err != nil {
		return err
	}
	var lsd [13]byte
	if _, err := io.ReadFull(br, lsd[:]); err != nil {
		return invalidImage("GIF")
	}
	if err := skipColorTable(br, lsd[10]); err != nil {
		return err
	}
	for {
		b, err := br.ReadByte()
		if err != nil {
			return invalidImage("GIF")
		}
		switch b {
		case 0x21: // extension: label, then sub-blocks
			if _, err := br.ReadByte(); err != nil {
				return invalidImage("GIF")
			}
		case 0x2c: // image descriptor, optional local color table, LZW code size, sub-blocks
			var d [9]byte
			if _, err := io.ReadFull(br, d[:]); err != nil {
				return invalidImage("GIF")
			}
			w, h := int(binary.LittleEndian.Uint16(d[4:])), int(binary.LittleEndian.Uint16(d[6:]))
			if err := checkDims(w, h, res, p); err != nil {
				return err
			}
			if err := skipColorTable(br, d[8]); err != nil {
				return err
			}
			if _, err := br.ReadByte(); err != nil {
				return invalidImage("GIF")
			}
		case 0x3b: // trailer
			return atEnd(br)
		default:
			return invalidImage("GIF")
		}
		if err := skipSubBlocks(br); err != nil {
			return err
		}
	}
}

func skipColorTable(br *bufio.Reader, flags byte) error {
	if flags&0x80 == 0 {
		return nil
	}
	if _, err := br.Discard(3 << (flags&7 + 1)); err != nil {
		return invalidImage("GIF")
	}
	return nil
}

func skipSubBlocks(br *bufio.Reader) error {
	for {
		n, err := br.ReadByte()
		if err != nil {
			return invalidImage("GIF")
		}
		if n == 0 {
			return nil
		}
		if _, err := br.Discard(int(n)); err != nil {
			return invalidImage("GIF")
		}
	}
}

// checkJPEG walks the marker segments (ITU-T T.81 annex B) and the entropy-coded data after each
// start of scan up to EOI. Dimensions come from the SOF segments, wherever they are (an APP
// segment before them may be 64 KiB, and there may be many).
//
// A JPEG whose first image carries a Multi-Picture Format index (CIPA DC-007: an APP2 "MPF"
// segment) may be followed by further complete JPEGs: phones store HDR gain maps (Ultra HDR) and
// previews that way. Each must walk to its own EOI; anything else after the end is a polyglot.
func checkJPEG(src io.Reader, res *Result, p *files.Policy) error {
	br := bufio.NewReaderSize(src, 32<<10)
	mpf, err := walkJPEG(br, res, p)
	for i := 0; err == nil && mpf && i < maxMPFImages; i++ {
		if b, perr := br.Peek(2); perr != nil || b[0] != 0xff || b[1] != 0xd8 {
			break
		}
		_, err = walkJPEG(br, res, p)
	}
	if err != nil {
		return err
	}
	return atEnd(br)
}

// maxMPFImages bounds the images after the first in a multi-picture JPEG.
const maxMPFImages = 8

// walkJPEG walks one JPEG from SOI to EOI and reports whether it has an MPF segment.
func walkJPEG(br *bufio.Reader, res *Result, p *files.Policy) (mpf bool, _ error) {
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil || soi != [2]byte{0xff, 0xd8} {
		return mpf, invalidImage("JPEG")
	}
	sawFrame := false
	var marker byte
	next := func() error { // reads a marker: 0xff, optional 0xff fill, the code
		b, err := br.ReadByte()
		if err != nil || b != 0xff {
			return invalidImage("JPEG")
		}
		for b == 0xff {
			if b, err = br.ReadByte(); err != nil {
				return invalidImage("JPEG")
			}
		}
		marker = b
		return nil
	}
	if err := next(); err != nil {
		return mpf, err
	}
	for {
		switch {
		case marker == 0xd9: // EOI
			if !sawFrame {
				return mpf, invalidImage("JPEG")
			}
			return mpf, nil
		case marker == 0x01 || 0xd0 <= marker && marker <= 0xd7: // no length
			if err := next(); err != nil {
				return mpf, err
			}
			continue
		case marker == 0x00 || marker == 0xd8:
			return mpf, invalidImage("JPEG")
		}
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return mpf, invalidImage("JPEG")
		}
		n := int(binary.BigEndian.Uint16(l[:])) - 2
		if n < 0 {
			return mpf, invalidImage("JPEG")
		}
		isSOF := 0xc0 <= marker && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc
		if isSOF {
			if n < 5 {
				return mpf, invalidImage("JPEG")
			}
			f, err := br.Peek(5)
			if err != nil {
				return mpf, invalidImage("JPEG")
			}
			if err := checkDims(int(binary.BigEndian.Uint16(f[3:])), int(binary.BigEndian.Uint16(f[1:])), res, p); err != nil {
				return mpf, err
			}
			sawFrame = true
		}
		if marker == 0xe2 && n >= 4 {
			if b, err := br.Peek(4); err == nil && string(b) == "MPF\x00" {
				mpf = true
			}
		}
		if _, err := br.Discard(n); err != nil {
			return mpf, invalidImage("JPEG")
		}
		if marker != 0xda { // SOS: entropy-coded data follows
			if err := next(); err != nil {
				return mpf, err
			}
			continue
		}
		m, err := skipEntropy(br)
		if err != nil {
			return mpf, err
		}
		marker = m
	}
}

// skipEntropy reads entropy-coded data up to the next marker that is not a stuffed 0xff00 or a
// restart marker, and returns that marker's code.
func skipEntropy(br *bufio.Reader) (byte, error) {
	for {
		chunk, _ := br.Peek(br.Buffered())
		if len(chunk) == 0 {
			if _, err := br.Peek(1); err != nil {
				return 0, invalidImage("JPEG")
			}
			continue
		}
		i := bytes.IndexByte(chunk, 0xff)
		if i < 0 {
			_, _ = br.Discard(len(chunk))
			continue
		}
		_, _ = br.Discard(i + 1)
		b, err := br.ReadByte()
		for err == nil && b == 0xff {
			b, err = br.ReadByte()
		}
		if err != nil {
			return 0, invalidImage("JPEG")
		}
		if b == 0x00 || 0xd0 <= b && b <= 0xd7 {
			continue
		}
		return b, nil
	}
}

// checkWebP walks the RIFF container: the RIFF size must cover the chunks exactly, and the
// first chunk (VP8, VP8L or VP8X) gives the dimensions.
func checkWebP(src io.Reader, res *Result, p *files.Policy) error {
	br := bufio.NewReaderSize(src, 32<<10)
	var h [12]byte
	if _, err := io.ReadFull(br, h[:]); err != nil || string(h[:4]) != "RIFF" || string(h[8:]) != "WEBP" {
		return invalidImage("WebP")
	}
	left := int64(binary.LittleEndian.Uint32(h[4:])) - 4
	first := true
	for left > 0 {
		var c [8]byte
		if left < 8 {
			return invalidImage("WebP")
		}
		if _, err := io.ReadFull(br, c[:]); err != nil {
			return invalidImage("WebP")
		}
		n := int64(binary.LittleEndian.Uint32(c[4:]))
		padded := n + n&1
		left -= 8 + padded
		if left < 0 {
			return invalidImage("WebP")
		}
		if first {
			w, hgt, err := webpDims(br, string(c[:4]), n)
			if err != nil {
				return err
			}
			if err := checkDims(w, hgt, res, p); err != nil {
				return err
			}
			first = false
		}
		if _, err := io.CopyN(io.Discard, br, padded); err != nil {
			return invalidImage("WebP")
		}
	}
	if first {
		return invalidImage("WebP")
	}
	return atEnd(br)
}

// webpDims reads (without consuming) the dimensions from the first chunk's payload (the WebP
// container specification, "Simple File Format" and "Extended File Format").
func webpDims(br *bufio.Reader, fourcc string, n int64) (int, int, error) {
	bad := invalidImage("WebP")
	switch fourcc {
	case "VP8 ":
		b, err := br.Peek(10)
		if err != nil || n < 10 || !bytes.Equal(b[3:6], []byte{0x9d, 0x01, 0x2a}) {
			return 0, 0, bad
		}
		return int(binary.LittleEndian.Uint16(b[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(b[8:]) & 0x3fff), nil
	case "VP8L":
		b, err := br.Peek(5)
		if err != nil || n < 5 || b[0] != 0x2f {
			return 0, 0, bad
		}
		v := binary.LittleEndian.Uint32(b[1:])
		return int(v&0x3fff) + 1, int(v>>14&0x3fff) + 1, nil
	case "VP8X":
		b, err := br.Peek(10)
		if err != nil || n < 10 {
			return 0, 0, bad
		}
		w := int(b[4]) | int(b[5])<<8 | int(b[6])<<16
		h := int(b[7]) | int(b[8])<<8 | int(b[9])<<16
		return w + 1, h + 1, nil
	}
	return 0, 0, bad
}
