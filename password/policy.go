package password

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"tutela"
	"tutela/password/internal/zxcvbn"
	"tutela/password/internal/zxcvbn/match"
)

// Sentinel errors naming the rule a password broke. Policy.Check returns a *tutela.Error
// (EINVALID, Field "password", a message for the user) whose Err is one of these, so
// errors.Is(err, ErrWeak) tells callers and tests which rule failed.
var (
	ErrTooShort    = errors.New("password: too short")
	ErrTooLong     = errors.New("password: too long")
	ErrComposition = errors.New("password: composition rule not met")
	ErrWeak        = errors.New("password: too easy to guess")
	ErrReused      = errors.New("password: used recently")
	ErrBreached    = errors.New("password: found in a data breach")
)

// Policy bounds.
const (
	minConfigLength = 8    // NIST SP 800-63B: never below 8
	maxConfigLength = 1024 // longer passwords buy nothing and cost normalisation and hashing time
	maxHistory      = 50
	maxScore        = 4 // zxcvbn scores 0–4

	// maxScoredRunes bounds the input to the strength estimator, whose matching is quadratic
	// (and worse for l33t substitutions) in the length; a 100-character password takes it
	// ~150 ms. A password whose first 64 characters are strong is strong.
	maxScoredRunes = 64
)

// Policy is a password policy after NIST SP 800-63B §5.1.1.2: a minimum length, a strength
// estimate instead of composition rules, no reuse of recent passwords, and a breach check.
// Composition rules are available for tenants whose own regulation demands them.
type Policy struct {
	// MinLength is the minimum length in Unicode code points after NFKC (default 12, never
	// below 8; SP 800-63B rev. 4 asks for 15 when the password is the only factor).
	MinLength int
	// MaxLength is the maximum length in code points (default 128, at most 1024).
	MaxLength int
	// MinScore is the minimum zxcvbn score, 0–4 (default 3: "safely unguessable", ~10^8 guesses).
	MinScore int
	// History is how many previous passwords, the current one included, may not be reused
	// (default 0: off, as ASVS 4.0.3 2.1.10 advises; a regulation that demands it turns it on).
	// The current password is refused as the new one whatever History says.
	History int
	// Composition, when set, requires minimum counts of character classes.
	Composition *Composition
}

// Composition requires at least so many characters of each class. Letters without case (as
// in most non-Latin scripts) count as neither upper nor lower; Symbol counts everything that is
// not a letter or a decimal digit, including spaces and emoji.
type Composition struct {
	Upper, Lower, Digit, Symbol int
}

// Context is what Policy.Check needs to know about the account besides the password.
type Context struct {
	// Email, Name and Tenant give the words an attacker targeting this account tries first.
	Email, Name, Tenant string
	// PreviousHashes are the account's current and earlier password hashes, most recent first;
	// the first Policy.History of them (at least the first) are checked with Hasher.
	PreviousHashes []string
	Hasher         *Hasher
	// Breach, when set, is asked whether the password appears in a known breach.
	Breach Checker
}

// DefaultPolicy returns the default policy: 12 to 128 characters, zxcvbn score 3, no history
// rule, no composition rules.
func DefaultPolicy() Policy {
	return Policy{MinLength: 12, MaxLength: 128, MinScore: 3}
}

