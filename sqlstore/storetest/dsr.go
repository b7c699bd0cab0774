package storetest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"tutela"
	"tutela/dsr"
	"tutela/privacy"
	"tutela/sqlstore"
)

// DSRTests is the data-subject request part of the conformance suite (issue 14): the workflow's
// four eyes and fail-closed identity check, every step audited, tenant isolation, erasure by
// crypto-shredding refused under a legal hold, and the one-time download link.
var DSRTests = []Test{
	{"DSRWorkflowFourEyesEveryStepAudited", testDSRWorkflow},
	{"DSRNothingExecutesWithoutVerifiedIdentity", testDSRIdentityFailClosed},
	{"DSRErasureShredsAndIsBlockedByLegalHold", testDSRErasure},
	{"DSRDownloadLinkOnePerApprovalWorksOnceAndPackageDeleted", testDSRDownloadLink},
	{"DSROverdueListAndExtension", testDSROverdue},
	{"DSRRestrictionAndObjectionExecute", testDSRRestrictObject},
}

// dsrKit is a subject kit with the store's vault attached, a caseworker (operator: UPDATE on
// dsr) and an approver (program_admin: APPROVE).
type dsrKit struct {
	*subjectKit
	worker, approver *tutela.User
	exec             dsr.Executor
	pol              privacy.DSRPolicy
}

func newDSRKit(t *testing.T, open Opener) *dsrKit {
	t.Helper()
	k := &dsrKit{subjectKit: newSubjectKit(t, open, "acme"), pol: privacy.DefaultDSRPolicy()}
	k.db.SetVault(k.vault)
	k.exec = dsr.Executor{Keys: k.seal.Keys}
	k.worker = k.user(t, k.tenant.ID, "worker@example.org", "operator")
	k.approver = k.user(t, k.tenant.ID, "approver@example.org", "program_admin")
	return k
}

func (k *dsrKit) user(t *testing.T, tenantID, email, role string) *tutela.User {
	t.Helper()
	u := createUser(t, k.db, tenantID, email)
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).Grant(ctx, u.ID, role, "", nil) })
	return u
}

// as is a request context acting as u.
func as(u *tutela.User) context.Context {
	return tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "req-dsr", Principal: &tutela.Principal{
		Kind: tutela.PrincipalUser, TenantID: u.TenantID, UserID: u.ID}})
}

// newDSR records a request of kind for subject, with text sealed under the subject's key.
func (k *dsrKit) newDSR(t *testing.T, subject string, kind privacy.DSRKind, text string) *sqlstore.DSR {
	t.Helper()
	n := &sqlstore.NewDSR{ID: tutela.NewID(), SubjectID: subject, Kind: kind}
	if text != "" {
		rec, err := k.get(k.tenant.ID, subject)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := k.seal.Keys.Open(ctx, k.tenant.ID, subject, rec.Stored.Wrapped)
		if err != nil {
			t.Fatal(err)
		}
		if n.TextSealed, err = pk.Seal(privacy.DSRTextField(n.ID), []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	var d *sqlstore.DSR
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		d, err = tx.DSRs(k.tenant.ID).Create(as(k.worker), n, k.pol)
		return err
	})
	return d
}

// ready takes d through verification, assignment and submission.
func (k *dsrKit) ready(t *testing.T, d *sqlstore.DSR, rectified ...string) {
	t.Helper()
	r := func(tx *sqlstore.Tx) sqlstore.DSRs { return tx.DSRs(k.tenant.ID) }
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := r(tx).Verify(as(k.worker), d.ID, privacy.VerificationVerified, "in_person_document")
		return err
	})
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := r(tx).Assign(as(k.worker), d.ID, k.worker.ID, k.approver.ID)
		return err
	})
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := r(tx).Submit(as(k.worker), d.ID, k.worker.ID, rectified)
		return err
	})
}

func (k *dsrKit) approve(by *tutela.User, id string) (*dsr.Result, error) {
	var res *dsr.Result
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		res, err = k.exec.Approve(as(by), tx, k.tenant.ID, id, by.ID)
		return err
	})
	return res, err
}

