package inspect

import (
	"bytes"
	"encoding/binary"

	"tutela/files"
)

// executable names the code format head begins with: the reason (ReasonExecutable or
// ReasonScript) and a phrase for the message, or "" when head is not code.
func executable(head []byte) (reason, what string) {
	switch {
	case isPE(head):
		return files.ReasonExecutable, "a Windows executable"
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return files.ReasonExecutable, "an ELF executable"
	case isMachO(head):
		return files.ReasonExecutable, "a Mach-O executable"
	case bytes.HasPrefix(head, []byte{0xca, 0xfe, 0xba, 0xbe}):
		// Java class files and Mach-O universal binaries share this magic; both are code.
		return files.ReasonExecutable, "a Java class or universal binary"
	case bytes.HasPrefix(head, []byte("\x00asm")):
		return files.ReasonExecutable, "a WebAssembly module"
	case bytes.HasPrefix(head, []byte("#!")), bytes.HasPrefix(head, []byte("\xef\xbb\xbf#!")):
		return files.ReasonScript, "a script"
	case scriptStart(head):
		return files.ReasonScript, "a batch or PowerShell script"
	}
	return "", ""
}

// scriptStarts are first lines that only Windows batch and PowerShell scripts begin with (no
// CSV or prose starts so): "@echo off", "#requires -Version…", a "<#" block comment.
var scriptStarts = [][]byte{[]byte("@echo off"), []byte("@echo on"), []byte("#requires -"), []byte("<#")}

// scriptStart reports whether head's first non-blank line (after a BOM) starts like a batch or
// PowerShell script, ignoring case.
func scriptStart(head []byte) bool {
	line := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = bytes.ToLower(bytes.TrimSpace(line))
	for _, p := range scriptStarts {
		if bytes.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// isPE reports a DOS "MZ" header whose e_lfanew points at a "PE\0\0" signature (or at the
// older NE/LE/LX formats' signatures, code as well).
func isPE(head []byte) bool {
	if len(head) < 0x40 || !bytes.HasPrefix(head, []byte("MZ")) {
		return false
	}
	off := int64(binary.LittleEndian.Uint32(head[0x3c:]))
	if off+4 > int64(len(head)) {
		return false
	}
	sig := head[off : off+4]
	return bytes.Equal(sig, []byte("PE\x00\x00")) || bytes.HasPrefix(sig, []byte("NE")) ||
		bytes.HasPrefix(sig, []byte("LE")) || bytes.HasPrefix(sig, []byte("LX"))
}

// isMachO matches the 32- and 64-bit Mach-O magics in both byte orders and the fat (universal)
// magics, including the 64-bit fat variant.
func isMachO(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	be := binary.BigEndian.Uint32(head)
	switch be {
	case 0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe, 0xbebafeca, 0xcafebabf, 0xbfbafeca:
		return true
	}
	return false
}

// archiveMagic reports whether head begins like an archive or compressed file.
func archiveMagic(head []byte) bool {
	for _, m := range [][]byte{
		[]byte("PK\x03\x04"), []byte("PK\x05\x06"), []byte("PK\x07\x08"), // zip
		{0x1f, 0x8b},                                     // gzip
		[]byte("7z\xbc\xaf\x27\x1c"),                     // 7-Zip
		[]byte("Rar!\x1a\x07"),                           // RAR 4 and 5
		[]byte("BZh"),                                    // bzip2
		{0xfd, '7', 'z', 'X', 'Z', 0x00},                 // xz
		{0x28, 0xb5, 0x2f, 0xfd},                         // zstd
		{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, // OLE compound file (a container)
		[]byte("MSCF"),                                   // cabinet
	} {
		if bytes.HasPrefix(head, m) {
			return true
		}
	}
	return len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar"))
}

// matcher finds any of a few ASCII patterns, case-insensitively, in a stream fed to it in
// pieces: it keeps the last len(longest)-1 bytes so a pattern split across two writes is found.
type matcher struct {
	patterns [][]byte // lower case
	carry    []byte
	buf      []byte
	found    []byte // the first pattern found, or nil
}

func newMatcher(patterns ...string) *matcher {
	m := &matcher{}
	for _, p := range patterns {
		m.patterns = append(m.patterns, bytes.ToLower([]byte(p)))
	}
	return m
}

// Write scans p; it never fails.
func (m *matcher) Write(p []byte) (int, error) {
	if m.found != nil {
		return len(p), nil
	}
	longest := 0
	for _, pat := range m.patterns {
		longest = max(longest, len(pat))
	}
	m.buf = append(append(m.buf[:0], m.carry...), p...)
	lowerASCII(m.buf)
	for _, pat := range m.patterns {
		if bytes.Contains(m.buf, pat) {
			m.found = pat
			return len(p), nil
		}
	}
	keep := min(len(m.buf), longest-1)
	m.carry = append(m.carry[:0], m.buf[len(m.buf)-keep:]...)
	return len(p), nil
}

func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}
