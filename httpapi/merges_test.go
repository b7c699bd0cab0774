package httpapi_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// mergeEnv is a subject env with a second programme administrator (the approver) and two
// subjects of acme that are one person: ada (survivor) and king.
type mergeEnv struct {
	*subjectEnv
	approverID string
	ada, king  string
}

func newMergeEnv(t *testing.T, d sqlstore.Dialect) *mergeEnv {
	t.Helper()
	se := newSubjectEnv(t, d)
	_, approver := se.seed(t, "acme", "approver@example.org", pw, "program_admin")
	me := &mergeEnv{subjectEnv: se, approverID: approver.ID}
	me.ada = se.create(t)
	me.king = se.createWith(t, `{"values":{"full_name":"Augusta Ada King","national_id":"AB-947 381","phone":"+44 20 7946 0000"}}`)
	return me
}

// approve has the second administrator approve request id through the approvals API.
func (me *mergeEnv) approve(t *testing.T, id string) {
	t.Helper()
	tok := me.login(t, "acme", "approver@example.org", pw, "").AccessToken
	res, b := me.req(t, "POST", me.base+"/approvals/"+id+"/decisions", `{"verdict":"approve","comment":"checked the registry"}`, "", tok)
	if res.StatusCode != 200 {
		t.Fatalf("approve: %d %s", res.StatusCode, b)
	}
}

const mergeJustification = "same person: national ID and birth record match"

func (me *mergeEnv) mergeBody(choices, approvalID string) string {
	b := `{"survivor_id":"` + me.ada + `","merged_id":"` + me.king + `","choices":` + choices +
		`,"justification":"` + mergeJustification + `"`
	if approvalID != "" {
		b += `,"approval_id":"` + approvalID + `"`
	}
	return b + "}"
}

const mergeChoices = `{"full_name":"merged","phone":"survivor","notes":"survivor"}`

// requestAndMerge asks for the merge (202), has it approved and runs it (201).
func (me *mergeEnv) requestAndMerge(t *testing.T) string {
	t.Helper()
	res, b := me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(mergeChoices, ""), "", me.admin)
	if res.StatusCode != 202 {
		t.Fatalf("merge without approval: %d %s", res.StatusCode, b)
	}
	var held struct {
		Approval struct{ ID, State string } `json:"approval"`
	}
	mustUnmarshal(t, b, &held)
	me.approve(t, held.Approval.ID)
	res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(mergeChoices, held.Approval.ID), "", me.admin)
	if res.StatusCode != 201 {
		t.Fatalf("approved merge: %d %s", res.StatusCode, b)
	}
	var mg sqlstore.SubjectMerge
	mustUnmarshal(t, b, &mg)
	return mg.ID
}

