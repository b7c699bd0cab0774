package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"tutela/config"
)

// Bounds of a load run: whatever the flags say, a run ends by itself, sends at a bounded rate
// and holds a bounded number of requests in flight.
const (
	loadMaxDuration = 10 * time.Minute
	loadMaxRate     = 20_000 // requests per second, per operation
	loadMaxInFlight = 1024   // per operation
	loadMaxUsers    = 2000
)

// loadgenCmd drives mixed traffic at fixed rates against a running `tutela serve` (or, for
// comparison, Ory Hydra's two token endpoints) and reports throughput, latency percentiles
// and errors per operation.
type loadgenCmd struct {
	Target      string        `required:"" help:"Base URL of the server, e.g. http://127.0.0.1:8080." placeholder:"URL"`
	AllowRemote bool          `help:"Allow a target that is not a loopback address (only a server you run, on a network you may load)."`
	TargetKind  string        `default:"tutela" enum:"tutela,hydra" help:"tutela, or hydra (client_credentials and introspect only)."`
	Duration    time.Duration `default:"20s" help:"How long to send, at most 10m."`
	Warmup      time.Duration `default:"0s" help:"Traffic sent first and not counted, at most 1m."`
	InFlight    int           `default:"64" help:"Most requests in flight per operation (1-1024); a request due while they are all busy is dropped and counted."`
	SigninMFA   float64       `name:"signin-mfa" default:"0" help:"Sign-ins with TOTP per second (password, then second factor)."`
	Refresh     float64       `default:"0" help:"Refresh-token exchanges per second."`
	Introspect  float64       `default:"0" help:"Token introspections per second (RFC 7662, service-account client)."`
	Check       float64       `default:"0" help:"POST /v1/authz/check per second (service-account token)."`
	AuditRead   float64       `name:"audit-read" default:"0" help:"GET /v1/audit/events per second (service-account token)."`
	ClientCreds float64       `name:"client-credentials" default:"0" help:"client_credentials grants per second."`

	SetupToken string `help:"Tutela: the one-time token 'tutela bootstrap' printed (or LOADGEN_SETUP_TOKEN); loadgen creates its users and service account with it, through the API." placeholder:"TOKEN"`
	Tenant     string `help:"Tutela: the tenant given to 'tutela bootstrap --tenant'."`
	AdminEmail string `help:"Tutela: the e-mail given to 'tutela bootstrap --email'."`
	Users      int    `help:"Tutela: users to create (default: enough for --signin-mfa, one TOTP step each per 30 s; at most 2000)."`

	ClientID     string `help:"Hydra: an OAuth2 client with the client_credentials grant." placeholder:"ID"`
	ClientSecret string `help:"Hydra: that client's secret (or LOADGEN_CLIENT_SECRET)." placeholder:"SECRET"`
	AdminURL     string `name:"hydra-admin" help:"Hydra: its admin API base URL (introspection), e.g. http://127.0.0.1:4445." placeholder:"URL"`

	CeilingTime time.Duration `default:"2s" help:"How long to measure the limits (Argon2id, Ed25519) in this process."`
}

// loadOp is one operation the generator sends.
type loadOp struct {
	name string
	rate float64
	// limit names what the operation's ratio is taken against: "argon2id" or "ed25519".
	limit string
	do    func(ctx context.Context) error
}

