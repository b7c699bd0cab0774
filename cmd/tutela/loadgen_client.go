package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"tutela"
	"tutela/httpapi/middleware"
)

// apiCaller is a small client of Tutela's /v1 API over HTTP: what `tutela loadgen` sends, and
// what the multi-node tests drive their nodes with. It holds no credential of its own: each call
// names the one it uses.
type apiCaller struct {
	hc   *http.Client
	base string // scheme://host:port, no trailing slash
}

// maxAnswer bounds what one answer may make the caller read.
const maxAnswer = 1 << 20

// apiError is an answer other than the one expected.
type apiError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// statusOf is the HTTP status an error carries, 0 for a transport error.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// auth says how a call authenticates: a bearer access token, a session cookie, HTTP Basic
// (a service account's client ID and secret), or nothing.
type auth struct {
	bearer, cookie string
	basicID        string
	basicSecret    string
}

func bearer(tok string) auth { return auth{bearer: tok} }

// do sends one request and returns the status and body. A form body is sent url-encoded, any
// other non-nil body as JSON.
func (c *apiCaller) do(ctx context.Context, method, path string, a auth, body any, hdr http.Header) (int, []byte, http.Header, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, nil, err
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	switch {
	case a.bearer != "":
		req.Header.Set("Authorization", "Bearer "+a.bearer)
	case a.basicID != "":
		req.SetBasicAuth(a.basicID, a.basicSecret)
	case a.cookie != "":
		req.AddCookie(&http.Cookie{Name: middleware.SessionCookie, Value: a.cookie}) // #nosec G124 -- a client sending a cookie, not a server setting one
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	return res.StatusCode, b, res.Header, err
}

// call sends one request and decodes the answer into out (when not nil) if its status is want;
// any other status is an *apiError.
func (c *apiCaller) call(ctx context.Context, method, path string, a auth, body any, want int, out any) error {
	status, b, _, err := c.do(ctx, method, path, a, body, nil)
	if err != nil {
		return err
	}
	if status != want {
		return &apiError{Method: method, Path: path, Status: status, Body: string(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// grant is what a sign-in, a second factor or a refresh answers, plus the session cookie.
type grant struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	SessionID    string `json:"session_id"`
	UserID       string `json:"user_id"`
	TenantID     string `json:"tenant_id"`
	Cookie       string `json:"-"`
}

// account is a user the load generator (or a test) signs in as: its password and TOTP seed.
// A TOTP time step is accepted once, so each sign-in takes the next unused step inside the
// server's window (the previous, current and next 30 s step).
type account struct {
	Tenant, Email, Password, UserID string
	seed                            string // base32 TOTP seed
	mu                              sync.Mutex
	lastStep                        int64
}

const totpPeriod = 30

// nextCode returns a TOTP code of a step the server has not seen used, or ok false while every
// step in its window is spent. The step counts as spent from here on, whatever the answer.
func (a *account) nextCode(now time.Time) (code string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := now.Unix() / totpPeriod
	for step := cur - 1; step <= cur+1; step++ {
		// The previous step only well inside the current one: a request that reaches the
		// server after the next boundary would carry a code two steps old.
		if step <= a.lastStep || (step < cur && now.Unix()%totpPeriod > totpPeriod-10) {
			continue
		}
		code, err := hotp.GenerateCodeCustom(a.seed, uint64(step), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}) // #nosec G115 -- a Unix time step is positive
		if err != nil {
			return "", false
		}
		a.lastStep = step
		return code, true
	}
	return "", false
}

// signIn signs in with the password alone: for an account without a second factor yet.
func (c *apiCaller) signIn(ctx context.Context, a *account, hdr http.Header) (*grant, error) {
	status, b, h, err := c.do(ctx, "POST", "/v1/auth/login", auth{}, map[string]string{"tenant": a.Tenant, "email": a.Email, "password": a.Password}, hdr)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &apiError{Method: "POST", Path: "/v1/auth/login", Status: status, Body: string(b)}
	}
	return decodeGrant(b, h)
}

// signInMFA signs in with the password, then the next TOTP code: two requests, one sign-in.
func (c *apiCaller) signInMFA(ctx context.Context, a *account, hdr http.Header) (*grant, error) {
	status, b, _, err := c.do(ctx, "POST", "/v1/auth/login", auth{}, map[string]string{"tenant": a.Tenant, "email": a.Email, "password": a.Password}, hdr)
	if err != nil {
		return nil, err
	}
	var ch struct {
		MFA struct {
			Challenge string `json:"challenge"`
		} `json:"mfa"`
	}
	if status != http.StatusUnauthorized || json.Unmarshal(b, &ch) != nil || ch.MFA.Challenge == "" {
		return nil, &apiError{Method: "POST", Path: "/v1/auth/login", Status: status, Body: string(b)}
	}
	code, ok := a.nextCode(time.Now())
	if !ok {
		return nil, errNoTOTPStep
	}
	status, b, h, err := c.do(ctx, "POST", "/v1/auth/mfa", auth{}, map[string]string{"challenge": ch.MFA.Challenge, "code": code}, hdr)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &apiError{Method: "POST", Path: "/v1/auth/mfa", Status: status, Body: string(b)}
	}
	return decodeGrant(b, h)
}

// errNoTOTPStep: every step in the account's window is spent; it can sign in again in the
// next 30 s step.
var errNoTOTPStep = errors.New("no unused TOTP step for this account yet")

func decodeGrant(b []byte, h http.Header) (*grant, error) {
	var g grant
	if err := json.Unmarshal(b, &g); err != nil || g.AccessToken == "" {
		return nil, fmt.Errorf("malformed grant: %v", err)
	}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == middleware.SessionCookie {
			g.Cookie = c.Value
		}
	}
	return &g, nil
}

