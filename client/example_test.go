package client_test

import (
	"context"
	"log"
	"net/http"
	"os"

	"tutela"
	"tutela/authz"
	"tutela/client"
)

func Example() {
	c, err := client.New(client.Config{
		BaseURL:  "https://tutela.example.org",
		Issuer:   "https://tutela.example.org",
		Audience: "https://records.example.org",
		// A service account (tutela service-account create) for revocation checks.
		ClientID:     os.Getenv("TUTELA_CLIENT_ID"),
		ClientSecret: tutela.NewSecret(os.Getenv("TUTELA_CLIENT_SECRET")),
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	// Fixed permission per route: 401 (also for a missing step-up on sensitive actions), 403
	// with the reason, or the handler.
	mux.Handle("GET /records", c.Require(authz.Read, "records")(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			d := client.DecisionFrom(r.Context())
			_ = d.Obligations.Mask // fields to mask in the response
		})))
	// Classification known only once the record is loaded: authenticate, then ask.
	mux.Handle("GET /records/{id}", c.Authenticate(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			d, err := c.Authorize(r.Context(), authz.Request{Action: authz.Read, Resource: "records",
				Class: authz.Red, Purpose: r.Header.Get("X-Purpose")})
			if err != nil {
				http.Error(w, `{"error":{"code":"unavailable","message":"try again"}}`, http.StatusServiceUnavailable)
				return
			}
			if !d.Allow {
				// 403 with the reason, or 401 with the RFC 9470 challenge when a fresh
				// second factor (RED data) would allow it.
				c.Refuse(w, r, d)
				return
			}
			_ = client.ClaimsFrom(r.Context()).Subject
		})))

	// Optional: fail fast at startup if Tutela is unreachable.
	if err := c.Refresh(context.Background()); err != nil {
		log.Print(err)
	}
}