// validate refuses a run that is not bounded or not aimed at this machine.
func (c *loadgenCmd) validate() error {
	var problems []string
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, "--target must be an http(s) URL with a host")
	} else if !c.AllowRemote && !isLoopbackHost(u.Hostname()) {
		problems = append(problems, fmt.Sprintf("--target %s is not a loopback address: load only a server on this machine, or pass --allow-remote for one you run elsewhere", u.Host))
	}
	if c.TargetKind == "hydra" && c.AdminURL != "" {
		a, err := url.Parse(c.AdminURL)
		if err != nil || a.Host == "" {
			problems = append(problems, "--hydra-admin must be an http(s) URL with a host")
		} else if !c.AllowRemote && !isLoopbackHost(a.Hostname()) {
			problems = append(problems, "--hydra-admin is not a loopback address (see --allow-remote)")
		}
	}
	if c.Duration <= 0 || c.Duration > loadMaxDuration {
		problems = append(problems, fmt.Sprintf("--duration must be > 0 and at most %s", loadMaxDuration))
	}
	if c.Warmup < 0 || c.Warmup > time.Minute {
		problems = append(problems, "--warmup must be between 0 and 1m")
	}
	if c.InFlight < 1 || c.InFlight > loadMaxInFlight {
		problems = append(problems, fmt.Sprintf("--in-flight must be 1-%d", loadMaxInFlight))
	}
	if c.CeilingTime < 100*time.Millisecond || c.CeilingTime > time.Minute {
		problems = append(problems, "--ceiling-time must be between 100ms and 1m")
	}
	any := false
	for name, r := range c.rates() {
		if r < 0 || r > loadMaxRate || r != r {
			problems = append(problems, fmt.Sprintf("--%s must be 0-%d requests per second", name, loadMaxRate))
		}
		any = any || r > 0
	}
	if !any {
		problems = append(problems, "no operation has a rate: set at least one of --signin-mfa, --refresh, --introspect, --check, --audit-read, --client-credentials")
	}
	if c.Users < 0 || c.Users > loadMaxUsers {
		problems = append(problems, fmt.Sprintf("--users must be 0-%d", loadMaxUsers))
	}
	switch c.TargetKind {
	case "hydra":
		if c.SigninMFA+c.Refresh+c.Check+c.AuditRead > 0 {
			problems = append(problems, "--target-kind hydra sends only --client-credentials and --introspect")
		}
		if c.ClientID == "" {
			problems = append(problems, "--target-kind hydra needs --client-id and --client-secret (or LOADGEN_CLIENT_SECRET)")
		}
		if c.Introspect > 0 && c.AdminURL == "" {
			problems = append(problems, "--introspect against hydra needs --hydra-admin")
		}
	default:
		if c.SetupToken == "" || c.Tenant == "" || c.AdminEmail == "" {
			problems = append(problems, "--setup-token, --tenant and --admin-email are required: run 'tutela bootstrap --tenant T --email E' on a fresh deployment and pass what it printed")
		}
	}
	if len(problems) > 0 {
		return errors.New("loadgen: " + strings.Join(problems, "; "))
	}
	return nil
}

func (c *loadgenCmd) rates() map[string]float64 {
	return map[string]float64{"signin-mfa": c.SigninMFA, "refresh": c.Refresh, "introspect": c.Introspect,
		"check": c.Check, "audit-read": c.AuditRead, "client-credentials": c.ClientCreds}
}

// isLoopbackHost: an IP literal in 127.0.0.0/8 or ::1, or "localhost". Other names are refused
// without resolving them, so DNS cannot point the load elsewhere.
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// usersFor is how many users --signin-mfa needs over d: each user signs in once per 30 s TOTP
// step (plus once at once, the step after its enrolment), with a fifth more as a margin.
func usersFor(rate float64, d time.Duration) int {
	n := 0
	if rate > 0 {
		per := 1 + d.Seconds()/totpPeriod
		n = int(rate*d.Seconds()/per*1.2) + 1
	}
	// Each user's session carries one refresh at a time: 32 sessions for refreshes.
	return min(max(n, 32), loadMaxUsers)
}

