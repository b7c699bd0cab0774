package privacy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"tutela/vault"
)

// Synthetic values for an anonymized copy (`tutela export --anonymize`, docs/staging.md).
//
// Every value is derived with HMAC-SHA256 under a 256-bit key drawn from crypto/rand when the
// run starts and never written anywhere: within one run the same value of the same type always
// gives the same synthetic value (joins and duplicates survive: two subjects sharing a phone
// still share one), and once the run ends nobody, its operator included, can recompute a
// mapping, so a synthetic value cannot be traced back by guessing originals. Two runs give
// unrelated values.
//
// A synthetic value keeps the original's shape and nothing else: its type (it passes
// ValidateValue), its length, where its spaces, line breaks and punctuation are, which
// characters are letters (upper or lower case) and which digits. Letters and digits themselves
// come from the key, never from the original. A date is any day from 1900 to 2029; an e-mail
// address keeps its form but ends in the reserved .test domain (RFC 6761), so staging cannot
// mail real people.
//
// Chance matches are refused too: a candidate equal to an original of at least
// SyntheticGuardLen characters held anywhere in the run (Forbid), containing its own original,
// already given to another original (two people keep distinct values), or a card-like number
// passing the Luhn check is replaced by the next derivation.

// SyntheticGuardLen is the length, in characters, from which an original value is kept out of
// every synthetic value. Shorter values (a one-digit number) cannot be: every one of them is some
// person's value in a large enough population; a synthetic value still never equals its own.
const SyntheticGuardLen = 4

// syntheticAttempts bounds the derivations tried for one value before the run fails.
const syntheticAttempts = 64

// Synthetic dates fall in [syntheticDateFrom, syntheticDateFrom + syntheticDateDays).
var syntheticDateFrom = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

const syntheticDateDays = 47482 // 1900-01-01 … 2029-12-31

// syntheticDomain ends every synthetic e-mail address: RFC 6761 reserves .test, which never
// resolves, so no message sent from staging reaches anyone.
const syntheticDomain = "test"

// ErrSyntheticSpace means no acceptable synthetic value was found for a value within
// syntheticAttempts derivations (its shape allows too few values unlike every original).
var ErrSyntheticSpace = errors.New("privacy: no synthetic value unlike every original value; the run stops")

// Synthesizer makes one run's synthetic values. It is not safe for concurrent use.
type Synthesizer struct {
	key []byte
	// forbidden holds the originals of at least SyntheticGuardLen characters: "r:" + lower
	// case, and "n:" + type + normalized form.
	forbidden map[string]struct{}
	// used maps a synthetic value (type + normalized) to the original (type + normalized) it
	// was given to; done caches each original's value.
	used map[string]string
	done map[string]string
}

// NewSynthesizer starts a run with a fresh random key.
func NewSynthesizer() (*Synthesizer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("privacy: synthetic key: %w", err)
	}
	return &Synthesizer{key: key, forbidden: map[string]struct{}{}, used: map[string]string{}, done: map[string]string{}}, nil
}

// Forget ends the run: the key and every value seen are dropped, so the mapping cannot be
// recomputed even from this process's memory later on. The Synthesizer is unusable after.
func (s *Synthesizer) Forget() {
	clear(s.key)
	s.key = nil
	clear(s.forbidden)
	clear(s.used)
	clear(s.done)
}

// String and GoString keep the run key out of logs and %v.
func (*Synthesizer) String() string   { return "privacy.Synthesizer[redacted]" }
func (*Synthesizer) GoString() string { return "privacy.Synthesizer[redacted]" }

// Forbid records an original value of type t, so that no synthetic value of the run equals it.
// Call it for every original before asking for the first synthetic value.
func (s *Synthesizer) Forbid(t FieldType, v string) {
	if utf8.RuneCountInString(v) < SyntheticGuardLen {
		return
	}
	s.forbidden["r:"+strings.ToLower(v)] = struct{}{}
	s.forbidden["n:"+string(t)+":"+Normalize(t, v)] = struct{}{}
}

func (s *Synthesizer) isForbidden(t FieldType, cand string) bool {
	if _, ok := s.forbidden["r:"+strings.ToLower(cand)]; ok {
		return true
	}
	_, ok := s.forbidden["n:"+string(t)+":"+Normalize(t, cand)]
	return ok
}

// Value returns the synthetic value of v, a valid value of type t. The error never contains v.
func (s *Synthesizer) Value(t FieldType, v string) (string, error) {
	if err := ValidateValue("value", t, v); err != nil {
		return "", fmt.Errorf("privacy: synthetic %s value: the original is not a valid %s", t, t)
	}
	if s.key == nil {
		return "", errors.New("privacy: the synthetic run has ended")
	}
	norm := Normalize(t, v)
	key := string(t) + ":" + norm
	if out, ok := s.done[key]; ok {
		return out, nil
	}
	ownLower := strings.ToLower(v)
	for attempt := range syntheticAttempts {
		cand := s.candidate(t, v, norm, attempt)
		cn := string(t) + ":" + Normalize(t, cand)
		switch {
		case ValidateValue("value", t, cand) != nil, cn == key, s.isForbidden(t, cand),
			utf8.RuneCountInString(v) >= SyntheticGuardLen && strings.Contains(strings.ToLower(cand), ownLower),
			isCardLike(cand) && luhnValid(cand):
			continue
		}
		if owner, ok := s.used[cn]; ok && owner != key {
			continue
		}
		s.used[cn], s.done[key] = key, cand
		return cand, nil
	}
	return "", fmt.Errorf("%w (type %s)", ErrSyntheticSpace, t)
}

