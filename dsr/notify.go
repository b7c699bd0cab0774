package dsr

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"tutela"
	"tutela/identity"
	"tutela/jobs"
	"tutela/mail"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Mailer prepares an e-mail as a job to queue in a transaction (identity.Service.PrepareMail:
// the one mail path; nil Notice when e-mail is not configured).
type Mailer interface {
	PrepareMail(tenantID string, m mail.Message) (*identity.Notice, error)
}

// Notifier runs the deadline jobs sqlstore.DSRs schedules: a reminder at each offset before a
// request's due date and the overdue notice at the due date. Each re-reads its request and does
// nothing when it was completed or rejected, or its due date moved (an extension scheduled its
// own); otherwise it e-mails the assignee (the tenant's programme administrators while nobody
// is assigned) and records dsr.reminder or dsr.overdue, in one transaction.
type Notifier struct {
	DB   *sqlstore.DB
	Mail Mailer // nil: notices are recorded, no e-mail goes out
	Log  *slog.Logger
}

// Register adds the deadline kind to q. Its payload holds IDs and times only: not sealed.
func (n *Notifier) Register(q *jobs.Queue) {
	q.Register(jobs.Kind{Name: sqlstore.JobDSRDeadline, Handle: n.Handle})
}

// Handle runs one deadline job.
func (n *Notifier) Handle(ctx context.Context, tenantID string, payload []byte) error {
	var p sqlstore.DSRDeadline
	if err := json.Unmarshal(payload, &p); err != nil || (p.Event != "reminder" && p.Event != "overdue") {
		return fmt.Errorf("dsr deadline payload: %w", tutela.Errorf(tutela.EINVALID, "malformed"))
	}
	// Read first, then prepare the e-mails outside any transaction (sealing reaches the vault),
	// then check again and record in one transaction.
	var emails []string
	var recipients []string
	var d *sqlstore.DSR
	err := n.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if d, err = tx.DSRs(tenantID).Get(ctx, p.DSRID); err != nil {
			return err
		}
		if !applies(d, p) {
			return nil
		}
		if recipients, err = tx.DSRs(tenantID).NoticeRecipients(ctx, d); err != nil {
			return err
		}
		for _, id := range recipients {
			u, err := tx.Users(tenantID).Get(ctx, id)
			if tutela.ErrorCode(err) == tutela.ENOTFOUND {
				continue
			}
			if err != nil {
				return err
			}
			emails = append(emails, u.Email)
		}
		return nil
	})
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil // the request is gone (its tenant's data was removed): nothing to remind
	}
	if err != nil || !applies(d, p) {
		return err
	}
	var notices []*identity.Notice
	if n.Mail != nil {
		for _, to := range emails {
			nt, err := n.Mail.PrepareMail(tenantID, message(d, p, to))
			if err != nil {
				return err
			}
			notices = append(notices, nt)
		}
	}
	return n.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		d, due, err := tx.DSRs(tenantID).NoticeDue(ctx, p.DSRID, p.DueAt)
		if err != nil || !due {
			return err
		}
		for _, nt := range notices {
			if err := nt.Enqueue(ctx, tx); err != nil {
				return err
			}
		}
		return tx.DSRs(tenantID).RecordNotice(ctx, d, p.Event, p.Before, recipients)
	})
}

func applies(d *sqlstore.DSR, p sqlstore.DSRDeadline) bool {
	return d != nil && !privacy.DSRClosed(d.Status) && d.DueAt.Equal(p.DueAt.UTC().Truncate(time.Microsecond))
}

// message is a notice's e-mail: the request's ID, kind and due date, nothing of the subject.
func message(d *sqlstore.DSR, p sqlstore.DSRDeadline, to string) mail.Message {
	due := d.DueAt.Format("2006-01-02 15:04 MST")
	if p.Event == "overdue" {
		return mail.Message{To: to, Subject: "Data-subject request overdue",
			Text: fmt.Sprintf("The %s request %s was due %s and is still open (%s).\n\nThe law gives the subject a deadline: answer it, extend it with a reason, or reject it with a reason, in Tutela.\n",
				d.Kind, d.ID, due, d.Status)}
	}
	return mail.Message{To: to, Subject: "Data-subject request due " + d.DueAt.Format("2006-01-02"),
		Text: fmt.Sprintf("The %s request %s is due %s and is still open (%s).\n", d.Kind, d.ID, due, d.Status)}
}
