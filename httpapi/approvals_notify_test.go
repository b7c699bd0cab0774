package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tutela/approvals"
)

// A notice names the request, never what people wrote or who they are: the justification, the
// decisions' comments, the parameters (which may hold a role given to someone, a subject's
// fields) and the requester stay in the API behind authorization.
func TestApprovalNotice_CarriesNoPersonalData(t *testing.T) {
	t.Parallel()
	req := &approvals.Request{ID: "0190a6f0-0000-7000-8000-000000000001", TenantID: "0190a6f0-0000-7000-8000-0000000000aa",
		Action: approvals.ActionSubjectExport, TargetType: "subject", TargetID: "0190a6f0-0000-7000-8000-0000000000bb",
		Params: json.RawMessage(`{"email":"ada@example.org","full_name":"Ada Lovelace"}`), Justification: "Ada asked by phone",
		RequestedBy: "0190a6f0-0000-7000-8000-0000000000cc", RequesterKind: "user", RequesterPerson: "0190a6f0-0000-7000-8000-0000000000cc",
		State: approvals.StatePending, ApproverRoles: []string{"program_admin"}, Required: 2, ExpiresAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Decisions: []approvals.Decision{{Comment: "called Ada back", DecidedBy: "0190a6f0-0000-7000-8000-0000000000dd"}}}
	for _, ev := range []string{"approval.requested", "approval.reminder", "approval.approved", "approval.rejected", "approval.expired"} {
		n := approvalNotice(req, ev)
		data, _ := json.Marshal(n.Data)
		all := n.Subject + "\n" + n.Text + "\n" + string(data)
		for _, leak := range []string{"Ada", "ada@", "phone", "called", req.RequestedBy, "0190a6f0-0000-7000-8000-0000000000dd"} {
			if strings.Contains(all, leak) {
				t.Errorf("%s notice holds %q: %s", ev, leak, all)
			}
		}
		for _, must := range []string{req.ID, req.Action, req.TargetID, "/v1/tenants/" + req.TenantID + "/approvals/" + req.ID} {
			if !strings.Contains(all, must) {
				t.Errorf("%s notice lacks %q: %s", ev, must, all)
			}
		}
	}
}
