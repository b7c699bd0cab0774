// Package ai holds the AI privacy gateway's configuration (issue 16): a tenant's model
// providers and their API keys, the models it allows, the purposes that may use them, and its
// limits. The gateway itself is in httpapi (ai*.go); the redaction engine in ai/redact; the
// client of OpenAI-compatible providers in ai/upstream.
package ai

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"tutela"
)

// AuthStyle is how a provider takes its API key.
type AuthStyle string

// Auth styles.
const (
	// AuthBearer sends "Authorization: Bearer <key>" (OpenAI, OpenRouter, vLLM, Ollama, Azure
	// OpenAI's v1 API with an Entra token or key).
	AuthBearer AuthStyle = "bearer"
	// AuthAPIKey sends "api-key: <key>" (Azure OpenAI).
	AuthAPIKey AuthStyle = "api-key"
	// AuthNone sends no key (a self-hosted model on a private network).
	AuthNone AuthStyle = "none"
)

// Provider is one OpenAI-compatible endpoint a tenant sends inferences to.
type Provider struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	// Name is the tenant's label for it ("openrouter", "azure-eu"): lowercase, unique per tenant.
	Name string `json:"name"`
	// BaseURL is the API root that "/chat/completions" and "/embeddings" are appended to
	// ("https://openrouter.ai/api/v1"). https, or http to a loopback address (a local model).
	BaseURL   string    `json:"base_url"`
	AuthStyle AuthStyle `json:"auth_style"`
	// TimeoutSeconds bounds one attempt (headers and body); 1–600, default 60.
	TimeoutSeconds int `json:"timeout_seconds"`
	// MaxRetries is how many times a 429, a 5xx or a connection failure is retried with
	// exponential backoff and jitter (honouring Retry-After); 0–5, default 2. A streamed
	// answer is never retried once its first byte has reached the caller.
	MaxRetries int       `json:"max_retries"`
	Disabled   bool      `json:"disabled"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Keys are the provider's active API keys (never the key itself), newest first.
	Keys []KeyInfo `json:"keys"`
}

// Provider defaults and bounds.
const (
	DefaultTimeoutSeconds = 60
	MaxTimeoutSeconds     = 600
	DefaultMaxRetries     = 2
	MaxMaxRetries         = 5
	// MaxActiveKeys is how many API keys a provider holds at once: the new one and the one it
	// replaces, so a key is rotated without a failed request.
	MaxActiveKeys = 2
	// MaxKeyBytes bounds an API key.
	MaxKeyBytes = 4096
)

// KeyInfo describes a provider API key without revealing it.
type KeyInfo struct {
	ID string `json:"id"`
	// Hint is the key's last four characters, for telling keys apart in a console.
	Hint      string    `json:"hint"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// ModelKind is what a model is called for.
type ModelKind string

// Model kinds.
const (
	KindChat      ModelKind = "chat"      // /chat/completions
	KindEmbedding ModelKind = "embedding" // /embeddings
)

// Model is a model the tenant allows: the name callers use, and where it is served.
type Model struct {
	TenantID string `json:"-"`
	// Name is what callers put in "model" ("gpt-4o-mini", "llama3:8b").
	Name       string `json:"name"`
	ProviderID string `json:"provider_id"`
	// Upstream is the provider's name for the model ("openai/gpt-4o-mini" on OpenRouter, the
	// deployment name on Azure); default Name.
	Upstream  string    `json:"upstream"`
	Kind      ModelKind `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
}

// Purpose is what the gateway allows for one processing purpose: which models, whether
// subjects' minimized records may be attached, and an output limit. A purpose without a
// Purpose entry cannot use the gateway.
type Purpose struct {
	TenantID string `json:"-"`
	Purpose  string `json:"purpose"`
	// Models are the model names this purpose may use (each in the tenant's models).
	Models []string `json:"models"`
	// MaxOutputTokens caps max_tokens/max_completion_tokens of a chat call (0: no cap).
	MaxOutputTokens int       `json:"max_output_tokens"`
	UpdatedAt       time.Time `json:"updated_at"`
	UpdatedBy       string    `json:"updated_by"`
}

// Settings are a tenant's gateway limits and detectors. Zero limits mean unlimited.
type Settings struct {
	TenantID string `json:"-"`
	// RequestsPerMinute limits the tenant's inferences, counted across every node.
	RequestsPerMinute int `json:"requests_per_minute"`
	// TokensPerDay and TokensPerMonth are budgets of prompt plus completion tokens as the
	// provider reports them (UTC days and calendar months). A call that would start once a
	// budget is spent is refused with quota_exceeded.
	TokensPerDay   int64 `json:"tokens_per_day"`
	TokensPerMonth int64 `json:"tokens_per_month"`
	// IDCountries are the ISO 3166-1 alpha-2 codes whose national identifier formats are
	// detected in text, besides the universal detectors (e-mail, phone, IBAN, card). Default:
	// none.
	IDCountries []string  `json:"id_countries"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
	UpdatedBy   string    `json:"updated_by,omitempty"`
}

