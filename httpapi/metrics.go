package httpapi

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

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
		reg.MustRegister(collectors.NewDBStatsCollector(db.SQL(), "tutela"), jobs.NewCollector(db))
	}
	return m
}

// middleware records each request under its route pattern (never the raw path, so IDs in paths
// cannot blow up label cardinality); requests that match no route count as "unmatched".
func (m *metrics) middleware(mux *http.ServeMux) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			route := "unmatched"
			if _, p := mux.Handler(r); p != "" && p != "/" {
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