func (c loadgenCmd) Run(e *env) error {
	// Secrets may come from the environment rather than argv, which other users see in ps.
	if c.ClientSecret == "" {
		c.ClientSecret = lookupEnv(e.environ, "LOADGEN_CLIENT_SECRET")
	}
	if c.SetupToken == "" {
		c.SetupToken = lookupEnv(e.environ, "LOADGEN_SETUP_TOKEN")
	}
	if err := c.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, loadMaxDuration+5*time.Minute)
	defer cancel()
	tr := &http.Transport{MaxIdleConns: 4 * loadMaxInFlight, MaxIdleConnsPerHost: 4 * loadMaxInFlight, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	api := &apiCaller{hc: hc, base: strings.TrimRight(c.Target, "/")}
	var ops []loadOp
	var err error
	if c.TargetKind == "hydra" {
		ops, err = c.hydraOps(ctx, hc, api)
	} else {
		ops, err = c.tutelaOps(ctx, e, api)
	}
	if err != nil {
		return err
	}
	hash := config.Default().Auth.Hash
	if cfg, err := config.Load(e.cfgPath, e.environ); err == nil {
		hash = cfg.Auth.Hash
	}
	fmt.Fprintf(e.stderr, "measuring limits in this process for %s...\n", c.CeilingTime)
	limits := map[string]float64{
		"argon2id": argon2Ceiling(ctx, hash, c.CeilingTime),
		"ed25519":  ed25519VerifyCeiling(ctx, c.CeilingTime),
	}
	if c.Warmup > 0 {
		fmt.Fprintf(e.stderr, "warming up for %s...\n", c.Warmup)
		drive(ctx, ops, c.Warmup, c.InFlight)
	}
	fmt.Fprintf(e.stderr, "sending for %s...\n", c.Duration)
	stats := drive(ctx, ops, c.Duration, c.InFlight)
	report(e.stdout, c, ops, stats, limits, hash)
	return nil
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// tutelaOps sets up the run's users and service account and returns Tutela's operations.
func (c *loadgenCmd) tutelaOps(ctx context.Context, e *env, api *apiCaller) ([]loadOp, error) {
	users := c.Users
	if users == 0 {
		users = usersFor(c.SigninMFA, c.Duration+c.Warmup)
	}
	fmt.Fprintf(e.stderr, "setting up %d users and a service account through the API...\n", users)
	f, err := setUp(ctx, api, c.SetupToken, c.Tenant, c.AdminEmail, users, 8)
	if err != nil {
		return nil, err
	}
	saToken := &tokenSource{get: func(ctx context.Context) (string, error) {
		return api.clientCredentials(ctx, "/v1/oauth/token", f.ClientID, f.Secret)
	}}
	if _, err := saToken.token(ctx); err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	// Refreshes rotate: each session's refresh token is used by one request at a time.
	sessions := make(chan *grant, len(f.Sessions))
	access := newTokenRing(len(f.Sessions))
	for _, s := range f.Sessions {
		sessions <- s
		access.put(s.AccessToken)
	}
	var next roundRobin
	ops := []loadOp{
		{name: "signin_mfa", rate: c.SigninMFA, limit: "argon2id", do: func(ctx context.Context) error {
			// The next user with an unused TOTP step.
			for range len(f.Users) {
				u := f.Users[next.next(len(f.Users))]
				g, err := api.signInMFA(ctx, u, nil)
				if errors.Is(err, errNoTOTPStep) {
					continue
				}
				if err == nil {
					access.put(g.AccessToken)
				}
				return err
			}
			return errNoTOTPStep
		}},
		{name: "refresh", rate: c.Refresh, limit: "ed25519", do: func(ctx context.Context) error {
			var s *grant
			select {
			case s = <-sessions:
			default:
				return errNoSession
			}
			g, err := api.refresh(ctx, s.RefreshToken)
			if err != nil {
				// The session is given up: a request that timed out may still have spent the
				// token, and presenting it again would be refresh-token reuse, which revokes
				// the session (RFC 6819 §5.2.2.3).
				return err
			}
			access.put(g.AccessToken)
			sessions <- g
			return nil
		}},
		{name: "introspect", rate: c.Introspect, limit: "ed25519", do: func(ctx context.Context) error {
			var out struct {
				Active bool `json:"active"`
			}
			if err := api.call(ctx, "POST", "/v1/auth/introspect", auth{basicID: f.ClientID, basicSecret: f.Secret},
				url.Values{"token": {access.get()}}, http.StatusOK, &out); err != nil {
				return err
			}
			if !out.Active {
				return errInactive
			}
			return nil
		}},
		{name: "check", rate: c.Check, limit: "ed25519", do: func(ctx context.Context) error {
			tok, err := saToken.token(ctx)
			if err != nil {
				return err
			}
			var d struct {
				Allow bool `json:"allow"`
			}
			if err := api.call(ctx, "POST", "/v1/authz/check", bearer(tok), map[string]string{"action": "READ", "resource": "audit"},
				http.StatusOK, &d); err != nil {
				return err
			}
			if !d.Allow {
				return errDenied
			}
			return nil
		}},
		{name: "audit_read", rate: c.AuditRead, limit: "ed25519", do: func(ctx context.Context) error {
			tok, err := saToken.token(ctx)
			if err != nil {
				return err
			}
			return api.call(ctx, "GET", "/v1/audit/events?limit=20", bearer(tok), nil, http.StatusOK, nil)
		}},
		{name: "client_credentials", rate: c.ClientCreds, limit: "ed25519", do: func(ctx context.Context) error {
			_, err := api.clientCredentials(ctx, "/v1/oauth/token", f.ClientID, f.Secret)
			return err
		}},
	}
	return slices.DeleteFunc(ops, func(o loadOp) bool { return o.rate <= 0 }), nil
}

// hydraOps are Ory Hydra's client_credentials grant and its (admin) introspection, for a
// comparison on the same machine.
func (c *loadgenCmd) hydraOps(ctx context.Context, hc *http.Client, api *apiCaller) ([]loadOp, error) {
	admin := &apiCaller{hc: hc, base: strings.TrimRight(c.AdminURL, "/")}
	tok, err := api.clientCredentials(ctx, "/oauth2/token", c.ClientID, c.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("hydra client_credentials: %w", err)
	}
	ops := []loadOp{
		{name: "client_credentials", rate: c.ClientCreds, limit: "ed25519", do: func(ctx context.Context) error {
			_, err := api.clientCredentials(ctx, "/oauth2/token", c.ClientID, c.ClientSecret)
			return err
		}},
		{name: "introspect", rate: c.Introspect, limit: "ed25519", do: func(ctx context.Context) error {
			var out struct {
				Active bool `json:"active"`
			}
			if err := admin.call(ctx, "POST", "/admin/oauth2/introspect", auth{}, url.Values{"token": {tok}}, http.StatusOK, &out); err != nil {
				return err
			}
			if !out.Active {
				return errInactive
			}
			return nil
		}},
	}
	return slices.DeleteFunc(ops, func(o loadOp) bool { return o.rate <= 0 }), nil
}

var (
	errNoSession = errors.New("no idle session (all refresh tokens in use)")
	errInactive  = errors.New("introspection answered active: false")
	errDenied    = errors.New("check answered allow: false")
)

// tokenSource caches a service account's access token for a minute (they live five).
type tokenSource struct {
	get func(context.Context) (string, error)
	mu  sync.Mutex
	tok string
	at  time.Time
}

func (s *tokenSource) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != "" && time.Since(s.at) < time.Minute {
		return s.tok, nil
	}
	tok, err := s.get(ctx)
	if err != nil {
		return "", err
	}
	s.tok, s.at = tok, time.Now()
	return tok, nil
}