func (k *dsrKit) dsr(t *testing.T, tenantID, id string) (*sqlstore.DSR, error) {
	t.Helper()
	var d *sqlstore.DSR
	err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		d, err = tx.DSRs(tenantID).Get(ctx, id)
		return err
	})
	return d, err
}

// auditActions lists the actions of the audit events whose target is the request.
func auditActions(t *testing.T, db *sqlstore.DB, id string) []string {
	t.Helper()
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TargetType: "dsr", TargetID: id, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Event.Action)
	}
	slices.Reverse(out)
	return out
}

func testDSRWorkflow(t *testing.T, open Opener) {
	k := newDSRKit(t, open)
	subj := k.create(t, k.tenant.ID, ada)
	d := k.newDSR(t, subj, privacy.DSRRectification, "My date of birth is wrong")
	if want := d.ReceivedAt.AddDate(0, 0, 30); !d.DueAt.Equal(want) || d.Jurisdiction != "gdpr" || d.Status != privacy.DSRReceived {
		t.Fatalf("new request = %+v; want gdpr, received, due in 30 days", d)
	}
	r := func(tx *sqlstore.Tx) sqlstore.DSRs { return tx.DSRs(k.tenant.ID) }
	step := func(by *tutela.User, f func(tx *sqlstore.Tx, c context.Context) error) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return f(tx, as(by)) })
	}
	// An unknown jurisdiction, a purpose on anything but an objection, an unknown subject: refused.
	for _, n := range []*sqlstore.NewDSR{
		{ID: tutela.NewID(), SubjectID: subj, Kind: privacy.DSRAccess, Jurisdiction: "atlantis"},
		{ID: tutela.NewID(), SubjectID: subj, Kind: privacy.DSRAccess, Purpose: "aid"},
		{ID: tutela.NewID(), SubjectID: subj, Kind: "forget_me"},
	} {
		mustCode(t, step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
			_, err := r(tx).Create(c, n, k.pol)
			return err
		}), tutela.EINVALID)
	}
	mustCode(t, step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Create(c, &sqlstore.NewDSR{ID: tutela.NewID(), SubjectID: tutela.NewID(), Kind: privacy.DSRAccess}, k.pol)
		return err
	}), tutela.ENOTFOUND)

	// Assignment waits for verification; verification needs a known method.
	mustCode(t, step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Assign(c, d.ID, k.worker.ID, k.approver.ID)
		return err
	}), tutela.ECONFLICT)
	mustCode(t, step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Verify(c, d.ID, privacy.VerificationVerified, "looked_trustworthy")
		return err
	}), tutela.EINVALID)
	if err := step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Verify(c, d.ID, privacy.VerificationVerified, "document_copy")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Four eyes at assignment: the same person twice, an approver who may not approve, a disabled
	// or unknown approver.
	third := k.user(t, k.tenant.ID, "third@example.org", "operator")
	gone := k.user(t, k.tenant.ID, "gone@example.org", "program_admin")
	update(t, k.db, func(tx *sqlstore.Tx) error {
		u, err := tx.Users(k.tenant.ID).Get(ctx, gone.ID)
		if err != nil {
			return err
		}
		u.Status = tutela.StatusDisabled
		return tx.Users(k.tenant.ID).Update(ctx, u)
	})
	for _, pair := range [][2]string{{k.worker.ID, k.worker.ID}, {k.worker.ID, third.ID}, {k.worker.ID, gone.ID},
		{k.worker.ID, tutela.NewID()}} {
		mustCode(t, step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
			_, err := r(tx).Assign(c, d.ID, pair[0], pair[1])
			return err
		}), tutela.EINVALID)
	}
	if err := step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Assign(c, d.ID, k.worker.ID, k.approver.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Only the assignee submits; a rectification names schema fields.
	mustCode(t, step(third, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Submit(c, d.ID, third.ID, []string{"date_of_birth"})
		return err
	}), tutela.EFORBIDDEN)
	mustCode(t, step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Submit(c, d.ID, k.worker.ID, []string{"shoe_size"})
		return err
	}), tutela.EINVALID)
	if err := step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Submit(c, d.ID, k.worker.ID, []string{"date_of_birth"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The assignee cannot approve their own work, nor can anyone but the approver.
	for _, by := range []*tutela.User{k.worker, third} {
		_, err := k.approve(by, d.ID)
		mustCode(t, err, tutela.EFORBIDDEN)
	}
	res, err := k.approve(k.approver, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.DSR.Status != privacy.DSRCompleted || res.DSR.Outcome != "rectified" || !slices.Equal(res.DSR.RectifiedFields, []string{"date_of_birth"}) {
		t.Fatalf("approved rectification = %+v", res.DSR)
	}
	// A completed request takes no further step.
	_, err = k.approve(k.approver, d.ID)
	mustCode(t, err, tutela.ECONFLICT)

	// Every step is in the history and the audit log, with who did it.
	var steps []*sqlstore.DSRStep
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		steps, err = r(tx).Steps(ctx, d.ID)
		return err
	})
	var names []string
	for _, s := range steps {
		names = append(names, s.Step)
		if s.Details["subject_id"] != subj {
			t.Errorf("step %s does not name the subject: %v", s.Step, s.Details)
		}
	}
	want := []string{"received", "identity_verified", "assigned", "submitted", "approved", "completed"}
	if !slices.Equal(names, want) || steps[4].ActorID != k.approver.ID || steps[3].ActorID != k.worker.ID {
		t.Fatalf("steps = %v (actors %s, %s); want %v by worker then approver", names, steps[3].ActorID, steps[4].ActorID, want)
	}
	var wantAudit []string
	for _, n := range want {
		wantAudit = append(wantAudit, "dsr."+n)
	}
	if got := auditActions(t, k.db, d.ID); !slices.Equal(got, wantAudit) {
		t.Fatalf("audit = %v, want %v", got, wantAudit)
	}
	// The history is append-only.
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE dsr_steps SET step = 'approved'`); err == nil {
		t.Fatal("dsr_steps accepted an UPDATE")
	}
	if _, err := k.db.SQL().ExecContext(ctx, `DELETE FROM dsr_steps`); err == nil {
		t.Fatal("dsr_steps accepted a DELETE")
	}
	// The text is sealed: not in the database in clear.
	for _, blob := range rawBlobs(t, k.db, `SELECT ciphertext FROM dsr_texts`) {
		if bytes.Contains(blob, []byte("date of birth")) {
			t.Fatal("dsr_texts holds the request's text in clear")
		}
	}

	// Another tenant sees none of it.
	other := k.addTenant(t, "other")
	if _, err := k.dsr(t, other.ID, d.ID); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("other tenant's Get = %v, want not found", err)
	}
	var list []*sqlstore.DSR
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		list, err = tx.DSRs(other.ID).List(ctx, sqlstore.DSRFilter{})
		return err
	})
	if len(list) != 0 {
		t.Fatalf("other tenant lists %d requests", len(list))
	}
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(other.ID).Verify(ctx, d.ID, privacy.VerificationVerified, "document_copy")
		return err
	}), tutela.ENOTFOUND)

	// A failed verification is recorded and leaves the request open (received): refusing it is
	// a decision (Reject: APPROVE, a reason, four eyes), not a side effect of an UPDATE. Nothing
	// goes on until the identity is verified; a later check may verify it.
	d2 := k.newDSR(t, subj, privacy.DSRAccess, "")
	if err := step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Verify(c, d2.ID, privacy.VerificationFailed, "knowledge_questions")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := k.dsr(t, k.tenant.ID, d2.ID)
	if got.Status != privacy.DSRReceived || got.Verification != privacy.VerificationFailed ||
		got.VerificationMethod != "knowledge_questions" || got.CompletedAt != nil || got.Outcome != "" {
		t.Fatalf("failed verification left %+v, want it open with the result recorded", got)
	}
	mustCode(t, step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Assign(c, d2.ID, k.worker.ID, k.approver.ID)
		return err
	}), tutela.ECONFLICT)
	_, err = k.approve(k.approver, d2.ID)
	mustCode(t, err, tutela.ECONFLICT)
	if got := auditActions(t, k.db, d2.ID); !slices.Contains(got, "dsr.identity_failed") || slices.Contains(got, "dsr.rejected") {
		t.Fatalf("audit after a failed check = %v", got)
	}
	if err := step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Verify(c, d2.ID, privacy.VerificationVerified, "in_person_document")
		return err
	}); err != nil {
		t.Fatalf("a second check after a failed one: %v", err)
	}
	// A rejection needs a reason, a person, and not the assignee (four eyes for refusals too).
	d3 := k.newDSR(t, subj, privacy.DSRAccess, "")
	mustCode(t, step(k.approver, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Reject(c, d3.ID, k.approver.ID, " ")
		return err
	}), tutela.EINVALID)
	k.ready(t, d3) // verified, assigned to worker (approver: approver), submitted
	for _, actor := range []string{k.worker.ID, ""} {
		mustCode(t, step(k.worker, func(tx *sqlstore.Tx, c context.Context) error {
			_, err := r(tx).Reject(c, d3.ID, actor, "ticket 2026-7: manifestly unfounded, Art. 12(5)")
			return err
		}), tutela.EFORBIDDEN)
	}
	if got, _ := k.dsr(t, k.tenant.ID, d3.ID); got.Status != privacy.DSRSubmitted {
		t.Fatalf("a refused rejection changed the request: %+v", got)
	}
	if err := step(k.approver, func(tx *sqlstore.Tx, c context.Context) error {
		_, err := r(tx).Reject(c, d3.ID, k.approver.ID, "ticket 2026-7: manifestly unfounded, Art. 12(5)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.dsr(t, k.tenant.ID, d3.ID); got.Status != privacy.DSRRejected || got.CompletedAt == nil {
		t.Fatalf("rejected request = %+v", got)
	}
}

// testDSRIdentityFailClosed: a request whose row says submitted but whose identity was never
// verified (a row altered, a bug elsewhere) is not executed.
func testDSRIdentityFailClosed(t *testing.T, open Opener) {
	k := newDSRKit(t, open)
	subj := k.create(t, k.tenant.ID, ada)
	d := k.newDSR(t, subj, privacy.DSRErasure, "")
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE dsr_requests SET status = 'submitted', assignee = $1, approver = $2
		WHERE id = $3`, k.worker.ID, k.approver.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	_, err := k.approve(k.approver, d.ID)
	mustCode(t, err, tutela.ECONFLICT)
	if vals := k.read(t, k.tenant.ID, subj); vals["full_name"] != ada["full_name"] {
		t.Fatalf("subject changed: %v", vals)
	}
}

