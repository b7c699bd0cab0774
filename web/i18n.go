package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

// Every user-visible string of the pages is a key of the message catalogues in locales/ (one
// JSON object per language, key → text with fmt verbs). Templates translate with {{.T "key"}};
// Go code hands templates keys of type msgKey, declared as constants in messages.go.
// TestCatalogues_EveryKeyInEveryLanguage fails on a key missing from any language, and
// TestTemplates_NoTextOutsideCatalogue on text written into a template.

//go:embed locales/*.json
var localeFS embed.FS

// msgKey is a catalogue key. Templates accept string constants for it.
type msgKey string

// languages are the supported languages, in the order the switch lists them. The first is the
// fallback.
var languages = []language.Tag{language.English, language.French, language.Arabic}

var matcher = language.NewMatcher(languages)

// rtl marks the languages written right to left.
var rtl = map[string]bool{"ar": true}

// langCookie remembers the language chosen with the switch.
const langCookie = "__Host-tutela_lang"

type catalogues struct {
	cat  *catalog.Builder
	keys map[string]map[string]string // language → key → message, for the tests
}

func loadCatalogues() (*catalogues, error) {
	c := &catalogues{cat: catalog.NewBuilder(catalog.Fallback(languages[0])), keys: map[string]map[string]string{}}
	for _, tag := range languages {
		code := tag.String()
		raw, err := localeFS.ReadFile("locales/" + code + ".json")
		if err != nil {
			return nil, err
		}
		msgs := map[string]string{}
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return nil, fmt.Errorf("locales/%s.json: %w", code, err)
		}
		for k, v := range msgs {
			if err := c.cat.SetString(tag, k, v); err != nil {
				return nil, fmt.Errorf("locales/%s.json %q: %w", code, k, err)
			}
		}
		c.keys[code] = msgs
	}
	return c, nil
}

func (c *catalogues) printer(lang string) *message.Printer {
	return message.NewPrinter(language.MustParse(lang), message.Catalog(c.cat))
}

// supported returns the supported language code s names ("" when none).
func supported(s string) string {
	for _, t := range languages {
		if strings.EqualFold(s, t.String()) {
			return t.String()
		}
	}
	return ""
}

// chooseLanguage picks the page's language: an explicit switch (?lang=, remembered in a
// cookie), the relying party's ui_locales (OIDC Core §3.1.2.1), the remembered choice, then the
// browser's Accept-Language; English when nothing matches. It reports whether the switch was
// used now (the caller remembers it).
func chooseLanguage(r *http.Request, uiLocales []string) (lang string, switched bool) {
	if l := supported(r.URL.Query().Get("lang")); l != "" {
		return l, true
	}
	for _, l := range uiLocales {
		if t, err := language.Parse(l); err == nil {
			if _, i, conf := matcher.Match(t); conf != language.No {
				return languages[i].String(), false
			}
		}
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l := supported(c.Value); l != "" {
			return l, false
		}
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err == nil && len(tags) > 0 {
		if _, i, conf := matcher.Match(tags...); conf != language.No {
			return languages[i].String(), false
		}
	}
	return languages[0].String(), false
}

// langLink is one entry of the language switch: the same page in another language, its name
// written in that language.
type langLink struct {
	Code, Name, URL string
	Current         bool
}

func (p *Pages) languageLinks(r *http.Request, current string) []langLink {
	out := make([]langLink, 0, len(languages))
	for _, t := range languages {
		q := r.URL.Query()
		if id := r.PostForm.Get("id"); id != "" && len(id) <= maxRequestID {
			q.Set("id", id) // a page answering a POST keeps its request in the switch's links
		}
		q.Set("lang", t.String())
		// Only the page's own parameters travel: the path is ours, the query re-encoded.
		out = append(out, langLink{Code: t.String(), Name: p.cat.printer(t.String()).Sprintf("lang.name"),
			URL: r.URL.Path + "?" + q.Encode(), Current: t.String() == current})
	}
	return out
}
