package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"tutela/approvals"
	"tutela/notify"
	"tutela/sqlstore/sqltest"
)

// A held call tells the approvers, never the requester (nor their other accounts), through the
// durable queue; the final decision tells the requester. The mail says where to decide and
// carries no justification.
func TestApprovals_ApproversAndRequesterAreMailedThroughTheQueue(t *testing.T) {
	t.Parallel()
	d := sqltest.Dialects[0]
	ae := newApprovalEnv(t, d)
	if err := notify.Register(ae.ids.Jobs, ae.db, ae.mail, &http.Client{}, notify.Options{}); err != nil {
		t.Fatal(err)
	}
	ae.stepUp(t, ae.a.cookie, ae.secA)
	on := `{"enabled":true,"approver_roles":["program_admin"],"required":2,"ttl_seconds":3600}`
	if res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant", on, "", ae.a.cookie); res.StatusCode != 200 {
		t.Fatalf("enable: %d %s", res.StatusCode, b)
	}
	deliver(t, ae.ids)
	ae.mail.Reset()
	res, b := ae.req(t, "PUT", ae.base()+"/approval-policies/role.grant",
		`{"enabled":false,"approver_roles":["program_admin"],"required":2,"ttl_seconds":3600,"justification":"secret reason 4711"}`, "", ae.a.cookie)
	if res.StatusCode != 202 {
		t.Fatalf("held: %d %s", res.StatusCode, b)
	}
	req := decodeApproval(t, b)
	deliver(t, ae.ids)
	to := func() []string {
		var out []string
		for _, m := range ae.mail.Messages() {
			if strings.Contains(m.Text, "4711") || strings.Contains(m.Subject, "4711") {
				t.Fatalf("a notice holds the justification: %+v", m)
			}
			if !strings.Contains(m.Text, req.ID) {
				t.Fatalf("a notice does not name the request: %+v", m)
			}
			out = append(out, m.To)
		}
		slices.Sort(out)
		return out
	}
	if got := to(); !slices.Equal(got, []string{"b@example.org", "c@example.org", "d@example.org"}) {
		t.Fatalf("approval.requested went to %v", got)
	}
	ae.mail.Reset()
	for _, who := range []struct {
		g   grant
		sec string
	}{{ae.b, ae.secB}, {ae.c, ae.secC}} {
		ae.stepUp(t, who.g.cookie, who.sec)
		if res, b := ae.decide(t, who.g.cookie, req.ID, approvals.Approve); res.StatusCode != 200 {
			t.Fatalf("decide: %d %s", res.StatusCode, b)
		}
	}
	deliver(t, ae.ids)
	if got := to(); !slices.Equal(got, []string{"a@example.org"}) {
		t.Fatalf("approval.approved went to %v", got)
	}
}
