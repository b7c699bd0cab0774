package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tutela"
)

// aiMetrics are the gateway's Prometheus metrics, by provider (the tenant's provider name) and
// model (the tenant's model name). No tenant label: tenants' names are theirs, and the audit
// log already has every call per tenant.
type aiMetrics struct {
	requests     *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	placeholders *prometheus.CounterVec
	flagged      *prometheus.CounterVec
}

func newAIMetrics(reg *prometheus.Registry) *aiMetrics {
	m := &aiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tutela_ai_requests_total", Help: "AI gateway inferences by provider, model and status (ok or an error code).",
		}, []string{"provider", "model", "status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tutela_ai_tokens_total", Help: "Tokens by provider, model and kind (prompt, completion), as providers report them.",
		}, []string{"provider", "model", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tutela_ai_request_duration_seconds",
			Help:    "AI gateway inference latency, provider included, by provider and model.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"provider", "model"}),
		placeholders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tutela_ai_placeholders_total", Help: "Values replaced by placeholders before leaving, by provider and model.",
		}, []string{"provider", "model"}),
		flagged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tutela_ai_flagged_total", Help: "Identifier-like text models wrote that Tutela did not put there, by provider, model and kind.",
		}, []string{"provider", "model", "kind"}),
	}
	reg.MustRegister(m.requests, m.tokens, m.latency, m.placeholders, m.flagged)
	return m
}

func (m *aiMetrics) observe(call *aiCall, res aiResult) {
	pr, mo := call.provider.Name, call.model.Name
	status := "ok"
	if res.err != nil {
		status = tutela.ErrorCode(res.err)
	}
	m.requests.WithLabelValues(pr, mo, status).Inc()
	m.tokens.WithLabelValues(pr, mo, "prompt").Add(float64(res.prompt))
	m.tokens.WithLabelValues(pr, mo, "completion").Add(float64(res.complete))
	m.latency.WithLabelValues(pr, mo).Observe(time.Since(call.start).Seconds())
	n := 0
	for _, ph := range call.red.Placeholders() {
		n += ph.Uses
	}
	m.placeholders.WithLabelValues(pr, mo).Add(float64(n))
	for _, f := range res.flags {
		m.flagged.WithLabelValues(pr, mo, f.Kind).Inc()
	}
}
