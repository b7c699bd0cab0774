package password

import (
	"bytes"
	"context"
	_ "embed"
)

// commonIndex is the built-in breach list: SHA-1 digests of the 100,000 most common breached
// passwords of at least 8 characters, in the format of ImportIndex (2 MB). commonlist/NOTICE.md
// says where the list comes from, its licence and how to rebuild it.
//
//go:embed commonlist/common.idx
var commonIndex []byte

// CommonPasswords returns the built-in breach list, which works offline and needs no
// configuration, so that the check NIST SP 800-63B §5.1.1.2 and ASVS 6.2.12 ask for is on out
// of the box. It is small next to the HaveIBeenPwned corpus: combine it with the range API or an
// index file (AnyOf) where one is available.
func CommonPasswords() (*Index, error) {
	return newIndex(bytes.NewReader(commonIndex), int64(len(commonIndex)), nil)
}

// anyOf is a Checker reporting a password breached when any of its sources does.
type anyOf []Checker

// AnyOf combines breach sources: a password found by any of them is breached. They are asked
// in order and the first hit ends the check, so put offline sources first: a password the
// built-in list knows never reaches the network. An error from a source fails the check (fail
// closed; RangeClient's fail-open mode turns its own outages into "not found" before that).
// Nil sources are skipped.
func AnyOf(sources ...Checker) Checker {
	var out anyOf
	for _, s := range sources {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (a anyOf) Breached(ctx context.Context, pw string) (bool, error) {
	for _, c := range a {
		hit, err := c.Breached(ctx, pw)
		if err != nil || hit {
			return hit, err
		}
	}
	return false, nil
}