// Validate reports every problem with p at once.
func (p Policy) Validate() error {
	var problems []string
	if p.MinLength < minConfigLength {
		problems = append(problems, fmt.Sprintf("minimum length must be at least %d", minConfigLength))
	}
	if p.MaxLength < p.MinLength || p.MaxLength > maxConfigLength {
		problems = append(problems, fmt.Sprintf("maximum length must be between the minimum length and %d", maxConfigLength))
	}
	if p.MinScore < 0 || p.MinScore > maxScore {
		problems = append(problems, fmt.Sprintf("minimum score must be between 0 and %d", maxScore))
	}
	if p.History < 0 || p.History > maxHistory {
		problems = append(problems, fmt.Sprintf("history must be between 0 and %d", maxHistory))
	}
	if c := p.Composition; c != nil {
		if c.Upper < 0 || c.Lower < 0 || c.Digit < 0 || c.Symbol < 0 {
			problems = append(problems, "composition counts must not be negative")
		} else if c.Upper+c.Lower+c.Digit+c.Symbol > p.MaxLength {
			problems = append(problems, "composition counts must fit within the maximum length")
		}
	}
	if len(problems) > 0 {
		return tutela.Errorf(tutela.EINVALID, "invalid password policy: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Check applies the policy to a new password pw, in order: length, composition (if set),
// strength, history, breach. The first rule broken is returned as a *tutela.Error with code
// EINVALID, Field "password", a message naming the rule, and Err one of ErrTooShort, ErrTooLong,
// ErrComposition, ErrWeak, ErrReused, ErrBreached. Other errors come from the history check
// (ErrBusy, a corrupt stored hash) or the breach check (EUNAVAILABLE when it fails closed).
//
// Every Unicode character is accepted, spaces and emoji included; length is counted in code
// points after NFKC normalisation, the form Hasher stores.
func (p Policy) Check(ctx context.Context, pw string, c Context) error {
	normalised := norm.NFKC.String(pw)
	n := utf8.RuneCountInString(normalised)
	if n < p.MinLength {
		return ruleError(ErrTooShort, "password must be at least %d characters", p.MinLength)
	}
	if n > p.MaxLength {
		return ruleError(ErrTooLong, "password must be at most %d characters", p.MaxLength)
	}

	if p.Composition != nil {
		if missing := p.Composition.missing(normalised); len(missing) > 0 {
			return ruleError(ErrComposition, "password must contain at least %s", strings.Join(missing, ", "))
		}
	}

	if p.MinScore > 0 {
		score, feedback, err := strength(normalised, contextWords(c))
		if err != nil {
			return err
		}
		if score < p.MinScore {
			return ruleError(ErrWeak, "password is too easy to guess (strength %d of %d, need %d): %s",
				score, maxScore, p.MinScore, feedback)
		}
	}

	if len(c.PreviousHashes) > 0 {
		if c.Hasher == nil {
			return errors.New("password: history check needs a Hasher")
		}
		// The most recent hash (the current password) is checked even with History 0: a change
		// must change the password, or a forced change (must_change_password after an admin's
		// action or a breach found at sign-in) could be met by typing the same password again.
		for _, prev := range c.PreviousHashes[:min(max(p.History, 1), len(c.PreviousHashes))] {
			ok, _, err := c.Hasher.Verify(ctx, pw, prev)
			if err != nil {
				return err
			}
			if ok {
				return ruleError(ErrReused, "password was used recently; choose one you have not used before")
			}
		}
	}

	if c.Breach != nil {
		breached, err := c.Breach.Breached(ctx, pw)
		if err != nil {
			return err
		}
		if breached {
			return ruleError(ErrBreached, "password appears in a known data breach; choose a different one")
		}
	}
	return nil
}

func ruleError(rule error, format string, args ...any) *tutela.Error {
	e := tutela.FieldErrorf("password", format, args...)
	e.Err = rule
	return e
}

// missing lists the character classes pw has too few of, for the error message.
func (c *Composition) missing(pw string) []string {
	var upper, lower, digit, symbol int
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			upper++
		case unicode.IsLower(r):
			lower++
		case unicode.IsDigit(r):
			digit++
		case unicode.IsLetter(r) || unicode.IsMark(r):
			// Uncased letters and combining marks belong to no class.
		default:
			symbol++
		}
	}
	var out []string
	need := func(have, want int, one, many string) {
		if have < want {
			if want == 1 {
				out = append(out, "1 "+one)
			} else {
				out = append(out, fmt.Sprintf("%d %s", want, many))
			}
		}
	}
	need(upper, c.Upper, "uppercase letter", "uppercase letters")
	need(lower, c.Lower, "lowercase letter", "lowercase letters")
	need(digit, c.Digit, "digit", "digits")
	need(symbol, c.Symbol, "symbol", "symbols")
	return out
}

// contextWords returns the words an attacker who knows the account would try first: the email's
// local part and domain labels (without the top-level domain), the name's parts and the tenant,
// whole and split. NIST SP 800-63B §5.1.1.2 names "context-specific words, such as the name of
// the service, the username" among the values to reject.
func contextWords(c Context) []string {
	seen := map[string]bool{}
	var words []string
	add := func(s string) {
		s = strings.ToLower(norm.NFKC.String(strings.TrimSpace(s)))
		if utf8.RuneCountInString(s) < 3 || seen[s] {
			return
		}
		seen[s] = true
		words = append(words, s)
	}
	addAll := func(s string) {
		add(s)
		for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			add(w)
		}
	}
	add("tutela")
	if local, domain, ok := strings.Cut(c.Email, "@"); ok {
		addAll(local)
		labels := strings.Split(domain, ".")
		for _, l := range labels[:max(len(labels)-1, 1)] {
			addAll(l)
		}
	} else {
		addAll(c.Email)
	}
	addAll(c.Name)
	addAll(c.Tenant)
	return words
}

// strength returns zxcvbn's score (0–4) for pw with words added to its dictionaries, and advice
// for a weak password. zxcvbn-go has no feedback of its own; the advice follows the original
// zxcvbn's, derived from the patterns it matched.
func strength(pw string, words []string) (score int, feedback string, err error) {
	if utf8.RuneCountInString(pw) > maxScoredRunes {
		pw = string([]rune(pw)[:maxScoredRunes])
	}
	// zxcvbn-go mixes byte and rune offsets for non-ASCII input. It has not been seen to panic,
	// but a panic on user input must not take down the request.
	defer func() {
		if r := recover(); r != nil {
			score, feedback, err = 0, "", errors.New("password: strength estimator failed")
		}
	}()
	res := zxcvbn.PasswordStrength(pw, words)
	return res.Score, adviceFor(res.MatchSequence), nil
}

// EstimatorLoaded reports whether the strength estimator's dictionaries (about 18 MB of heap,
// tens of milliseconds to build) have been loaded. They load on the first Check that scores a
// password, never at start-up: tests use this to keep it so.
func EstimatorLoaded() bool { return zxcvbn.Loaded() }

func adviceFor(seq []match.Match) string {
	const suggestion = "add another word or two; uncommon words are better"
	warning, rank := "", len(warnings)
	for _, m := range seq {
		if i := warningFor(m); i >= 0 && i < rank {
			warning, rank = warnings[i], i
		}
	}
	if warning == "" {
		return suggestion
	}
	return warning + "; " + suggestion
}

// warnings, most specific first.
var warnings = []string{
	"avoid your name, email address and organisation name",
	"this is similar to a commonly used password",
	"keyboard patterns like qwerty are easy to guess",
	"repeated characters like aaa are easy to guess",
	"sequences like abc or 6543 are easy to guess",
	"dates and years are easy to guess",
	"names and surnames are easy to guess",
	"common words are easy to guess",
}

func warningFor(m match.Match) int {
	switch m.Pattern {
	case "dictionary":
		switch m.DictionaryName {
		case "user_inputs":
			return 0
		case "Passwords":
			return 1
		case "MaleNames", "FemaleNames", "Surname":
			return 6
		default:
			return 7
		}
	case "spatial":
		return 2
	case "repeat":
		return 3
	case "sequence":
		return 4
	case "date":
		return 5
	}
	return -1
}
