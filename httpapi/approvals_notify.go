package httpapi

import (
	"context"
	"fmt"
	"time"

	"tutela/approvals"
	"tutela/notify"
	"tutela/sqlstore"
)

// notifyApproval tells people about a request: approval.requested to every user holding one of
// its approver roles (minus the requester's person), approval.approved / approval.rejected and
// approval.expired to the requester (a service account's creating user), approval.reminder to
// the approvers who have not decided yet; and the tenant's webhooks subscribed to the event.
// The jobs are written in the caller's transaction (package notify), so a notice goes out
// exactly when the change it announces commits, durably.
func (s *Server) notifyApproval(ctx context.Context, tx *sqlstore.Tx, req *approvals.Request, eventType string, userIDs []string) error {
	n := approvalNotice(req, eventType)
	if len(userIDs) > notify.MaxRecipients {
		// A tenant with more approvers than one event may name: the first ones by the store's
		// order get the e-mail; the webhook still tells the tenant's systems.
		userIDs = userIDs[:notify.MaxRecipients]
	}
	return notify.Enqueue(ctx, tx, notify.Event{TenantID: req.TenantID, Type: eventType,
		Subject: n.Subject, Text: n.Text, Data: n.Data, UserIDs: userIDs})
}

// notice is one event's subject line, text and machine-readable data.
type notice struct {
	Subject string
	Text    string
	Data    map[string]any
}

// approvalNotice says what happened to req without any personal data: no justification, no
// comment, no names or addresses, only the action, the target's type and ID, the request's
// ID, state and expiry and where to read it (its readers there are authorized as usual).
func approvalNotice(req *approvals.Request, eventType string) notice {
	url := approvalURL(req)
	what := fmt.Sprintf("%s on %s %s", req.Action, req.TargetType, req.TargetID)
	var subject, text string
	switch eventType {
	case "approval.requested":
		subject = "Approval needed: " + req.Action
		text = fmt.Sprintf("A call (%s) is waiting for approval: %d of the holders of %v must approve it before %s. Read and decide it at %s.",
			what, req.Required, req.ApproverRoles, req.ExpiresAt.Format(time.RFC3339), url)
	case "approval.reminder":
		subject = "Reminder: approval needed: " + req.Action
		text = fmt.Sprintf("A call (%s) is still waiting for approval (%d of %d so far); it expires at %s. Read and decide it at %s.",
			what, req.Approvals, req.Required, req.ExpiresAt.Format(time.RFC3339), url)
	case "approval.approved":
		subject = "Approved: " + req.Action
		text = fmt.Sprintf("Your request (%s) was approved. Repeat the call with approval_id %s before %s. Details at %s.",
			what, req.ID, req.ExpiresAt.Format(time.RFC3339), url)
	case "approval.rejected":
		subject = "Rejected: " + req.Action
		text = fmt.Sprintf("Your request (%s) was rejected. Details at %s.", what, url)
	case "approval.expired":
		subject = "Expired: " + req.Action
		text = fmt.Sprintf("The request (%s) expired before it was used. Details at %s.", what, url)
	default:
		subject = "Approval " + string(req.State) + ": " + req.Action
		text = fmt.Sprintf("The request (%s) is %s. Details at %s.", what, req.State, url)
	}
	return notice{Subject: subject, Text: text, Data: map[string]any{
		"request_id": req.ID, "action": req.Action, "target_type": req.TargetType, "target_id": req.TargetID,
		"state": string(req.State), "approvals": req.Approvals, "required": req.Required,
		"expires_at": req.ExpiresAt.Format(time.RFC3339), "url": url}}
}
