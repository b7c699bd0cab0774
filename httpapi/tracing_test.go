package httpapi_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/tracing"
	"tutela/vault"
)

// tracedEnv is an env whose store, vault and API record spans into an in-memory exporter.
func tracedEnv(t *testing.T, d sqlstore.Dialect, trust bool) (*env, *vault.Vault, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := tracing.WithExporter(exp, 1, true)
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	c := clocktest.New(time.Now().UTC())
	db := sqltest.Open(t, d, sqlstore.Options{Clock: c.Now, Tracer: tp})
	v := sqltest.AttachVaultWith(t, db, vault.Options{Tracer: tp})
	e := newEnvOn(t, db, c, func(deps *httpapi.Deps) { deps.Tracer, deps.TrustTraceparent, deps.Keys = tp, trust, v })
	return e, v, exp
}

// TestTracing_RequestSpanParentsStoreAndKEKSpansWithoutSecrets: one API request gives one server
// span named by its route pattern, the store transactions under it and, with the keyset cache
// cold, the KEK unwrap; no span name or attribute holds the password, e-mail, tokens, IDs from
// the path or the query string.
func TestTracing_RequestSpanParentsStoreAndKEKSpansWithoutSecrets(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e, v, exp := tracedEnv(t, d, false)
			const email, pw = "ana.trace@example.org", "violet quartz lantern 7 harbour"
			tn, u := e.seed(t, "acme", email, pw, "program_admin")
			g := e.login(t, "acme", email, pw, "")
			loginSpans := exp.GetSpans()
			if !slices.ContainsFunc(loginSpans, func(s tracetest.SpanStub) bool { return s.Name == "POST /v1/auth/login" }) {
				t.Fatalf("no span for the sign-in: %v", names(loginSpans))
			}

			v.Invalidate() // the next use of a keyset unwraps it with the KEK
			exp.Reset()
			res, body := e.req(t, "GET", "/v1/tenants/acme/users/"+u.ID+"?include=email&sig=q5ecr3t", "", "", g.AccessToken)
			if res.StatusCode != 200 {
				t.Fatalf("get user: %d %s", res.StatusCode, body)
			}
			spans := exp.GetSpans()
			var root tracetest.SpanStub
			for _, s := range spans {
				if s.SpanKind == trace.SpanKindServer {
					if root.Name != "" {
						t.Fatalf("two server spans for one request: %v", names(spans))
					}
					root = s
				}
			}
			if root.Name != "GET /v1/tenants/{tenant}/users/{id}" || root.Parent.IsValid() {
				t.Fatalf("server span %q (parent %v), want the route pattern as a root: %v", root.Name, root.Parent, names(spans))
			}
			if got := attr(root, "http.response.status_code"); got != "200" {
				t.Errorf("status attribute %q", got)
			}
			byID := map[trace.SpanID]tracetest.SpanStub{}
			for _, s := range spans {
				byID[s.SpanContext.SpanID()] = s
			}
			under := func(s tracetest.SpanStub) bool { // s descends from root
				for p := s.Parent; p.IsValid(); p = byID[p.SpanID()].Parent {
					if p.SpanID() == root.SpanContext.SpanID() {
						return true
					}
				}
				return false
			}
			var stores, keks int
			for _, s := range spans {
				if s.SpanContext.TraceID() != root.SpanContext.TraceID() || (s.SpanKind != trace.SpanKindServer && !under(s)) {
					t.Errorf("span %q is outside the request's trace", s.Name)
				}
				switch {
				case attr(s, "db.system.name") != "":
					stores++
					if s.Parent.SpanID() != root.SpanContext.SpanID() && !strings.HasPrefix(s.Name, "sqlstore.") {
						t.Errorf("store span %q not directly under the request", s.Name)
					}
					if attr(s, "db.operation.name") != s.Name || s.Name == "sqlstore.tx" {
						t.Errorf("store span %q has no operation name (%q)", s.Name, attr(s, "db.operation.name"))
					}
				case s.Name == "vault.kek.unwrap":
					keks++
					if got := attr(s, "tutela.kek.backend"); got != "local" {
						t.Errorf("KEK span backend %q, want local", got)
					}
				}
			}
			if stores == 0 || keks == 0 {
				t.Fatalf("%d store spans, %d KEK spans under the request: %v", stores, keks, names(spans))
			}

			secrets := []string{pw, email, "ana.trace", g.AccessToken, g.RefreshToken, g.SessionID, u.ID, tn.ID,
				"q5ecr3t", "include=", "?"}
			for _, s := range append(loginSpans, spans...) {
				values := []string{s.Name, s.Status.Description}
				for _, kv := range s.Attributes {
					values = append(values, kv.Value.String())
				}
				for _, ev := range s.Events {
					for _, kv := range ev.Attributes {
						values = append(values, kv.Value.String())
					}
				}
				for _, val := range values {
					for _, sec := range secrets {
						if sec != "" && strings.Contains(val, sec) {
							t.Errorf("span %q carries %q in %q", s.Name, sec, val)
						}
					}
				}
			}
		})
	}
}

// TestTracing_TraceparentTrustedOnlyWhenConfigured: by default a client's traceparent is
// ignored (a new trace, no remote parent); with TrustTraceparent the request joins it.
func TestTracing_TraceparentTrustedOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, trust := range []bool{false, true} {
		e, _, exp := tracedEnv(t, sqlstore.SQLite, trust)
		exp.Reset() // the setup's own transactions
		res, _ := e.do(t, "GET", "/healthz", "", "traceparent", "00-"+traceID+"-"+parentID+"-01")
		if res.StatusCode != 200 {
			t.Fatalf("healthz %d", res.StatusCode)
		}
		spans := exp.GetSpans()
		if len(spans) != 1 || spans[0].Name != "GET /healthz" {
			t.Fatalf("trust=%v: spans %v", trust, names(spans))
		}
		s := spans[0]
		joined := s.SpanContext.TraceID().String() == traceID && s.Parent.SpanID().String() == parentID && s.Parent.IsRemote()
		if joined != trust {
			t.Fatalf("trust=%v: trace %s parent %s, joined the client's trace = %v", trust, s.SpanContext.TraceID(),
				s.Parent.SpanID(), joined)
		}
	}
}

// TestTracing_OffAddsNoSpans: IsOff tells the no-op providers from a recording one (the
// middleware and the store skip even no-op spans for the former), and an API without a provider
// serves as before.
func TestTracing_OffAddsNoSpans(t *testing.T) {
	t.Parallel()
	if !tracing.IsOff(nil) || !tracing.IsOff(tracing.Off()) || tracing.IsOff(tracing.WithExporter(tracetest.NewInMemoryExporter(), 1, true)) {
		t.Fatal("IsOff misjudges a provider")
	}
	e := newEnv(t, sqlstore.SQLite, nil)
	if res, _ := e.do(t, "GET", "/healthz", ""); res.StatusCode != 200 {
		t.Fatalf("healthz %d", res.StatusCode)
	}
}

// BenchmarkAuthzCheckHTTP_Traced is BenchmarkAuthzCheckHTTP with tracing on, every request
// sampled, spans batched to an exporter that drops them: the cost of recording.
func BenchmarkAuthzCheckHTTP_Traced(b *testing.B) {
	tp := tracing.WithExporter(tracetest.NewNoopExporter(), 1, false)
	b.Cleanup(func() { _ = tp.Shutdown(b.Context()) })
	benchAuthzCheckHTTP(b, tp)
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}
