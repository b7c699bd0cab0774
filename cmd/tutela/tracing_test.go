package main

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is a local OTLP/HTTP traces receiver: it keeps the span names and the
// Authorization header of every export.
type collector struct {
	mu    sync.Mutex
	names []string
	auth  []string
	bad   []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		c.bad = append(c.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		http.Error(w, "unexpected", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			c.bad = append(c.bad, "gzip: "+err.Error())
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		c.bad = append(c.bad, "protobuf: "+err.Error())
		http.Error(w, "bad protobuf", http.StatusBadRequest)
		return
	}
	c.auth = append(c.auth, r.Header.Get("Authorization"))
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.names = append(c.names, s.Name)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Write(out)
}

// TestServe_TracingPostsSpansToOTLPCollector: with tracing.otlp_endpoint set, serve exports its
// spans over OTLP/HTTP to the collector, with the headers of TUTELA_TRACING_HEADERS; the spans
// still queued are flushed when it stops.
func TestServe_TracingPostsSpansToOTLPCollector(t *testing.T) {
	t.Parallel()
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	env := append(baseEnv(t), "TUTELA_TRACING_OTLP_ENDPOINT="+srv.URL+"/v1/traces",
		"TUTELA_TRACING_HEADERS=Authorization=Bearer collector-key-7")
	addr, logs, stop := startServe(t, env)
	res, err := http.Get("http://" + addr + "/readyz?probe=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, logs)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.bad) > 0 {
		t.Fatalf("collector got unexpected requests: %q", col.bad)
	}
	joined := strings.Join(col.names, "\n")
	if !strings.Contains(joined, "GET /readyz") || !strings.Contains(joined, "sqlstore.") {
		t.Fatalf("collector got spans %q, want the probe's request span and store spans", col.names)
	}
	for _, a := range col.auth {
		if a != "Bearer collector-key-7" {
			t.Fatalf("export carried Authorization %q", a)
		}
	}
	if strings.Contains(logs.String(), "collector-key-7") {
		t.Fatal("the collector's key reached the log")
	}
}

// TestServe_TracingOffSendsNothing: without tracing.otlp_endpoint (the default) there is no
// exporter: a collector named only by the standard OTEL_EXPORTER_OTLP_ENDPOINT gets nothing.
func TestServe_TracingOffSendsNothing(t *testing.T) {
	t.Parallel()
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	env := append(baseEnv(t), "OTEL_EXPORTER_OTLP_ENDPOINT="+srv.URL)
	addr, logs, stop := startServe(t, env)
	res, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, logs)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.names) > 0 || len(col.bad) > 0 {
		t.Fatalf("tracing off, yet the collector got %q %q", col.names, col.bad)
	}
}
