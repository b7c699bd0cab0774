package httpapi

import (
	"context"

	"tutela/approvals"
	"tutela/sqlstore"
)

// notifyApproval tells people about a request: approval.requested to every user holding one of
// its approver roles (minus the requester's person), approval.approved / approval.rejected to
// the requester, approval.expired and approval.reminder. Texts carry no personal data: the
// action, the target type and ID, the request's ID and state, and its URL.
//
// WAITING FOR package notify (helper H6, issue 18): until that branch is on main this sends
// nothing; the lead wires it to notify.Enqueue(ctx, tx, notify.Event{...}) (durable jobs in the
// same transaction) when both have landed. The callers and their user lists are final.
func (s *Server) notifyApproval(ctx context.Context, tx *sqlstore.Tx, req *approvals.Request, eventType string, userIDs []string) error {
	_, _, _, _, _ = ctx, tx, req, eventType, userIDs
	return nil
}
