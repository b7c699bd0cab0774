package matching

import (
	"sort"
	"sync"
	"sync/atomic"

	"tutela/password/internal/zxcvbn/adjacency"
	"tutela/password/internal/zxcvbn/frequency"
	"tutela/password/internal/zxcvbn/match"
)

var (
	dictionaryMatchers []match.Matcher
	matchers           []match.Matcher
	adjacencyGraphs    []adjacency.Graph
	l33tTable          adjacency.Graph

	sequences map[string]string
)

// load builds the matchers on first use (Tutela: upstream built them in init, about 8 MB of
// ranked dictionaries, for every command of the binary, and rebuilt them unsynchronised when
// it found them missing).
var (
	load   = sync.OnceFunc(loadFrequencyList)
	loaded atomic.Bool
)

// Loaded reports whether the dictionaries have been loaded, so tests can check that a path
// that estimates no password strength does not pay for them.
func Loaded() bool { return loaded.Load() }

// Omnimatch runs all matchers against the password
func Omnimatch(password string, userInputs []string, filters ...func(match.Matcher) bool) (matches []match.Match) {
	load()

	if userInputs != nil {
		userInputMatcher := buildDictMatcher("user_inputs", buildRankedDict(userInputs))
		matches = userInputMatcher(password)
	}

	for _, matcher := range matchers {
		shouldBeFiltered := false
		for i := range filters {
			if filters[i](matcher) {
				shouldBeFiltered = true
				break
			}
		}
		if !shouldBeFiltered {
			matches = append(matches, matcher.MatchingFunc(password)...)
		}
	}
	sort.Sort(match.Matches(matches))
	return matches
}

func loadFrequencyList() {
	defer loaded.Store(true)
	for n, list := range frequency.Lists() {
		dictionaryMatchers = append(dictionaryMatchers, match.Matcher{MatchingFunc: buildDictMatcher(n, buildRankedDict(list.List)), ID: n})
	}

	graphs := adjacency.Graphs()
	l33tTable = graphs["l33t"]

	adjacencyGraphs = append(adjacencyGraphs, graphs["qwerty"])
	adjacencyGraphs = append(adjacencyGraphs, graphs["dvorak"])
	adjacencyGraphs = append(adjacencyGraphs, graphs["keypad"])
	adjacencyGraphs = append(adjacencyGraphs, graphs["macKeypad"])

	// l33tFilePath, _ := filepath.Abs("adjacency/L33t.json")
	// L33T_TABLE = adjacency.GetAdjancencyGraphFromFile(l33tFilePath, "l33t")

	sequences = make(map[string]string)
	sequences["lower"] = "abcdefghijklmnopqrstuvwxyz"
	sequences["upper"] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	sequences["digits"] = "0123456789"

	matchers = append(matchers, dictionaryMatchers...)
	matchers = append(matchers, match.Matcher{MatchingFunc: spatialMatch, ID: spatialMatcherName})
	matchers = append(matchers, match.Matcher{MatchingFunc: repeatMatch, ID: repeatMatcherName})
	matchers = append(matchers, match.Matcher{MatchingFunc: sequenceMatch, ID: sequenceMatcherName})
	matchers = append(matchers, match.Matcher{MatchingFunc: l33tMatch, ID: L33TMatcherName})
	matchers = append(matchers, match.Matcher{MatchingFunc: dateSepMatcher, ID: dateSepMatcherName})
	matchers = append(matchers, match.Matcher{MatchingFunc: dateWithoutSepMatch, ID: dateWithOutSepMatcherName})
}