func testDSRErasure(t *testing.T, open Opener) {
	k := newDSRKit(t, open)
	subj := k.create(t, k.tenant.ID, ada)
	keep := k.create(t, k.tenant.ID, map[string]string{"full_name": "Grace Hopper"})
	var hold *sqlstore.Hold
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		hold, err = tx.Subjects(k.tenant.ID).PlaceHold(as(k.approver), subj, "case 2026-3 litigation")
		return err
	})
	d := k.newDSR(t, subj, privacy.DSRErasure, "Please delete everything about me")
	k.ready(t, d)
	before := countRows(t, k.db, "subject_values")
	res, err := k.approve(k.approver, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlockedBy == nil || res.BlockedBy.ID != hold.ID || res.DSR.Status != privacy.DSRBlocked {
		t.Fatalf("approval under a hold = %+v, want blocked by the hold", res)
	}
	if msg := tutela.ErrorMessage(dsr.ErrBlocked(res.BlockedBy)); tutela.ErrorCode(dsr.ErrBlocked(res.BlockedBy)) != tutela.ECONFLICT ||
		!bytes.Contains([]byte(msg), []byte("case 2026-3 litigation")) {
		t.Fatalf("blocked error = %q; want a conflict naming the hold", msg)
	}
	// Nothing of the subject changed: key, values, text all there.
	if vals := k.read(t, k.tenant.ID, subj); vals["national_id"] != ada["national_id"] || countRows(t, k.db, "subject_values") != before ||
		countRows(t, k.db, "dsr_texts") != 1 {
		t.Fatal("a blocked erasure changed the subject's data")
	}
	got, _ := k.dsr(t, k.tenant.ID, d.ID)
	if got.Status != privacy.DSRBlocked || got.CompletedAt != nil || got.BlockedReason == "" {
		t.Fatalf("blocked request = %+v; want open, blocked, with the reason", got)
	}
	// Released, a new approval executes it: the key and every value go, the request stays.
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).ReleaseHold(as(k.approver), subj, hold.ID)
		return err
	})
	if _, err := k.approve(k.worker, d.ID); tutela.ErrorCode(err) != tutela.EFORBIDDEN {
		t.Fatalf("assignee approving a blocked request: %v", err)
	}
	res, err = k.approve(k.approver, d.ID)
	if err != nil || res.DSR.Status != privacy.DSRCompleted || res.DSR.Outcome != "erased" {
		t.Fatalf("approval after release = %+v, %v", res, err)
	}
	var wrapped []byte
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		wrapped, err = tx.PersonKeys(k.tenant.ID).Get(ctx, subj)
		return err
	})
	if wrapped != nil {
		t.Fatal("the subject's person key survived the erasure")
	}
	if _, err := k.get(k.tenant.ID, subj); !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("erased subject read = %v", err)
	}
	if n := countRows(t, k.db, "dsr_texts"); n != 0 {
		t.Fatalf("%d request texts survived the erasure", n)
	}
	if vals := k.read(t, k.tenant.ID, keep); vals["full_name"] != "Grace Hopper" {
		t.Fatal("another subject was touched")
	}
	if got, err := k.dsr(t, k.tenant.ID, d.ID); err != nil || got.Status != privacy.DSRCompleted {
		t.Fatalf("the request row must outlive the subject: %+v, %v", got, err)
	}
}

