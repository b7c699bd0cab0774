package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tutela"
	"tutela/httpapi/middleware"
	"tutela/jobs"
	"tutela/sqlstore"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, db *sqlstore.DB) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tutela_http_requests_total",
			Help: "HTTP requests by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tutela_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tutela_build_info",
		Help:        "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": tutela.Version, "goversion": goVersion},
	})
	build.Set(1)
	reg.MustRegister(m.requests, m.latency, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if db != nil {
		reg.MustRegister(collectors.NewDBStatsCollector(db.SQL(), "tutela"), jobs.NewCollector(db), newCommitCollector(db))
	}
	return m
}

// middleware records each request under its route pattern (never the raw path, so IDs in paths
// cannot blow up label cardinality); requests that match no route count as "unmatched".
func (m *metrics) middleware(routeOf func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			route := "unmatched"
			if p := routeOf(r); p != "" {
				route = p
			}
			rec := middleware.Recorder(w)
			defer func() {
				m.requests.WithLabelValues(r.Method, route, strconv.Itoa(rec.Status())).Inc()
				m.latency.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// MetricsHandler serves GET /metrics for the metrics listener (config metrics.addr). The API
// listener does not serve it: the build, Go runtime and process details it shows help an
// attacker more than anyone on the Internet needs them (ASVS 13.4.6, 14.3.3). With
// Deps.MetricsToken set every scrape must send it as a bearer token; anything else on this
// listener is a JSON 404 or 405.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	prom := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if !s.d.MetricsToken.IsZero() && !metricsTokenOK(r, s.d.MetricsToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tutela-metrics"`)
			middleware.WriteError(w, r, tutela.Errorf(tutela.EUNAUTHENTICATED, "a valid metrics bearer token is required"))
			return
		}
		prom.ServeHTTP(w, r)
	})
	ms := &Server{mux: mux} // dispatch: the API's JSON 404 and 405 for this listener too
	return middleware.Chain(http.HandlerFunc(ms.dispatch),
		middleware.WithLogger(s.d.Logger),
		middleware.RequestID,
		middleware.Recover,
		middleware.SecurityHeaders(false),
	)
}

// metricsTokenOK compares the request's bearer token with want in constant time; hashing both
// first keeps the comparison's duration independent of the lengths too.
func metricsTokenOK(r *http.Request, want tutela.Secret) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	g, w := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256(want.Bytes())
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
