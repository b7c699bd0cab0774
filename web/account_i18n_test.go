package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestAccountCatalogue_EveryKeyInEveryLanguage: every key the account and passkey pages use —
// written in their templates or handed from Go — has a non-empty text in English, French and
// Arabic.
func TestAccountCatalogue_EveryKeyInEveryLanguage(t *testing.T) {
	cat, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, k := range []msgKey{msgErrPasskey, msgLoginPasskeyButton, msgTitleAccount, msgTitleReauth, msgTitleAddTOTP, msgTitleAddPasskey, msgErrPasskeyAdd, msgErrCurrentPassword,
		msgErrFactorName, msgErrFactorLimit, msgErrRecoveryNeedsFactor} {
		keys[string(k)] = true
	}
	for _, k := range accountNotices {
		keys[string(k)] = true
	}
	files, err := fs.Glob(templateFS, "templates/account*.html")
	if err != nil || len(files) < 5 {
		t.Fatalf("account templates: %v %v", files, err)
	}
	keyRE := regexp.MustCompile(`\.T "([^"]+)"`)
	for _, f := range files {
		b, err := fs.ReadFile(templateFS, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			keys[m[1]] = true
		}
	}
	if len(keys) < 60 {
		t.Fatalf("found only %d keys: the pattern no longer matches the templates", len(keys))
	}
	for _, lang := range []string{"en", "fr", "ar"} {
		for k := range keys {
			if strings.TrimSpace(cat.keys[lang][k]) == "" {
				t.Errorf("%s: key %q missing", lang, k)
			}
		}
	}
}
