// Package inspect judges an uploaded file's content as it streams past (issue 17): Inspect reads
// it once, refuses as soon as it can (the caller then aborts the upload), and otherwise says
// what the content is (Result). Every refusal is files.Refused with one files.Reason* code.
//
// # What is checked, in order
//
//  1. Code, whatever the name or declared type: PE (an "MZ" header whose e_lfanew points at
//     "PE\0\0", NE, LE or LX), ELF, Mach-O (32/64-bit, both byte orders, fat/universal incl.
//     64-bit fat), Java class (shares 0xCAFEBABE with fat Mach-O), WebAssembly, Java archives
//     → executable; a "#!" start (also after a UTF-8 BOM) → script. That is the only script
//     detected by content: see Limits.
//  2. HTML or XHTML as mimetype sees it → html.
//  3. No bytes → empty; a name that is empty, ".", "..", over 255 bytes, not UTF-8, or holds a
//     control character, a bidirectional formatting character (U+202E makes "gpj.exe" read as
//     "exe.jpg") or a path separator → name_invalid; bytes that are not text under a text name
//     or declaration → text_invalid.
//  4. The type from magic bytes (github.com/gabriel-vasile/mimetype over the first 64 KiB,
//     mapped to files.Type*; text/plain becomes text/csv when declared or named so, and CSV
//     becomes text/plain likewise). SVG is judged in full before the allow-list so a hostile SVG
//     is refused for what it holds. Then the allow-list → type_not_allowed; a macro-enabled
//     Office name (.docm, .xlsm, ...) or declared type → office_macro; a declared type (aliases
//     such as image/jpg understood, parameters ignored, "" and application/octet-stream meaning
//     "not declared", an unparsable one refused) other than the detected → type_mismatch; an
//     extension outside files.Extensions[type] → extension_mismatch.
//  5. Size: bytes are counted as they stream; at Policy.SizeLimit(type)+1 → too_large, and
//     nothing more is read from the uploader.
//  6. Per type, reading to the end, as the sections below say.
//
// # Images
//
// PNG, JPEG, GIF, WebP: dimensions from the header (image/png and image/gif DecodeConfig; JPEG
// SOF segments and WebP VP8/VP8L/VP8X headers parsed here, as WebP has no decoder in the standard
// library) against MaxImageSide and MaxImagePixels → image_too_large, without decoding pixels (a
// decompression bomb is refused by its header). The structure is walked to its end (PNG chunks
// with CRCs to IEND; JPEG segments and entropy-coded data to EOI; GIF blocks to the trailer,
// every frame's size judged; WebP's RIFF size), and any byte after it → polyglot; a malformed
// structure → image_invalid. A JPEG with a Multi-Picture Format index (APP2 "MPF", as phones
// write for HDR gain maps) may be followed by up to 8 further JPEGs, each walked the same way.
//
// Any type but the zip-based ones that also opens as a ZIP → polyglot, wherever the archive
// hides (a PNG ancillary chunk followed by IEND, a GIF comment, after a PDF's %%EOF and before
// another): ZIP readers find the end-of-central-directory record in the last 64 KiB, bytes after
// it allowed, and the directory it points at. Every such record in the stream whose central
// directory starts where it says (end − size, or the absolute offset; kept bytes cover a
// directory of ~64 KiB) counts, and so, failing closed, does one in the last 64 KiB whose
// directory lies before the bytes kept; a ZIP64 locator counts too. A record with no directory
// where it points opens nothing and passes.
//
// # PDF
//
// Every name token, #xx escapes decoded and compared case-sensitively: /JavaScript or /JS →
// pdf_javascript, /Launch → pdf_launch_action, /EmbeddedFile(s) → pdf_embedded_file. Streams
// after /FlateDecode are inflated (total capped at 16 × the PDF size limit and at
// MaxArchiveExpanded → archive_bomb), their PNG or TIFF predictor undone (8-bit components), and
// their names judged too, which uncovers keys hidden in object streams. An object stream
// (/Type /ObjStm, or any stream dictionary with /N and /First, as pdf.js reads any stream a
// cross-reference entry points into as one) that cannot be read so (a filter other than one
// FlateDecode, a predictor not undone, or data that is not zlib, as when encrypted) →
// archive_invalid, since it could hide any key. A stream whose /Filter or /DecodeParms (or
// pdf.js's /F and /DP), or anything inside them, is an indirect reference → archive_invalid:
// readers resolve it, this scan would pass the data raw. An encrypted PDF (/Encrypt) that holds
// an object stream, or a stream that does not inflate or is under a data filter not undone
// (ASCIIHex, ASCII85, LZW, RunLength, Crypt) → archive_invalid: its names are readable except
// in object streams, but /Encrypt comes in the trailer, after the streams, and ciphertext can
// look like zlib data. In practice every encrypted PDF with compressed streams is refused; one
// whose only streams are images (DCT, JPX, JBIG2, CCITT) passes. "<html", "<script", "<body",
// "<iframe", "<!doctype html" anywhere in the raw bytes, any case → pdf_html.
//
// # SVG
//
// At most 4 MiB and 256 levels deep (else too_large or image_invalid), read as an encoding/xml token
// stream in strict mode. Any DOCTYPE or other directive → xml_entity; <script>, <foreignObject>,
// <iframe>, <embed>, <object>, XML Events handler/listener, on* attributes, javascript:/vbscript:
// in any attribute (whitespace and control characters removed, any case), data: in href/src or
// CSS url() → svg_script; href/src not starting with "#", CSS url() not starting with "#",
// @import, CSS escapes (backslashes, which could spell either), processing instructions other
// than the XML declaration (xml-stylesheet) → svg_external_reference; unknown entities or
// malformed XML → image_invalid.
//
// # Archives
//
// ZIP, DOCX, XLSX, PPTX: buffered up to MaxArchiveSize; more than MaxArchiveEntries →
// archive_too_many_entries; unsafe names (absolute, "..", backslashes, drive letters, NUL),
// duplicates (case-insensitively), entries overlapping one another or running past the end,
// encrypted entries, compression other than store/deflate, a size or CRC other than the header's,
// bytes after an entry's deflate stream, or an Office type without its main part →
// archive_invalid. The archive must be its listed entries and nothing else: from byte 0, each
// entry's local header (name, method, flags, CRC and sizes as listed; with a data descriptor the
// local CRC and sizes may be zero), data and data descriptor back to back, then the central
// directory, then the end record with its comment running to the last byte; any gap, prefix,
// suffix or unlisted local entry (which streaming extractors that walk local headers would
// extract) → archive_invalid. Every entry is inflated through a counter (header sizes are never
// trusted): total past MaxArchiveExpanded, or expanded/compressed past MaxArchiveRatio for an entry or the whole archive once over 1 MiB expanded → archive_bomb.
// An entry whose first KiB is an archive (zip, gzip, 7z, rar, bzip2, xz, zstd, OLE, cab, tar) or
// whose name has an archive extension → nested_archive; executable magic (as in 1) or an
// extension of something that runs code when opened (.exe, .dll, .js, .jse, .vbs, .vbe, .wsf,
// .ps1, .psm1, .bat, .cmd, .sh, .jar, .scr, .hta, .lnk, .url, .reg, .chm, .one, .xll, .msi,
// .msix, .appx, .cpl, .pif, .gadget, .application, .desktop, .command, disk images .img .vhd
// .vhdx, ...; a directory named *.app, a macOS application) → executable, a "#!" start →
// script; a web page by name (.html, .htm, .xhtml, .mht, .svg, ...: HTML smuggling) or HTML
// content as mimetype sees it under any name → html (an .svg part of an Office document is its
// picture, which Office renders without script, and passes); vbaProject.bin, vbaData.xml,
// activeX or macrosheets parts, or [Content_Types].xml and .rels parts naming VBA,
// macro-enabled, macro sheet or ActiveX types →
// office_macro; a .rels part with an external target that is not a hyperlink (remote templates
// and OLE objects, as in Follina) → office_macro, with a DTD → xml_entity, malformed →
// archive_invalid.
//
// # Text and CSV
//
// Valid UTF-8 (a BOM allowed) without NUL bytes, else text_invalid; "<script",
// "<html", "<iframe", "<object", "<embed" anywhere, any case → html.
//
// Patterns split across reads are found: the matchers carry the tail of each read.
//
// # Limits (what is not checked)
//
//   - PDFs: only FlateDecode is undone. Streams other than object streams under another filter
//     (LZW, ASCIIHex, ASCII85, RunLength, a chain) are scanned raw, and so is inflated data
//     under a predictor with other than 8-bit components; a corrupt deflate stream is judged up
//     to the corruption. An encrypted PDF whose only streams are images passes, and HTML inside
//     its encrypted image streams is not seen. Names are found everywhere
//     (strings, comments, binary stream data too), so rare false refusals are possible. Script
//     that is not a JavaScript action (a URI action with a javascript: URL, XFA form scripts
//     inside XML streams) is not judged.
//   - GIF and APNG frame counts are not bounded (each frame's size is); a thumbnailer that
//     decodes every frame bears that cost.
//   - Obfuscation is not undone beyond PDF name escapes and SVG/URL whitespace: HTML inside text
//     written with entities, SVG content in CSS comments, or script assembled by a viewer.
//   - Images: pixel data is never decoded, so a malformed IDAT or entropy-coded segment that a
//     decoder would reject passes; data after a JPEG's EOI that is not an MPF image (some
//     cameras pad with zeros) is refused as a polyglot; metadata (EXIF, XMP, comments) is not judged beyond the structure.
//   - Scripts: detected by content are a "#!" start and a first line that only batch and
//     PowerShell scripts begin with ("@echo off", "#requires -", "<#"). Other batch, PowerShell
//     or JavaScript source in a text or CSV file is accepted as text: it runs only under its own
//     extension, which text types cannot have (extension_mismatch), and inside archives such
//     names are refused.
//   - Archives: entries are judged by magic, HTML content and name, not by their content's type
//     otherwise (a PDF with JavaScript, or an SVG with script named .png, inside a ZIP is
//     accepted); Office documents embedding other Office documents are
//     refused as nested archives. OLE compound files (legacy .doc/.xls) are not a supported type.
//   - Office: DDE fields, formulas and OLE packages' contents are not judged (embedded OLE
//     objects and documents are refused as nested archives).
//   - Text: CSV formula injection (cells starting with =, +, -, @) is not judged; that is the
//     exporting application's concern.
//   - Malware signatures: that is the scanner's job (files/clamd); the EICAR test file passes
//     inspection.
package inspect
