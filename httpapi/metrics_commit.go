package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"

	"tutela/sqlstore"
)

// commitCollector exports the store's group-commit writer (sqlstore/groupcommit.go): how many
// records each transaction carries, and how many write transactions the store begins at all.
type commitCollector struct {
	db                                         *sqlstore.DB
	batches, records, events, solo, queued, tx *prometheus.Desc
	size                                       *prometheus.Desc
}

func newCommitCollector(db *sqlstore.DB) *commitCollector {
	return &commitCollector{db: db,
		batches: prometheus.NewDesc("tutela_audit_commit_batches_total", "Group-commit transactions of records (API call audit events, sign-in failures).", nil, nil),
		records: prometheus.NewDesc("tutela_audit_commit_records_total", "Records answered by the group-commit writer.", nil, nil),
		events:  prometheus.NewDesc("tutela_audit_commit_events_total", "Audit events in group-committed records.", nil, nil),
		solo:    prometheus.NewDesc("tutela_audit_commit_solo_retries_total", "Records retried in a transaction of their own after their batch failed.", nil, nil),
		queued:  prometheus.NewDesc("tutela_audit_commit_queued", "Records waiting for the group-commit writer.", nil, nil),
		tx:      prometheus.NewDesc("tutela_db_write_transactions_total", "Read-write transactions the store began (group commits included).", nil, nil),
		size:    prometheus.NewDesc("tutela_audit_commit_batch_size", "Records (callers) per group-commit transaction.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *commitCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.batches, c.records, c.events, c.solo, c.queued, c.tx, c.size} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The counters are the store's own, read without the
// database.
func (c *commitCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.GroupCommitStats()
	ch <- prometheus.MustNewConstMetric(c.batches, prometheus.CounterValue, float64(s.Batches))
	ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(s.Callers))
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(s.Events))
	ch <- prometheus.MustNewConstMetric(c.solo, prometheus.CounterValue, float64(s.Solo))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(c.tx, prometheus.CounterValue, float64(s.WriteTransactions))
	buckets := make(map[float64]uint64, len(sqlstore.BatchSizeBuckets))
	var cum uint64
	for i, ub := range sqlstore.BatchSizeBuckets {
		cum += s.BatchSizes[i]
		buckets[float64(ub)] = cum
	}
	cum += s.BatchSizes[len(sqlstore.BatchSizeBuckets)]
	ch <- prometheus.MustNewConstHistogram(c.size, cum, float64(s.Callers), buckets)
}
