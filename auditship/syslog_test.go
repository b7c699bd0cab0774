package auditship_test

import (
	"errors"
	"testing"
	"time"

	"tutela/audit"
	"tutela/auditship"
	"tutela/sqlstore"
	"tutela/syslog"
	"tutela/syslog/syslogtest"
)

func syslogShipper(t *testing.T, r *rig, collector *syslogtest.Server, owner string) *auditship.Shipper {
	t.Helper()
	c, err := syslog.New(syslog.Config{Addr: collector.Addr(), RootCAs: collector.RootCAs(), Hostname: "node"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := auditship.New(r.db, []auditship.Destination{auditship.NewSyslog("archive", c, r.clock.Now)},
		auditship.Options{VerifierKey: r.vkey, Origin: origin, Owner: owner, MaxEntries: 6})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func messages(rs []syslogtest.Received) []syslog.Message {
	out := make([]syslog.Message, len(rs))
	for i, r := range rs {
		out[i] = r.Msg
	}
	return out
}

// applyAll feeds rebuilt batches to the receiver, dropping those it already holds by index.
func applyAll(t *testing.T, r *rig, batches []*audit.Batch) (replays int) {
	t.Helper()
	for _, b := range batches {
		_, err := r.store.Apply(ctx, b)
		var be *audit.BatchError
		switch {
		case errors.As(err, &be) && be.Kind == audit.KindReplayed:
			replays++
		case err != nil:
			t.Fatalf("batch from %d: %v", b.From, err)
		}
	}
	return replays
}

// The log shipped over syslog (TLS) can be rebuilt from what the collector kept and verified
// by a receiver against the checkpoints, every index once even when a batch arrived twice.
func TestShipSyslog_CollectorCopyVerifies(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		r := newRig(t, d, "")
		collector := syslogtest.NewServer(t)
		r.record(t, 20)
		s := syslogShipper(t, r, collector, "node-a")
		if n, err := s.Step(ctx); err != nil || n != 20 {
			t.Fatalf("Step = %d, %v", n, err)
		}
		got := collector.WaitForMessages(20+4, 10*time.Second) // 20 entries, 4 batches of at most 6
		for _, m := range got {
			if m.Msg.Facility != syslog.FacilityAudit || m.Msg.AppName != syslog.AppName {
				t.Fatalf("message header %+v", m.Msg)
			}
		}
		batches, err := auditship.BatchesFromSyslog(messages(got))
		if err != nil || len(batches) != 4 {
			t.Fatalf("rebuilt %d batches, %v", len(batches), err)
		}
		// A batch sent twice (the shipper failed after writing it): dropped by index.
		if replays := applyAll(t, r, append(batches, batches[1])); replays != 1 {
			t.Fatalf("%d replays dropped, want 1", replays)
		}
		r.mustHoldEachOnce(t, 20)

		// An altered entry in the collector's copy is refused at its index.
		msgs := messages(got)
		msgs[3].Msg = msgs[3].Msg[:len(msgs[3].Msg)-2] + " }"
		batches, err = auditship.BatchesFromSyslog(msgs)
		if err != nil {
			t.Fatal(err)
		}
		fresh := newRig(t, d, r.vkey)
		_, err = fresh.store.Apply(ctx, batches[0])
		var be *audit.BatchError
		if !errors.As(err, &be) || be.Kind != audit.KindContentMismatch || be.Index != 3 {
			t.Fatalf("altered entry: %v, want content_mismatch at 3", err)
		}
	})
}

// A collector that is down is retried in order; nothing is skipped.
func TestShipSyslog_CollectorDownRetried(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		r := newRig(t, d, "")
		collector := syslogtest.NewServer(t)
		r.record(t, 5)
		s := syslogShipper(t, r, collector, "node-a")
		collector.Stop()
		if _, err := s.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if c := r.cursor(t); c.Next != 0 || c.Failures != 1 {
			t.Fatalf("cursor %+v, want a failure at 0", c)
		}
		collector.Restart()
		r.record(t, 4)
		r.clock.Add(10 * time.Second)
		if n, err := s.Step(ctx); err != nil || n != 9 {
			t.Fatalf("Step = %d, %v", n, err)
		}
		batches, err := auditship.BatchesFromSyslog(messages(collector.WaitForMessages(9+2, 10*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		applyAll(t, r, batches)
		r.mustHoldEachOnce(t, 9)
	})
}
