package mail

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"testing"

	"tutela"
)

// The sender never reaches AUTH without TLS (config forbids credentials with TLS "none" and the
// other modes encrypt first); plainAuth refuses anyway, so a future code path cannot leak them.
func TestPlainAuth_RefusesUnencryptedConnection(t *testing.T) {
	t.Parallel()
	a := plainAuth{user: "relay", pass: tutela.NewSecret("pw")}
	for _, name := range []string{"smtp.example.com", "localhost", "127.0.0.1"} {
		_, resp, err := a.Start(&smtp.ServerInfo{Name: name, TLS: false, Auth: []string{"PLAIN"}})
		if !errors.Is(err, ErrAuthWithoutTLS) || resp != nil {
			t.Errorf("%s: err = %v resp = %q, want ErrAuthWithoutTLS and no credentials", name, err, resp)
		}
	}
}

func TestPlainAuth_RequiresPLAIN(t *testing.T) {
	t.Parallel()
	a := plainAuth{user: "relay", pass: tutela.NewSecret("pw")}
	if _, _, err := a.Start(&smtp.ServerInfo{TLS: true, Auth: []string{"CRAM-MD5", "LOGIN"}}); !errors.Is(err, ErrAuthMechanism) {
		t.Fatalf("err = %v, want ErrAuthMechanism", err)
	}
	mech, resp, err := a.Start(&smtp.ServerInfo{TLS: true, Auth: []string{"LOGIN", "PLAIN"}})
	if err != nil || mech != "PLAIN" || string(resp) != "\x00relay\x00pw" {
		t.Fatalf("Start = %q, %q, %v", mech, resp, err)
	}
	if _, err := a.Next([]byte("challenge"), true); err == nil {
		t.Fatal("Next accepted a challenge PLAIN never sends")
	}
}

func TestAuthError_DropsServerText(t *testing.T) {
	t.Parallel()
	// A hostile relay echoing the base64 credentials back must not put them in our logs.
	err := authError(&textproto.Error{Code: 535, Msg: "AHJlbGF5AHB3 is wrong"})
	if got, want := err.Error(), "mail: AUTH rejected by server (code 535)"; got != want {
		t.Fatalf("err = %q, want %q", got, want)
	}
	if got := authError(errors.New("AHJlbGF5AHB3")).Error(); got != "mail: AUTH failed" {
		t.Fatalf("err = %q", got)
	}
}