func TestMerges_PreviewApprovalMergeUnmerge(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			me := newMergeEnv(t, d)
			before := me.read(t, me.king, "case_management", me.root)

			// Preview: which fields differ, values as the caller may read them.
			res, b := me.req(t, "POST", me.base+"/subjects/merge/preview",
				`{"survivor_id":"`+me.ada+`","merged_id":"`+me.king+`","purpose":"case_management"}`, "", me.admin)
			if res.StatusCode != 200 {
				t.Fatalf("preview: %d %s", res.StatusCode, b)
			}
			var pv struct {
				Fields []struct {
					Name             string
					Differs          *bool
					Survivor, Merged any
				}
				Holdings map[string]sqlstore.MergeCounts
			}
			mustUnmarshal(t, b, &pv)
			differs := map[string]string{}
			for _, f := range pv.Fields {
				differs[f.Name] = "unknown"
				if f.Differs != nil {
					differs[f.Name] = strconv.FormatBool(*f.Differs)
				}
				if f.Name == "national_id" && (f.Survivor == "AB-947 381" || f.Merged == "AB-947 381") {
					t.Fatal("the preview showed a RED value in clear to a YELLOW-cleared administrator")
				}
			}
			// The RED fields (notes differ, national_id does not) are above what the YELLOW
			// administrator may update: the preview does not say whether they differ.
			if differs["full_name"] != "true" || differs["phone"] != "true" || differs["notes"] != "unknown" || differs["national_id"] != "unknown" {
				t.Fatalf("preview differs: %v", differs)
			}
			// Every differing field the caller may see must be chosen; nothing is requested until then.
			res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(`{"full_name":"merged"}`, ""), "", me.admin)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); !strings.Contains(eb.Error.Message, "phone") {
				t.Fatalf("missing choice names %q", eb.Error.Message)
			}
			// Taking a RED value they may not update is refused; leaving it keeps the survivor's.
			res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(`{"full_name":"merged","phone":"survivor","notes":"merged"}`, ""), "", me.admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(mergeChoices, ""), "", me.admin)
			if res.StatusCode != 202 {
				t.Fatalf("merge without approval: %d %s", res.StatusCode, b)
			}
			var held struct {
				Approval struct{ ID string } `json:"approval"`
			}
			mustUnmarshal(t, b, &held)
			if got := me.read(t, me.king, "case_management", me.root); got["full_name"] != before["full_name"] {
				t.Fatal("a held merge changed the subject")
			}
			// Approved: other parameters than those approved are refused; the approved ones run.
			me.approve(t, held.Approval.ID)
			res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(`{"full_name":"survivor","phone":"survivor","notes":"survivor"}`, held.Approval.ID), "", me.admin)
			wantError(t, res, b, 409, tutela.EAPPROVAL)
			res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(mergeChoices, held.Approval.ID), "", me.admin)
			if res.StatusCode != 201 {
				t.Fatalf("approved merge: %d %s", res.StatusCode, b)
			}
			var mg sqlstore.SubjectMerge
			mustUnmarshal(t, b, &mg)
			res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(mergeChoices, held.Approval.ID), "", me.admin)
			wantError(t, res, b, 409, tutela.ECONFLICT) // the subjects are merged already

			// The merged subject is gone for every reader; the survivor holds the chosen name.
			res, b = me.req(t, "GET", me.base+"/subjects/"+me.king+"?purpose=case_management", "", "", me.root)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			if got := me.read(t, me.ada, "case_management", me.root); got["full_name"] != "Augusta Ada King" || got["notes"] != "Lives near Marylebone" {
				t.Fatalf("survivor after merge: %v", got)
			}
			res, b = me.req(t, "GET", me.base+"/subject-merges?subject_id="+me.king, "", "", me.admin)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(mg.ID)) {
				t.Fatalf("merges of the merged subject: %d %s", res.StatusCode, b)
			}
			res, b = me.req(t, "GET", me.base+"/subject-merges/"+mg.ID, "", "", me.auditor)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// Another tenant's administrator finds nothing, under either tenant.
			res, b = me.req(t, "GET", me.otherTenantsBase+"/subject-merges/"+mg.ID, "", "", me.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = me.req(t, "POST", me.otherTenantsBase+"/subject-merges/"+mg.ID+"/unmerge", `{"justification":"x"}`, "", me.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = me.req(t, "POST", me.base+"/subject-merges/"+mg.ID+"/unmerge", `{"justification":"x"}`, "", me.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)

			// Unmerge: both records as they were; a second time is a conflict.
			// Undoing a merge is held like the merge: one person does not undo alone what two decided.
			unmerge := `{"justification":"the registry shows two different people"}`
			res, b = me.req(t, "POST", me.base+"/subject-merges/"+mg.ID+"/unmerge", unmerge, "", me.admin)
			if res.StatusCode != 202 {
				t.Fatalf("unmerge without approval: %d %s", res.StatusCode, b)
			}
			var heldUndo struct {
				Approval struct{ ID string } `json:"approval"`
			}
			mustUnmarshal(t, b, &heldUndo)
			if got := me.read(t, me.ada, "case_management", me.root); got["full_name"] != "Augusta Ada King" {
				t.Fatalf("a held unmerge changed the survivor: %v", got)
			}
			me.approve(t, heldUndo.Approval.ID)
			undo := `{"justification":"the registry shows two different people","approval_id":"` + heldUndo.Approval.ID + `"}`
			res, b = me.req(t, "POST", me.base+"/subject-merges/"+tutela.NewID()+"/unmerge", undo, "", me.admin)
			wantError(t, res, b, 409, tutela.EAPPROVAL) // another merge than the one approved
			res, b = me.req(t, "POST", me.base+"/subject-merges/"+mg.ID+"/unmerge", undo, "", me.admin)
			if res.StatusCode != 200 {
				t.Fatalf("unmerge: %d %s", res.StatusCode, b)
			}
			if got := me.read(t, me.king, "case_management", me.root); !sameValues(got, before) {
				t.Fatalf("merged subject after unmerge %v, want %v", got, before)
			}
			if got := me.read(t, me.ada, "case_management", me.root); got["full_name"] != "Ada Lovelace" {
				t.Fatalf("survivor after unmerge: %v", got)
			}
			res, b = me.req(t, "POST", me.base+"/subject-merges/"+mg.ID+"/unmerge", unmerge, "", me.admin)
			wantError(t, res, b, 409, tutela.ECONFLICT)

			// After the window, an unmerge is refused.
			mg2 := me.requestAndMerge(t)
			me.clock.Add(30*24*time.Hour + time.Second)
			me.admin = me.login(t, "acme", "admin@example.org", pw, "").AccessToken // the old token expired
			res, b = me.req(t, "POST", me.base+"/subject-merges/"+mg2+"/unmerge", unmerge, "", me.admin)
			if eb := wantError(t, res, b, 409, tutela.ECONFLICT); !strings.Contains(eb.Error.Message, "window") {
				t.Fatalf("unmerge after the window: %s", eb.Error.Message)
			}

			// Every step is in the audit log with its justification; no value is.
			seen := map[string]bool{}
			recs, _, err := me.db.AuditEvents(context.Background(), sqlstore.AuditFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				e := r.Event
				switch {
				case e.Action == "approval.requested" && e.Details["justification"] == mergeJustification,
					e.Action == "subject.merged" && e.Details["justification"] == mergeJustification && e.Details["merge_id"] == mg.ID,
					e.Action == "subject.unmerged" && e.Details["justification"] == "the registry shows two different people",
					e.Action == "subject.merge.preview" && e.Details["merged_id"] == me.king:
					seen[e.Action] = true
				}
			}
			for _, a := range []string{"approval.requested", "subject.merged", "subject.unmerged", "subject.merge.preview"} {
				if !seen[a] {
					t.Errorf("audit log lacks %s with its justification", a)
				}
			}
			me.noValueLeaked(t)
		})
	}
}

