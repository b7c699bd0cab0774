package zxcvbn

import (
	"time"

	"tutela/password/internal/zxcvbn/match"
	"tutela/password/internal/zxcvbn/matching"
	"tutela/password/internal/zxcvbn/scoring"
	zxcvbnmath "tutela/password/internal/zxcvbn/utils/math"
)

// PasswordStrength takes a password, userInputs and optional filters and returns a MinEntropyMatch
func PasswordStrength(password string, userInputs []string, filters ...func(match.Matcher) bool) scoring.MinEntropyMatch {
	start := time.Now()
	matches := matching.Omnimatch(password, userInputs, filters...)
	result := scoring.MinimumEntropyMatchSequence(password, matches)
	end := time.Now()

	calcTime := end.Nanosecond() - start.Nanosecond()
	result.CalcTime = zxcvbnmath.Round(float64(calcTime)*time.Nanosecond.Seconds(), .5, 3)
	return result
}

// Loaded reports whether the dictionaries have been loaded (Tutela: they load on the first
// PasswordStrength, not at start-up).
func Loaded() bool { return matching.Loaded() }