// enrolTOTP enrols a TOTP factor for the signed-in account and confirms it with the current
// code (whose step is then spent).
func (c *apiCaller) enrolTOTP(ctx context.Context, a *account, access string) error {
	var en struct {
		FactorID string `json:"factor_id"`
		Secret   string `json:"secret"`
	}
	if err := c.call(ctx, "POST", "/v1/auth/mfa/totp", bearer(access), struct{}{}, http.StatusCreated, &en); err != nil {
		return err
	}
	a.mu.Lock()
	a.seed, a.lastStep = en.Secret, 0
	a.mu.Unlock()
	code, ok := a.nextCode(time.Now())
	if !ok {
		return errNoTOTPStep
	}
	return c.call(ctx, "POST", "/v1/auth/mfa/totp/confirm", bearer(access),
		map[string]string{"factor_id": en.FactorID, "code": code}, http.StatusNoContent, nil)
}

// refresh spends a refresh token for the next one (RFC 6749 §10.4 rotation).
func (c *apiCaller) refresh(ctx context.Context, rt string) (*grant, error) {
	var g grant
	if err := c.call(ctx, "POST", "/v1/auth/refresh", auth{}, map[string]string{"refresh_token": rt}, http.StatusOK, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// clientCredentials gets a service account's access token (RFC 6749 §4.4).
func (c *apiCaller) clientCredentials(ctx context.Context, path, id, secret string) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := c.call(ctx, "POST", path, auth{basicID: id, basicSecret: secret},
		url.Values{"grant_type": {"client_credentials"}}, http.StatusOK, &tok); err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", errors.New("token endpoint answered no access_token")
	}
	return tok.AccessToken, nil
}

// fixture is what setUp made: a tenant with a super-admin, users with a TOTP factor each and
// an open session each, and a service account that may read the audit log.
type fixture struct {
	Tenant     string
	Admin      *account
	AdminToken string // the super-admin's access token, second factor fresh
	Users      []*account
	Sessions   []*grant // Sessions[i] is Users[i]'s session from its enrolment
	ClientID   string
	Secret     string
}