// A person merges and unmerges only with a fresh second factor.
func TestMerges_NeedFreshStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, admin, secret := adminWithFactor(t, e)
	base := "/v1/tenants/" + tn.ID
	e.clock.Add(6 * time.Minute)
	body := `{"survivor_id":"` + tutela.NewID() + `","merged_id":"` + tutela.NewID() + `","choices":{},"justification":"same person"}`
	res, b := e.req(t, "POST", base+"/subjects/merge", body, "", admin.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	res, b = e.req(t, "POST", base+"/subject-merges/"+tutela.NewID()+"/unmerge", `{"justification":"wrong"}`, "", admin.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.stepUp(t, admin.cookie, secret)
	res, b = e.req(t, "POST", base+"/subjects/merge", body, "", admin.cookie)
	wantError(t, res, b, 404, tutela.ENOTFOUND) // past the step-up: the subjects do not exist
}

// After a merge the survivor's consent history holds the merged subject's records, their
// evidence opening under the merged subject's own key, and its processing follows the merged
// subject's grant.
func TestMerges_ConsentsFollowSurvivor(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ce := newConsentEnv(t, d)
			_, approver := ce.seed(t, "acme", "approver@example.org", pw, "program_admin")
			me := &mergeEnv{subjectEnv: ce.subjectEnv, approverID: approver.ID, ada: ce.ada}
			me.king = ce.createWith(t, `{"values":{"full_name":"Augusta Ada King","phone":"+44 20 7946 0000"}}`)
			const evidence = "REF-77120 signed form"
			res, b := ce.req(t, "POST", ce.base+"/subjects/"+me.king+"/consents", caseworkerBody("granted", 1, evidence), "", ce.operator)
			if res.StatusCode != 201 {
				t.Fatalf("king's consent: %d %s", res.StatusCode, b)
			}
			if code, _ := ce.status(t, ce.env, ce.admin, "outreach"); code == 200 {
				t.Fatal("ada is processable for outreach before the merge")
			}
			res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(`{"full_name":"survivor","phone":"survivor"}`, ""), "", me.admin)
			if res.StatusCode != 202 {
				t.Fatalf("merge: %d %s", res.StatusCode, b)
			}
			var held struct {
				Approval struct{ ID string } `json:"approval"`
			}
			mustUnmarshal(t, b, &held)
			me.approve(t, held.Approval.ID)
			res, b = me.req(t, "POST", me.base+"/subjects/merge", me.mergeBody(`{"full_name":"survivor","phone":"survivor"}`, held.Approval.ID), "", me.admin)
			if res.StatusCode != 201 {
				t.Fatalf("approved merge: %d %s", res.StatusCode, b)
			}
			if code, errCode := ce.status(t, ce.env, ce.admin, "outreach"); code != 200 {
				t.Fatalf("ada after the merge, for outreach: %d %s", code, errCode)
			}
			res, b = ce.req(t, "GET", ce.base+"/subjects/"+ce.ada+"/consents", "", "", ce.admin)
			if res.StatusCode != 200 || !strings.Contains(string(b), evidence) || !strings.Contains(string(b), me.king) {
				t.Fatalf("survivor's consents after the merge: %d %s", res.StatusCode, b)
			}
			res, b = ce.req(t, "POST", ce.base+"/subjects/"+me.king+"/consents", consentBody("withdrawn", 0, ""), "", ce.portal)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
		})
	}
}