// stream is an HMAC-SHA256 keystream bound to (part, type, normalized value, attempt): block i
// is HMAC(key, those, i).
type stream struct {
	s               *Synthesizer
	part, t, v, att string
	block           int
	buf             []byte
}

func (s *Synthesizer) stream(part string, t FieldType, norm string, attempt int) *stream {
	return &stream{s: s, part: part, t: string(t), v: norm, att: strconv.Itoa(attempt)}
}

func (st *stream) byte() byte {
	if len(st.buf) == 0 {
		m := hmac.New(sha256.New, st.s.key)
		m.Write(vault.LengthPrefixed("tutela/synthetic/v1", st.part, st.t, st.v, st.att, strconv.Itoa(st.block)))
		st.buf = m.Sum(nil)
		st.block++
	}
	b := st.buf[0]
	st.buf = st.buf[1:]
	return b
}

// below returns a uniform number in [0, n) for n ≤ 256, by rejection sampling.
func (st *stream) below(n int) int {
	limit := 256 - 256%n
	for {
		if b := int(st.byte()); b < limit {
			return b % n
		}
	}
}

func (st *stream) letter(upper bool) byte {
	c := byte('a' + st.below(26)) // #nosec G115 -- 'a' + a value below 26 is a lower-case letter
	if upper {
		c -= 'a' - 'A'
	}
	return c
}

func (st *stream) digit() byte { return byte('0' + st.below(10)) } // #nosec G115 -- '0' + a value below 10 is a digit

// candidate is derivation attempt of v's synthetic value.
func (s *Synthesizer) candidate(t FieldType, v, norm string, attempt int) string {
	st := s.stream("value", t, norm, attempt)
	switch t {
	case FieldDate:
		var b [8]byte
		for i := range b {
			b[i] = st.byte()
		}
		day := binary.BigEndian.Uint64(b[:]) % syntheticDateDays
		return syntheticDateFrom.AddDate(0, 0, int(day)).Format(time.DateOnly)
	case FieldEmail:
		return s.email(v, norm, attempt)
	case FieldNumber:
		return number(st, v, attempt)
	}
	return shape(st, v)
}

// shape replaces every letter by a random ASCII letter of the same case and every digit by a
// random digit, and keeps ASCII punctuation, spaces and line breaks; combining marks are
// dropped and any other character becomes ".". A name, address, text, phone or national ID so
// keeps its type and length.
func shape(st *stream, v string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case unicode.IsDigit(r):
			b.WriteByte(st.digit())
		case unicode.IsLetter(r):
			b.WriteByte(st.letter(unicode.IsUpper(r)))
		case unicode.IsMark(r):
		case r < utf8.RuneSelf && (unicode.IsPunct(r) || unicode.IsSymbol(r) || r == ' ' || r == '\n' || r == '\r' || r == '\t'):
			b.WriteRune(r)
		default:
			b.WriteByte('.')
		}
	}
	return b.String()
}

// number keeps the sign and the count of integer and fraction digits (no leading zero), with one
// more integer digit per 8 attempts past the 32nd when a short number's space is crowded.
func number(st *stream, v string, attempt int) string {
	neg := strings.HasPrefix(v, "-")
	ip, fp, hasFrac := strings.Cut(strings.TrimPrefix(v, "-"), ".")
	n := min(len(ip)+max(0, attempt-31)/8, 30)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i := range n {
		d := st.digit()
		if i == 0 && n > 1 {
			d = byte('1' + st.below(9)) // #nosec G115 -- '1' + a value below 9 is a digit
		}
		b.WriteByte(d)
	}
	if hasFrac {
		b.WriteByte('.')
		for range fp {
			b.WriteByte(st.digit())
		}
	}
	return b.String()
}

// email shapes the local part from the whole address and the domain from the domain alone, so
// colleagues keep sharing a (synthetic) domain; the top-level label becomes "test".
func (s *Synthesizer) email(v, norm string, attempt int) string {
	local, domain, _ := strings.Cut(v, "@")
	_, normDomain, _ := strings.Cut(norm, "@")
	out := shape(s.stream("email-local", FieldEmail, norm, attempt), local)
	labels := strings.Split(domain, ".")
	ds := s.stream("email-domain", FieldEmail, normDomain, 0)
	if len(labels) > 1 {
		labels = labels[:len(labels)-1]
	}
	for i, l := range labels {
		labels[i] = shape(ds, l)
	}
	return out + "@" + strings.Join(append(labels, syntheticDomain), ".")
}
