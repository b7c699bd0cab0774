//go:build ignore

// gen builds common.idx, the breach index embedded in package password, from a ranked list of
// breached passwords (one per line, most common first):
//
//	go run password/commonlist/gen.go SOURCE.txt password/commonlist/common.idx
//
// It keeps the first 100,000 passwords of at least 8 code points (the shortest any policy
// accepts, so shorter ones would only take space) and writes their SHA-1 digests in the format
// of `tutela breach import`. See NOTICE.md for the source used and its licence.
package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"tutela/password"
)

const (
	keep      = 100000
	minLength = 8
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go run gen.go SOURCE.txt OUT.idx")
		os.Exit(2)
	}
	in, err := os.Open(os.Args[1])
	if err != nil {
		fail(err)
	}
	defer in.Close()
	var hashes strings.Builder
	n := 0
	sc := bufio.NewScanner(in)
	for sc.Scan() && n < keep {
		pw := strings.TrimSuffix(sc.Text(), "\r")
		if utf8.RuneCountInString(pw) < minLength {
			continue
		}
		sum := sha1.Sum([]byte(pw))
		hashes.WriteString(hex.EncodeToString(sum[:]) + "\n")
		n++
	}
	if err := sc.Err(); err != nil {
		fail(err)
	}
	out, err := os.Create(os.Args[2])
	if err != nil {
		fail(err)
	}
	written, err := password.ImportIndex(strings.NewReader(hashes.String()), out)
	if err != nil {
		fail(err)
	}
	if err := out.Close(); err != nil {
		fail(err)
	}
	fmt.Printf("%d passwords read, %d distinct hashes written\n", n, written)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}
