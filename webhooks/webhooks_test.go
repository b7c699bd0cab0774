package webhooks_test

import (
	"strings"
	"testing"

	"tutela"
	"tutela/webhooks"
)

func TestValidURL(t *testing.T) {
	for _, ok := range []string{"https://hooks.example.org/in", "https://hooks.example.org:8443/in?token=abc", "https://[2001:db8::1]/x",
		"https://hooks.example.org"} {
		if err := webhooks.ValidURL(ok); err != nil {
			t.Errorf("ValidURL(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"http://hooks.example.org/in", "https://u@hooks.example.org/", "https://hooks.example.org/#x",
		"https://hooks.example.org/#", "https://HOOKS.example.org/", "https://hooks.example.org/a b", "ftp://hooks.example.org/",
		"https:opaque", "//hooks.example.org/", "https://:443/", "https://hooks.example.org/\x00", "\xff"} {
		err := webhooks.ValidURL(bad)
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("ValidURL(%q) = %v, want invalid", bad, err)
			continue
		}
		// The URL is not echoed: it may hold a token.
		if strings.Contains(tutela.ErrorMessage(err), "hooks.example.org") {
			t.Errorf("error %q echoes the URL", tutela.ErrorMessage(err))
		}
	}
}

func TestSubscribedAndOrigin(t *testing.T) {
	w := webhooks.Webhook{Events: []string{webhooks.ApprovalApproved}}
	if !w.Subscribed(webhooks.ApprovalApproved) || w.Subscribed(webhooks.ApprovalRejected) {
		t.Fatal("exact subscription")
	}
	all := webhooks.Webhook{Events: []string{webhooks.All}}
	for _, e := range webhooks.EventTypes {
		if !all.Subscribed(e) {
			t.Fatalf("* misses %s", e)
		}
	}
	if got := webhooks.Origin("https://hooks.example.org:8443/services/T0K3N?sig=x"); got != "https://hooks.example.org:8443" {
		t.Fatalf("Origin = %q", got)
	}
	if s := webhooks.NewSecret().Reveal(); !strings.HasPrefix(s, webhooks.SecretPrefix) || len(s) != len(webhooks.SecretPrefix)+64 {
		t.Fatalf("secret of %d bytes", len(s))
	}
}
