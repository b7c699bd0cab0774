package identity

import (
	"context"
	"errors"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
)

// Refusal is a refused authentication as the audit log records it (ASVS 5.0 16.3.1): why, and
// whose credential it was when verified data (a stored session, a genuine token, a looked-up
// account) shows it. It wraps the error the client sees, which is the same for every refusal of
// its kind (ASVS 6.3.8: the answer never says which check failed), so ErrorCode and
// ErrorMessage see through it. Nothing in it comes from the request: Reason is a fixed code.
type Refusal struct {
	Reason     string // "expired", "revoked_session", "bad_secret", …
	TenantID   string
	TargetType string // "user" or "service_account", when the account is known
	TargetID   string
	SessionID  string
	Err        error
}

func (r *Refusal) Error() string { return r.Err.Error() + " (" + r.Reason + ")" }

func (r *Refusal) Unwrap() error { return r.Err }

// RefusalOf returns the Refusal in err's chain, or nil.
func RefusalOf(err error) *Refusal {
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// refuse is err refused for reason, by no known account.
func refuse(err error, reason string) *Refusal { return &Refusal{Reason: reason, Err: err} }

// sessionRefused is err refused for reason, naming the session and its user.
func sessionRefused(err error, reason string, sess *sqlstore.Session) *Refusal {
	return &Refusal{Reason: reason, TenantID: sess.TenantID, TargetType: "user", TargetID: sess.UserID,
		SessionID: sess.ID, Err: err}
}

// authFailureEvent is the audit event of a refused authentication step: outcome failure, the
// user as target when known, the actor as the request has it (anonymous before sign-in, the
// user within a session). details hold the reason and never the credential.
func authFailureEvent(ctx context.Context, action, tenantID, userID string, details map[string]any) audit.Event {
	targetType := ""
	if userID != "" {
		targetType = "user"
	}
	return sqlstore.EventFromContext(ctx, action, tenantID, targetType, userID, audit.OutcomeFailure, details)
}

// recordAuthFailure writes ev apart from the refusal's own transaction, which rolls back: with
// other records in the store's next group commit (sqlstore.AuditCommit), returning once it is
// durable. A failure to write is logged, not returned: the caller answers with the refusal
// either way, so a flood of bad credentials cannot turn refusals into differing errors.
func (s *Service) recordAuthFailure(ctx context.Context, ev audit.Event) {
	if err := s.db.AuditCommit(ctx, ev); err != nil {
		s.log.Warn("record failed authentication", "action", ev.Action, "err", err)
	}
}

// RefuseClient is err refused for reason, naming the service account sa.
func RefuseClient(err error, reason string, sa *sqlstore.ServiceAccount) *Refusal {
	return &Refusal{Reason: reason, TenantID: sa.TenantID, TargetType: "service_account", TargetID: sa.ID, Err: err}
}

// ClientUnusable says why the service account sa may not authenticate at now — "disabled",
// "expired" or "tenant_inactive" — or "" when it may.
func ClientUnusable(sa *sqlstore.ServiceAccount, now time.Time, tenantActive bool) string {
	switch {
	case sa.Status != tutela.StatusActive:
		return "disabled"
	case !sa.Usable(now):
		return "expired"
	case !tenantActive:
		return "tenant_inactive"
	}
	return ""
}