// newPassword is a long random passphrase the password policy accepts.
func newPassword() string { return "lg-" + tutela.RandomToken(24) }

// setUp turns a bootstrap setup token into a fixture, through the API only: the super-admin
// sets a password, enrols TOTP and signs in with it (a fresh second factor for what follows),
// creates users (each gets a password through an administrator's reset and enrols TOTP) and a
// service account. workers bounds the requests in flight.
func setUp(ctx context.Context, c *apiCaller, setupToken, tenant, adminEmail string, users, workers int) (*fixture, error) {
	admin := &account{Tenant: tenant, Email: adminEmail, Password: newPassword()}
	if err := c.call(ctx, "POST", "/v1/auth/setup", auth{}, map[string]string{"token": setupToken, "password": admin.Password},
		http.StatusNoContent, nil); err != nil {
		return nil, fmt.Errorf("setup token: %w", err)
	}
	g, err := c.signIn(ctx, admin, nil)
	if err != nil {
		return nil, fmt.Errorf("super-admin sign-in: %w", err)
	}
	if err := c.enrolTOTP(ctx, admin, g.AccessToken); err != nil {
		return nil, fmt.Errorf("super-admin TOTP: %w", err)
	}
	if g, err = c.signInMFA(ctx, admin, nil); err != nil {
		return nil, fmt.Errorf("super-admin sign-in with TOTP: %w", err)
	}
	f := &fixture{Tenant: tenant, Admin: admin, AdminToken: g.AccessToken,
		Users: make([]*account, users), Sessions: make([]*grant, users)}
	var sa struct {
		ServiceAccount struct {
			ClientID string `json:"client_id"`
		} `json:"service_account"`
		Secret string `json:"client_secret"`
	}
	if err := c.call(ctx, "POST", "/v1/tenants/"+tenant+"/service-accounts", bearer(f.AdminToken), map[string]any{
		"name": "loadgen", "clearance": "GREEN",
		"permissions": []map[string]string{{"resource": "audit", "action": "READ"}},
	}, http.StatusCreated, &sa); err != nil {
		return nil, fmt.Errorf("service account: %w", err)
	}
	f.ClientID, f.Secret = sa.ServiceAccount.ClientID, sa.Secret
	errs := make(chan error, users)
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			u := &account{Tenant: tenant, Email: fmt.Sprintf("lg-%d-%s@example.org", i, strings.ToLower(tutela.RandomToken(4))), Password: newPassword()}
			s, err := c.addUser(ctx, f.AdminToken, u)
			if err == nil {
				err = c.enrolTOTP(ctx, u, s.AccessToken)
			}
			if err != nil {
				errs <- fmt.Errorf("user %d: %w", i, err)
				return
			}
			f.Users[i], f.Sessions[i] = u, s
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return f, nil
}

// addUser creates u in its tenant as the administrator, gives it its password through a reset
// token (as a person would receive it) and signs it in with the password. It returns that
// session.
func (c *apiCaller) addUser(ctx context.Context, adminToken string, u *account) (*grant, error) {
	t := "/v1/tenants/" + u.Tenant + "/users"
	var created struct {
		ID string `json:"id"`
	}
	if err := c.call(ctx, "POST", t, bearer(adminToken), map[string]string{"email": u.Email, "display_name": "Load " + u.Email},
		http.StatusCreated, &created); err != nil {
		return nil, err
	}
	u.UserID = created.ID
	var reset struct {
		Token string `json:"reset_token"`
	}
	if err := c.call(ctx, "POST", t+"/"+created.ID+"/password-reset", bearer(adminToken), struct{}{}, http.StatusCreated, &reset); err != nil {
		return nil, err
	}
	if err := c.call(ctx, "POST", "/v1/auth/password/reset", auth{}, map[string]string{"token": reset.Token, "new_password": u.Password},
		http.StatusNoContent, nil); err != nil {
		return nil, err
	}
	return c.signIn(ctx, u, nil)
}
