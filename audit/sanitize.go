package audit

import "strings"

// Redacted replaces sensitive values in audit details.
const Redacted = "[redacted]"

// sensitiveKeyParts are matched against a key lowercased with '_', '-', '.' and ' ' removed, so
// "api_key", "Api-Key", "X-API-KEY" and "apiKey" all match "apikey".
var sensitiveKeyParts = []string{
	"password", "passwd", "secret", "token", "authorization", "cookie", "apikey",
	"privatekey", "otp", "codeverifier", "recovery",
}

// SanitizeDetails returns a deep copy of in in which the value of every key, at any depth, whose
// name suggests a credential (password, passwd, secret, token, authorization, cookie,
// api_key/apikey, private_key, otp, code_verifier, recovery; case- and separator-insensitive) is
// replaced by Redacted. The audit log is append-only and kept for years, so a credential written
// into it could never be taken back. Matching errs towards redacting: "otp" also hits "footprint"
// style keys, which costs a little detail and never a secret. Values nested deeper than
// MaxDetailsDepth are replaced by Redacted too (Canonical would reject them), which also ends a map that contains itself.
func SanitizeDetails(in map[string]any) map[string]any {
	if in == nil {
		return nil
	}
	return sanitizeMap(in, 1)
}

func sanitizeMap(in map[string]any, depth int) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if sensitiveKey(k) {
			out[k] = Redacted
			continue
		}
		out[k] = sanitizeValue(v, depth+1)
	}
	return out
}

func sanitizeValue(v any, depth int) any {
	switch v.(type) {
	case map[string]any, map[string]string, []any, []map[string]any, []string:
		if depth > MaxDetailsDepth {
			return Redacted
		}
	}
	switch v := v.(type) {
	case map[string]any:
		return sanitizeMap(v, depth)
	case map[string]string:
		out := make(map[string]string, len(v))
		for k, s := range v {
			if sensitiveKey(k) {
				s = Redacted
			}
			out[k] = s
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = sanitizeValue(x, depth+1)
		}
		return out
	case []map[string]any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = sanitizeValue(x, depth+1)
		}
		return out
	case []string:
		return append([]string(nil), v...)
	default:
		return v
	}
}

func sensitiveKey(k string) bool {
	k = strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		return r
	}, strings.ToLower(k))
	for _, p := range sensitiveKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}