// token is a download token as the API makes them.
func token(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func testDSRDownloadLink(t *testing.T, open Opener) {
	k := newDSRKit(t, open)
	subj := k.create(t, k.tenant.ID, ada)
	d := k.newDSR(t, subj, privacy.DSRAccess, "Send me my data")
	tok := token(t)
	link := func(tenantID, id, tok string) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.DSRs(tenantID).SetDownloadLink(as(k.approver), id, sqlstore.DSRTokenHash(tok), time.Hour, sqlstore.DSRDeliveryEmail)
			return err
		})
	}
	completed := func() *sqlstore.DSR {
		d := k.newDSR(t, subj, privacy.DSRAccess, "")
		k.ready(t, d)
		if _, err := k.approve(k.approver, d.ID); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// No package before the request is completed; an unknown delivery mode is refused.
	mustCode(t, link(k.tenant.ID, d.ID, tok), tutela.ECONFLICT)
	k.ready(t, d)
	if _, err := k.approve(k.approver, d.ID); err != nil {
		t.Fatal(err)
	}
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(k.tenant.ID).SetDownloadLink(as(k.approver), d.ID, sqlstore.DSRTokenHash(tok), time.Hour, "fax")
		return err
	}), tutela.EINVALID)
	other := k.addTenant(t, "other")
	mustCode(t, link(other.ID, d.ID, tok), tutela.ENOTFOUND)
	if err := link(k.tenant.ID, d.ID, tok); err != nil {
		t.Fatal(err)
	}
	// One link per approval: a second one is refused while the first is unused, too.
	mustCode(t, link(k.tenant.ID, d.ID, token(t)), tutela.ECONFLICT)
	// Only the token's hash is stored.
	for _, blob := range rawBlobs(t, k.db, `SELECT token_hash FROM dsr_packages`) {
		if !bytes.Equal(blob, sqlstore.DSRTokenHash(tok)) || bytes.Contains(blob, []byte(tok)) {
			t.Fatal("dsr_packages does not hold exactly the token's SHA-256")
		}
	}
	for _, blob := range rawBlobs(t, k.db, `SELECT canonical FROM audit_events`) {
		if bytes.Contains(blob, []byte(tok)) {
			t.Fatal("the token reached the audit log")
		}
	}
	download := func(tok string) ([]byte, error) {
		var zipped []byte
		err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			dl, err := tx.ConsumeDSRDownload(ctx, sqlstore.DSRTokenHash(tok))
			if err != nil {
				return err
			}
			zipped, err = k.exec.OpenDownload(ctx, dl)
			return err
		})
		return zipped, err
	}
	_, err := download(token(t))
	mustCode(t, err, tutela.ENOTFOUND)
	zipped, err := download(tok)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil || len(zr.File) == 0 || zr.File[0].Name != "package.json" {
		t.Fatalf("package is not a ZIP starting with package.json: %v", err)
	}
	_, err = download(tok)
	mustCode(t, err, tutela.ENOTFOUND)
	// The download deleted the package in its transaction; a new link (which would serve a
	// stale copy) needs a new request and its approval.
	if n := countRows(t, k.db, "dsr_packages"); n != 0 {
		t.Fatalf("%d packages kept after their download", n)
	}
	mustCode(t, link(k.tenant.ID, d.ID, token(t)), tutela.ECONFLICT)
	if got := auditActions(t, k.db, d.ID); slices.Index(got, "dsr.package_download") < 0 || slices.Index(got, "dsr.download_link") < 0 {
		t.Fatalf("audit = %v; want the link and the download recorded", got)
	}

	// A link that expires unused: the download fails, no new link is issued, and the retention
	// sweep deletes the package (with a step on its request).
	d2 := completed()
	tok2 := token(t)
	if err := link(k.tenant.ID, d2.ID, tok2); err != nil {
		t.Fatal(err)
	}
	k.clock.Add(time.Hour)
	_, err = download(tok2)
	mustCode(t, err, tutela.ENOTFOUND)
	mustCode(t, link(k.tenant.ID, d2.ID, token(t)), tutela.ECONFLICT)
	unlinked := completed() // a package whose link is not issued yet is kept
	week := 7 * 24 * time.Hour
	c, err := k.db.PurgeExpired(ctx, k.clock.Now(), sqlstore.Retention{LoginHistory: week, SecurityEvents: week,
		EndedSessions: week, UsedTokens: week, DeadJobs: week})
	if err != nil || c.DSRPackages != 1 {
		t.Fatalf("sweep = %+v, %v; want the expired package deleted", c, err)
	}
	if n := countRows(t, k.db, "dsr_packages"); n != 1 {
		t.Fatalf("%d packages after the sweep, want only the unlinked one", n)
	}
	if got := auditActions(t, k.db, d2.ID); !slices.Contains(got, "dsr.package_expired") {
		t.Fatalf("audit = %v; want the expired package recorded", got)
	}

	// Erasure shreds the package: a link made before no longer serves it.
	tok3 := token(t)
	if err := link(k.tenant.ID, unlinked.ID, tok3); err != nil {
		t.Fatal(err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).Erase(as(k.approver), subj, "ticket 9", "GDPR Art. 17", sqlstore.ErasureRequest)
		return err
	})
	_, err = download(tok3)
	mustCode(t, err, tutela.ENOTFOUND)
	if n := countRows(t, k.db, "dsr_packages"); n != 0 {
		t.Fatalf("%d packages survived the erasure", n)
	}
}

