package password

import (
	"bytes"
	"context"
	"crypto/sha1" // #nosec G505 -- HIBP's range API is keyed by SHA-1 (see Breached)
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"tutela"
)

// Checker reports whether a password appears in a corpus of breached passwords. NIST SP
// 800-63B §5.1.1.2 requires comparing new passwords against "passwords obtained from previous
// breach corpuses".
type Checker interface {
	Breached(ctx context.Context, pw string) (bool, error)
}

// maxRangeResponse bounds a range API response. A real one is ~30 KiB (≈800–1000 suffixes,
// padded); anything near the limit means a broken or hostile server.
const maxRangeResponse = 2 << 20

// RangeClient checks passwords against a HaveIBeenPwned-compatible range API using
// k-anonymity: only the first 5 hex characters of the password's SHA-1 leave the process, and
// the server answers with every suffix sharing that prefix
// (https://haveibeenpwned.com/API/v3#PwnedPasswords). Responses are requested padded so their
// size does not reveal the prefix either.
type RangeClient struct {
	baseURL  string
	client   *http.Client
	failOpen bool

	// Logger, when set, records API failures that fail-open mode turns into "not breached",
	// so an outage does not silently disable the check.
	Logger *slog.Logger
}

// NewRangeClient returns a Checker querying baseURL (e.g. "https://api.pwnedpasswords.com").
// httpClient bounds each request with its Timeout; nil means a client with a 5-second timeout.
// When the API is down or answers nonsense, failOpen reports "not breached" (the password is
// accepted without the check); otherwise Breached fails with EUNAVAILABLE.
func NewRangeClient(baseURL string, httpClient *http.Client, failOpen bool) *RangeClient {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &RangeClient{baseURL: strings.TrimRight(baseURL, "/"), client: httpClient, failOpen: failOpen}
}

// Breached reports whether pw appears in the corpus with a count above zero. It checks the
// NFKC form Hasher stores and, when different, the form as typed: an attacker's guess of either
// would match the stored hash, and breach corpora hold passwords as typed.
func (c *RangeClient) Breached(ctx context.Context, pw string) (bool, error) {
	for _, form := range breachForms(pw) {
		hit, err := c.lookup(ctx, sha1.Sum([]byte(form))) // #nosec G401 -- SHA-1 is what the Have I Been Pwned range API (k-anonymity) is keyed by; not used for integrity
		if err != nil {
			if c.failOpen {
				if c.Logger != nil {
					c.Logger.WarnContext(ctx, "breached-password check unavailable; accepting password unchecked", "err", err)
				}
				return false, nil
			}
			return false, &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "breached-password check unavailable", Err: err}
		}
		if hit {
			return true, nil
		}
	}
	return false, nil
}

func (c *RangeClient) lookup(ctx context.Context, sum [sha1.Size]byte) (bool, error) {
	digest := hexUpper(sum[:])
	prefix, suffix := digest[:5], digest[5:]

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/range/"+prefix, nil)
	if err != nil {
		return false, fmt.Errorf("range request: %w", err)
	}
	req.Header.Set("Add-Padding", "true")
	req.Header.Set("User-Agent", "tutela")
	resp, err := c.client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which holds the prefix; keep it out of logs.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return false, fmt.Errorf("range request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("range API answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRangeResponse+1))
	if err != nil {
		return false, fmt.Errorf("reading range response: %w", err)
	}
	if len(body) > maxRangeResponse {
		return false, fmt.Errorf("range response larger than %d bytes", maxRangeResponse)
	}
	return parseRange(body, suffix)
}

// parseRange scans "SUFFIX:COUNT" lines (CRLF or LF) for suffix. Padding entries have count 0
// and never count as a hit. A malformed line fails the whole response: a server that answers
// nonsense cannot be trusted to have said "not found".
func parseRange(body []byte, suffix string) (bool, error) {
	hit := false
	for n, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		s, count, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(s) != 35 || !isHex(s) {
			return false, fmt.Errorf("range response line %d malformed", n+1)
		}
		cnt, err := strconv.ParseUint(string(bytes.TrimSpace(count)), 10, 64)
		if err != nil {
			return false, fmt.Errorf("range response line %d malformed", n+1)
		}
		if cnt > 0 && strings.EqualFold(string(s), suffix) {
			hit = true
		}
	}
	return hit, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// hexUpper encodes a SHA-1 digest as the range API and the HaveIBeenPwned downloads do.
func hexUpper(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// breachForms returns the forms of pw to look up: the NFKC form, and the raw form if it differs.
func breachForms(pw string) []string {
	n := norm.NFKC.String(pw)
	if n == pw {
		return []string{n}
	}
	return []string{n, pw}
}
