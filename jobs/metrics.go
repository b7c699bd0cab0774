package jobs

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tutela/sqlstore"
)

// Collector exports the queue's depth and dead jobs as gauges, read from the database at each
// scrape, so every node reports the cluster-wide numbers.
type Collector struct {
	db      *sqlstore.DB
	pending *prometheus.Desc
	dead    *prometheus.Desc
}

// NewCollector returns the collector for db's queue.
func NewCollector(db *sqlstore.DB) *Collector {
	return &Collector{db: db,
		pending: prometheus.NewDesc("tutela_jobs_pending", "Jobs waiting, running or waiting to retry.", nil, nil),
		dead:    prometheus.NewDesc("tutela_jobs_dead", "Jobs that failed their last attempt (see docs/jobs.md).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.pending; ch <- c.dead }

// Collect implements prometheus.Collector. A database that does not answer in time reports
// nothing rather than stale numbers.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n sqlstore.JobCounts
	if err := c.db.View(ctx, func(tx *sqlstore.Tx) (err error) { n, err = tx.CountJobs(ctx); return err }); err != nil {
		ch <- prometheus.NewInvalidMetric(c.pending, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n.Pending))
	ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(n.Dead))
}
