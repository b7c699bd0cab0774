package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"tutela/sqlstore"
)

type jobsCmd struct {
	Dead jobsDeadCmd `cmd:"" help:"List jobs that gave up (most recent first), with the class of their last error."`
}

type jobsDeadCmd struct {
	Limit int `default:"50" help:"How many to list (at most 1000)."`
}

// Run lists dead jobs without payloads (dead jobs keep none) and with the stored error class only,
// which never holds a server's reply text or an address (package jobs).
func (c jobsDeadCmd) Run(e *env) error {
	if c.Limit < 1 || c.Limit > 1000 {
		return fmt.Errorf("--limit must be 1 to 1000")
	}
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	var dead []*sqlstore.Job
	var counts sqlstore.JobCounts
	if err := m.DB.View(e.ctx, func(tx *sqlstore.Tx) (err error) {
		if counts, err = tx.CountJobs(e.ctx); err != nil {
			return err
		}
		dead, err = tx.DeadJobs(e.ctx, c.Limit)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d pending, %d dead\n", counts.Pending, counts.Dead)
	if len(dead) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tKIND\tTENANT\tATTEMPTS\tCREATED\tDEAD\tLAST ERROR")
	for _, j := range dead {
		tenant := j.TenantID
		if tenant == "" {
			tenant = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.Kind, tenant, j.Attempts, j.MaxAttempts,
			j.CreatedAt.Format(time.RFC3339), j.DeadAt.Format(time.RFC3339), j.LastError)
	}
	return tw.Flush()
}