// tokenRing holds recent access tokens (from sign-ins and refreshes) to introspect.
type tokenRing struct {
	mu    sync.Mutex
	slots []string
	w, r  roundRobin
}

func newTokenRing(n int) *tokenRing { return &tokenRing{slots: make([]string, max(n, 1))} }

func (t *tokenRing) put(tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.slots[t.w.next(len(t.slots))] = tok
}

func (t *tokenRing) get() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for range len(t.slots) {
		if tok := t.slots[t.r.next(len(t.slots))]; tok != "" {
			return tok
		}
	}
	return ""
}

// roundRobin hands out 0, 1, …, n-1, 0, … to concurrent callers.
type roundRobin struct {
	mu sync.Mutex
	i  int
}

func (r *roundRobin) next(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.i = (r.i + 1) % n
	return r.i
}

// opStats is what one operation did during a run.
type opStats struct {
	mu        sync.Mutex
	latencies []time.Duration // of successful requests
	errors    map[string]int  // by HTTP status or kind
	sent      int
	// dropped: due while --in-flight requests were busy, or while no user had an unused TOTP
	// step (sign-in) or no session was idle (refresh); never sent.
	dropped int
}

// drive sends every operation at its rate for d: the n-th request of an operation is due at
// start + n/rate, whether or not the earlier ones have answered (an open loop, so a slow server
// does not slow the offered load), unless inFlight of them are outstanding.
func drive(ctx context.Context, ops []loadOp, d time.Duration, inFlight int) []*opStats {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stats := make([]*opStats, len(ops))
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i, op := range ops {
		st := &opStats{errors: map[string]int{}}
		stats[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots := make(chan struct{}, inFlight)
			var reqs sync.WaitGroup
			defer reqs.Wait()
			interval := time.Duration(float64(time.Second) / op.rate)
			for n := int64(0); ; n++ {
				due := start.Add(time.Duration(n) * interval)
				if !due.Before(end) {
					return
				}
				if w := time.Until(due); w > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(w):
					}
				}
				select {
				case slots <- struct{}{}:
				default:
					st.mu.Lock()
					st.dropped++
					st.mu.Unlock()
					continue
				}
				reqs.Add(1)
				go func() {
					defer func() { <-slots; reqs.Done() }()
					t0 := time.Now()
					err := op.do(ctx)
					lat := time.Since(t0)
					st.mu.Lock()
					defer st.mu.Unlock()
					if errors.Is(err, errNoTOTPStep) || errors.Is(err, errNoSession) {
						st.dropped++ // nothing was sent: no user or session was free for it
						return
					}
					st.sent++
					if err != nil {
						st.errors[errorKind(err)]++
						return
					}
					st.latencies = append(st.latencies, lat)
				}()
			}
		}()
	}
	wg.Wait()
	return stats
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, errInactive):
		return "inactive"
	case errors.Is(err, errDenied):
		return "denied"
	}
	if s := statusOf(err); s != 0 {
		return fmt.Sprint(s)
	}
	return "transport"
}
