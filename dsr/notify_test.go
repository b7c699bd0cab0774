package dsr_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/dsr"
	"tutela/identity"
	"tutela/jobs"
	"tutela/mail"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// deadlines is an env with the durable queue, the identity service's mail path (recorded) and
// the notifier registered, as serve wires them.
type deadlines struct {
	*env
	q    *jobs.Queue
	sent *mail.Recorder
}

func newDeadlines(t *testing.T, e *env) *deadlines {
	t.Helper()
	sealer, err := vault.NewVaultSealer(e.vault, "", vault.PurposeJobs, tutela.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	q := jobs.New(e.db, sealer, jobs.Options{})
	rec := &mail.Recorder{}
	ids := identity.New(identity.Deps{DB: e.db, Mailer: rec, Jobs: q, Clock: e.clock.Now}, identity.Config{})
	(&dsr.Notifier{DB: e.db, Mail: ids}).Register(q)
	return &deadlines{env: e, q: q, sent: rec}
}

// run delivers every job due at the clock's time and returns the e-mails sent, by recipient.
func (d *deadlines) run(t *testing.T) []string {
	t.Helper()
	d.sent.Reset()
	if _, err := d.q.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	var to []string
	for _, m := range d.sent.Messages() {
		to = append(to, m.To)
	}
	slices.Sort(to)
	return to
}

// notices lists the deadline steps recorded for a request, in order.
func (d *deadlines) notices(t *testing.T, tenantID, id string) []string {
	t.Helper()
	recs, _, err := d.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tenantID, TargetType: "dsr", TargetID: id, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		if a := r.Event.Action; a == "dsr.reminder" || a == "dsr.overdue" {
			out = append(out, a)
		}
	}
	slices.Reverse(out)
	return out
}

// TestDeadlines_RemindersAndOverdueFireOnTheClock: with the default policy (30 days; reminders
// 7 days and 1 day before), the reminders go out at their offsets (to the programme
// administrators while nobody is assigned, then to the assignee) and the overdue notice at the
// due date, each recorded in the audit log; a completed request gets none, and an extension
// moves them to the new due date.
func TestDeadlines_RemindersAndOverdueFireOnTheClock(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		d := newDeadlines(t, e)
		tn := e.tenant(t)
		subj := e.subject(t, tn.ID, map[string]string{"full_name": "Ada Lovelace"})
		open := e.newDSR(t, tn, subj, privacy.DSRAccess, "", "")
		done := e.newDSR(t, tn, subj, privacy.DSRRestriction, "", "")
		extended := e.newDSR(t, tn, subj, privacy.DSRAccess, "", "")
		e.update(t, func(tx *sqlstore.Tx) error {
			_, err := tx.DSRs(tn.ID).Extend(as(tn.worker), extended.ID, 10, "ticket 1: complex request", e.pol)
			return err
		})
		start := e.clock.Now()
		if to := d.run(t); len(to) != 0 {
			t.Fatalf("e-mails at creation: %v", to)
		}
		e.complete(t, tn, done.ID)

		// 23 days in: nothing yet. 23 days and a minute (7 days before due): the first reminder,
		// to the approver (program_admin) since nobody is assigned.
		e.clock.Set(start.Add(23*24*time.Hour - time.Minute))
		if to := d.run(t); len(to) != 0 {
			t.Fatalf("e-mails before the first reminder: %v", to)
		}
		e.clock.Set(start.Add(23*24*time.Hour + time.Minute))
		if to := d.run(t); !slices.Equal(to, []string{tn.approver.Email}) {
			t.Fatalf("first reminder went to %v, want the programme administrator %s", to, tn.approver.Email)
		}
		if got := d.notices(t, tn.ID, open.ID); !slices.Equal(got, []string{"dsr.reminder"}) {
			t.Fatalf("notices = %v", got)
		}
		// Assigned, the next reminder goes to the assignee.
		e.update(t, func(tx *sqlstore.Tx) error {
			_, err := tx.DSRs(tn.ID).Verify(as(tn.worker), open.ID, privacy.VerificationVerified, "document_copy")
			return err
		})
		e.update(t, func(tx *sqlstore.Tx) error {
			_, err := tx.DSRs(tn.ID).Assign(as(tn.worker), open.ID, tn.worker.ID, tn.approver.ID)
			return err
		})
		e.clock.Set(start.Add(29*24*time.Hour + time.Minute))
		if to := d.run(t); !slices.Equal(to, []string{tn.worker.Email}) {
			t.Fatalf("second reminder went to %v, want the assignee %s", to, tn.worker.Email)
		}
		// At the due date: the overdue notice, and the overdue list has it.
		e.clock.Set(start.Add(30*24*time.Hour + time.Minute))
		if to := d.run(t); !slices.Equal(to, []string{tn.worker.Email}) {
			t.Fatalf("overdue notice went to %v", to)
		}
		if got := d.notices(t, tn.ID, open.ID); !slices.Equal(got, []string{"dsr.reminder", "dsr.reminder", "dsr.overdue"}) {
			t.Fatalf("notices = %v", got)
		}
		if got := d.notices(t, tn.ID, done.ID); len(got) != 0 {
			t.Fatalf("a completed request got notices: %v", got)
		}
		if got := d.notices(t, tn.ID, extended.ID); len(got) != 0 {
			t.Fatalf("an extended request got notices for its old due date: %v", got)
		}
		var overdue []*sqlstore.DSR
		e.update(t, func(tx *sqlstore.Tx) (err error) {
			overdue, err = tx.DSRs(tn.ID).List(ctx, sqlstore.DSRFilter{Overdue: true})
			return err
		})
		if len(overdue) != 1 || overdue[0].ID != open.ID {
			t.Fatalf("overdue list = %v, want %s", overdue, open.ID)
		}
		// The extended request's notices follow its new due date (40 days).
		var msgs []mail.Message
		for _, day := range []int{33, 39, 40} {
			e.clock.Set(start.Add(time.Duration(day)*24*time.Hour + time.Minute))
			if to := d.run(t); len(to) != 1 {
				t.Fatalf("day %d: e-mails to %v, want one", day, to)
			}
			msgs = append(msgs, d.sent.Messages()...)
		}
		if got := d.notices(t, tn.ID, extended.ID); !slices.Equal(got, []string{"dsr.reminder", "dsr.reminder", "dsr.overdue"}) {
			t.Fatalf("extended request's notices = %v", got)
		}
		// Nothing runs twice.
		e.clock.Set(start.Add(60 * 24 * time.Hour))
		if to := d.run(t); len(to) != 0 {
			t.Fatalf("e-mails after every deadline passed: %v", to)
		}
		// No notice carries the subject's data.
		for _, m := range msgs {
			if strings.Contains(m.Subject+m.Text, "Ada") || !strings.Contains(m.Text, extended.ID) {
				t.Fatalf("notice %q: it must name the request and nothing of the subject", m.Text)
			}
		}
	})
}