// Bounds of names and lists.
const (
	MaxModelsPerTenant    = 200
	MaxProvidersPerTenant = 20
	MaxModelsPerPurpose   = 50
	MaxIDCountries        = 20
)

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	modelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$`)
)

// ValidModelName reports whether s may name a model (ours or the provider's).
func ValidModelName(s string) bool { return modelRE.MatchString(s) }

// Check validates p and fills defaults.
func (p *Provider) Check() error {
	if p.AuthStyle == "" {
		p.AuthStyle = AuthBearer
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = DefaultTimeoutSeconds
	}
	switch {
	case !nameRE.MatchString(p.Name):
		return tutela.FieldErrorf("name", "name: lowercase letters, digits, '.', '_' or '-', at most 63")
	case !slices.Contains([]AuthStyle{AuthBearer, AuthAPIKey, AuthNone}, p.AuthStyle):
		return tutela.FieldErrorf("auth_style", "auth_style must be bearer, api-key or none")
	case p.TimeoutSeconds < 1 || p.TimeoutSeconds > MaxTimeoutSeconds:
		return tutela.FieldErrorf("timeout_seconds", "timeout_seconds must be between 1 and %d", MaxTimeoutSeconds)
	case p.MaxRetries < 0 || p.MaxRetries > MaxMaxRetries:
		return tutela.FieldErrorf("max_retries", "max_retries must be between 0 and %d", MaxMaxRetries)
	}
	return CheckBaseURL(p.BaseURL)
}

// CheckBaseURL accepts an absolute https URL without credentials, query or fragment, or http to
// a loopback host (a model on the same machine). Everything sent to it is minimized first,
// but the API key and the minimized prompts still must not cross a network in clear.
func CheckBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(s) > 2048 {
		return tutela.FieldErrorf("base_url", "base_url must be an absolute URL without credentials, query or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if tutela.IsLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return tutela.FieldErrorf("base_url", "base_url must use https (http only to a loopback address)")
}

// Check validates m and fills defaults.
func (m *Model) Check() error {
	if m.Upstream == "" {
		m.Upstream = m.Name
	}
	if m.Kind == "" {
		m.Kind = KindChat
	}
	switch {
	case !ValidModelName(m.Name):
		return tutela.FieldErrorf("name", "name: letters, digits and _.:/@+-, at most 200")
	case !ValidModelName(m.Upstream):
		return tutela.FieldErrorf("upstream", "upstream: letters, digits and _.:/@+-, at most 200")
	case m.Kind != KindChat && m.Kind != KindEmbedding:
		return tutela.FieldErrorf("kind", "kind must be chat or embedding")
	case !tutela.ValidID(m.ProviderID):
		return tutela.FieldErrorf("provider_id", "provider_id must name one of the tenant's providers")
	}
	return nil
}

// Check validates p (that its models exist is the store's check).
func (p *Purpose) Check() error {
	if !purposeRE.MatchString(p.Purpose) {
		return tutela.FieldErrorf("purpose", "purpose must be lowercase letters, digits, _ or -")
	}
	if len(p.Models) == 0 || len(p.Models) > MaxModelsPerPurpose {
		return tutela.FieldErrorf("models", "between 1 and %d models are required", MaxModelsPerPurpose)
	}
	seen := map[string]bool{}
	for _, m := range p.Models {
		if !ValidModelName(m) || seen[m] {
			return tutela.FieldErrorf("models", "models must be distinct model names")
		}
		seen[m] = true
	}
	if p.MaxOutputTokens < 0 || p.MaxOutputTokens > 1_000_000 {
		return tutela.FieldErrorf("max_output_tokens", "max_output_tokens must be between 0 and 1000000")
	}
	return nil
}

// purposeRE is privacy.ValidPurpose's rule (kept here so this package does not import privacy).
var purposeRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// Check validates s and normalizes its country codes to upper case.
func (s *Settings) Check() error {
	switch {
	case s.RequestsPerMinute < 0 || s.RequestsPerMinute > 1_000_000:
		return tutela.FieldErrorf("requests_per_minute", "requests_per_minute must be between 0 and 1000000")
	case s.TokensPerDay < 0 || s.TokensPerMonth < 0:
		return tutela.FieldErrorf("tokens_per_day", "token budgets must not be negative")
	case len(s.IDCountries) > MaxIDCountries:
		return tutela.FieldErrorf("id_countries", "at most %d countries", MaxIDCountries)
	}
	seen := map[string]bool{}
	for i, c := range s.IDCountries {
		c = strings.ToUpper(c)
		if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || seen[c] {
			return tutela.FieldErrorf("id_countries", "id_countries are distinct ISO 3166-1 alpha-2 codes")
		}
		seen[c] = true
		s.IDCountries[i] = c
	}
	if s.IDCountries == nil {
		s.IDCountries = []string{}
	}
	return nil
}

// KeyHint is the hint shown for key: its last four characters (none for a key shorter than 16,
// whose last four would be a quarter of it).
func KeyHint(key string) string {
	if len(key) < 16 {
		return ""
	}
	return "…" + key[len(key)-4:]
}

// CheckKey refuses an API key that cannot be one: empty, too long, or with bytes an HTTP header
// cannot carry.
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyBytes {
		return tutela.FieldErrorf("key", "key must be 1 to %d bytes", MaxKeyBytes)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return tutela.FieldErrorf("key", "key must be printable ASCII without spaces")
		}
	}
	return nil
}

// Key is an opened provider API key, for the one request that uses it.
type Key struct {
	ID     string
	Secret tutela.Secret
}
