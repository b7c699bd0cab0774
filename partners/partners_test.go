package partners_test

import (
	"strings"
	"testing"

	"tutela"
	"tutela/partners"
)

func TestValidRedirectURL(t *testing.T) {
	good := []string{
		"https://services.example.org/intake",
		"https://services.example.org:8443/intake?programme=7",
		"https://[2001:db8::1]/intake",
		"https://example.org",
	}
	for _, u := range good {
		if err := partners.ValidRedirectURL(u); err != nil {
			t.Errorf("%q refused: %v", u, err)
		}
	}
	bad := []string{
		"", "http://services.example.org/intake", "javascript:alert(1)", "//services.example.org/intake",
		"https://user:pw@services.example.org/intake", "https://user@services.example.org/intake",
		"https://services.example.org/intake#top", "https://services.example.org/intake#",
		"https://Services.Example.org/intake", "https:///intake", "https://services.example.org/a%2fb/../c", "https://services.example.org/a/./c", "https://services.example.org/a/%2e%2e/c",
		"https://services.example.org/in take", "https:services.example.org", "https://services.example.org/" + strings.Repeat("a", 2100),
		"https://services.example.org/\x00", "data:text/html,hi",
	}
	for _, u := range bad {
		if err := partners.ValidRedirectURL(u); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%q accepted (%v)", u, err)
		}
	}
}

// A referral goes to an allow-listed URL exactly: differing by scheme, port, user information, a
// trailing path, a trailing slash, query, fragment or host case is a different URL.
func TestCheckTarget_ExactMatchOnly(t *testing.T) {
	p := &partners.Partner{Name: "Shelter", Status: partners.StatusActive,
		RedirectURLs: []string{"https://shelter.example.org/intake", "https://clinic.example.org:8443/r?x=1"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, ok := range p.RedirectURLs {
		if err := p.CheckTarget(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"http://shelter.example.org/intake",
		"https://shelter.example.org:443/intake",
		"https://shelter.example.org:8443/intake",
		"https://user@shelter.example.org/intake",
		"https://shelter.example.org/intake/",
		"https://shelter.example.org/intake/more",
		"https://shelter.example.org/intake?next=https://evil.example",
		"https://shelter.example.org/intake#x",
		"https://SHELTER.example.org/intake",
		"https://shelter.example.org.evil.example/intake",
		"https://shelter.example.org/%69ntake",
		"https://clinic.example.org:8443/r",
		"https://clinic.example.org/r?x=1",
		"",
	} {
		if err := p.CheckTarget(bad); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestValidate_RefusesDuplicatesAndBadNames(t *testing.T) {
	p := &partners.Partner{Name: "A", Status: partners.StatusActive,
		RedirectURLs: []string{"https://a.example.org/x", "https://a.example.org/x"}}
	if tutela.ErrorCode(p.Validate()) != tutela.EINVALID {
		t.Error("a duplicated URL was accepted")
	}
	for _, name := range []string{"", "evil\u202ename", "line\nbreak", strings.Repeat("n", partners.MaxNameLen+1)} {
		p := &partners.Partner{Name: name, Status: partners.StatusActive}
		if tutela.ErrorCode(p.Validate()) != tutela.EINVALID {
			t.Errorf("name %q accepted", name)
		}
	}
	if (&partners.Partner{Name: "A", Status: "paused"}).Validate() == nil {
		t.Error("an unknown status was accepted")
	}
}