func testDSROverdue(t *testing.T, open Opener) {
	k := newDSRKit(t, open)
	subj := k.create(t, k.tenant.ID, ada)
	a := k.newDSR(t, subj, privacy.DSRAccess, "")
	k.clock.Add(24 * time.Hour)
	b := k.newDSR(t, subj, privacy.DSRRestriction, "")
	c := k.newDSR(t, subj, privacy.DSRAccess, "")
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(k.tenant.ID).Reject(as(k.approver), c.ID, k.approver.ID, "ticket 4: duplicate of an open request")
		return err
	})
	overdue := func() []string {
		var list []*sqlstore.DSR
		update(t, k.db, func(tx *sqlstore.Tx) (err error) {
			list, err = tx.DSRs(k.tenant.ID).List(ctx, sqlstore.DSRFilter{Overdue: true})
			return err
		})
		var ids []string
		for _, d := range list {
			ids = append(ids, d.ID)
		}
		return ids
	}
	if got := overdue(); len(got) != 0 {
		t.Fatalf("overdue before any due date: %v", got)
	}
	k.clock.Add(29 * 24 * time.Hour) // a is due now, b tomorrow; c is closed
	if got := overdue(); !slices.Equal(got, []string{a.ID}) {
		t.Fatalf("overdue = %v, want only %s", got, a.ID)
	}
	// An extension moves the due date once, with a reason.
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(k.tenant.ID).Extend(as(k.worker), a.ID, 61, "complex request", k.pol)
		return err
	}), tutela.EINVALID)
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(k.tenant.ID).Extend(as(k.worker), a.ID, 60, "ticket 5: complex request, Art. 12(3)", k.pol)
		return err
	})
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(k.tenant.ID).Extend(as(k.worker), a.ID, 1, "again", k.pol)
		return err
	}), tutela.ECONFLICT)
	if got := overdue(); len(got) != 0 {
		t.Fatalf("overdue after the extension = %v", got)
	}
	k.clock.Add(24 * time.Hour)
	if got := overdue(); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("overdue = %v, want %s", got, b.ID)
	}
}

// testDSRRestrictObject: an approved restriction restricts the subject's processing, an approved
// objection records the objection to its purpose, both with the request as reference; an
// objection must name a purpose that can be objected to.
func testDSRRestrictObject(t *testing.T, open Opener) {
	k := newDSRKit(t, open)
	subj := k.create(t, k.tenant.ID, ada)
	update(t, k.db, func(tx *sqlstore.Tx) error {
		c := tx.Consent(k.tenant.ID)
		if _, err := c.PutPurpose(ctx, &privacy.Purpose{Name: "fraud_prevention", Description: "fraud",
			LawfulBasis: privacy.BasisLegitimateInterests}); err != nil {
			return err
		}
		_, err := c.PutPurpose(ctx, &privacy.Purpose{Name: "case_management", Description: "cases", LawfulBasis: privacy.BasisPublicTask})
		return err
	})
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(k.tenant.ID).Create(as(k.worker), &sqlstore.NewDSR{ID: tutela.NewID(), SubjectID: subj,
			Kind: privacy.DSRObjection, Purpose: "no_such_purpose"}, k.pol)
		return err
	}), tutela.EINVALID)
	obj := k.newDSRPurpose(t, subj, privacy.DSRObjection, "fraud_prevention")
	k.ready(t, obj)
	if res, err := k.approve(k.approver, obj.ID); err != nil || res.DSR.Outcome != "objection_recorded" {
		t.Fatalf("objection: %+v, %v", res, err)
	}
	var objections []*sqlstore.Objection
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		objections, err = tx.Consent(k.tenant.ID).Objections(ctx, subj)
		return err
	})
	if len(objections) != 1 || objections[0].Purpose != "fraud_prevention" || objections[0].Reference != obj.ID {
		t.Fatalf("objections = %+v", objections)
	}
	check := func(purpose string) error {
		return k.db.View(ctx, func(tx *sqlstore.Tx) error { return tx.Consent(k.tenant.ID).Check(ctx, subj, purpose) })
	}
	mustCode(t, check("fraud_prevention"), tutela.ECONSENTREQUIRED)
	if err := check("case_management"); err != nil {
		t.Fatalf("case_management before the restriction: %v", err)
	}
	res := k.newDSR(t, subj, privacy.DSRRestriction, "")
	k.ready(t, res)
	if r, err := k.approve(k.approver, res.ID); err != nil || r.DSR.Outcome != "restricted" {
		t.Fatalf("restriction: %+v, %v", r, err)
	}
	mustCode(t, check("case_management"), tutela.ERESTRICTED)
}

func (k *dsrKit) newDSRPurpose(t *testing.T, subject string, kind privacy.DSRKind, purpose string) *sqlstore.DSR {
	t.Helper()
	var d *sqlstore.DSR
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		d, err = tx.DSRs(k.tenant.ID).Create(as(k.worker), &sqlstore.NewDSR{ID: tutela.NewID(), SubjectID: subject, Kind: kind,
			Purpose: purpose}, k.pol)
		return err
	})
	return d
}
