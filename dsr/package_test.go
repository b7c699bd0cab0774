package dsr_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"tutela"
	"tutela/dsr"
	"tutela/privacy"
	"tutela/sqlstore"
)

// person is one generated subject with everything the tenant holds about them.
type person struct {
	tn       *tenant
	id       string
	values   map[string]string
	unique   []string // values, evidence, texts and audit markers that are theirs alone
	consents []string // consent record IDs
	requests []string // request IDs
	objected bool
	withheld []string // legal holds' reasons and IDs: other people's information, never in the package
}

// world generates tenants, subjects, consents, objections, requests and audit events from seed.
func world(t *testing.T, e *env, seed uint64) []*person {
	t.Helper()
	r := mrand.New(mrand.NewPCG(seed, 0x5eed))
	hex := func() string { return fmt.Sprintf("%012x", r.Uint64()&0xffffffffffff) }
	var people []*person
	for range 2 + r.IntN(2) {
		tn := e.tenant(t)
		for range 1 + r.IntN(3) {
			p := &person{tn: tn, values: map[string]string{
				"full_name":     "Person " + hex(),
				"national_id":   "NI" + strings.ToUpper(hex()),
				"date_of_birth": fmt.Sprintf("19%02d-%02d-%02d", r.IntN(100), 1+r.IntN(12), 1+r.IntN(28)),
			}}
			if r.IntN(2) == 0 {
				p.values["notes"] = "Note " + hex()
			}
			p.id = e.subject(t, tn.ID, p.values)
			p.unique = append(p.unique, p.values["full_name"], p.values["national_id"])
			if n, ok := p.values["notes"]; ok {
				p.unique = append(p.unique, n)
			}
			for i := range r.IntN(3) {
				rec := &privacy.ConsentRecord{ID: tutela.NewID(), SubjectID: p.id, Purpose: "newsletter",
					Action: []privacy.ConsentAction{privacy.ConsentGranted, privacy.ConsentWithdrawn}[i%2], Basis: privacy.ConsentOrdinary,
					NoticeID: "notice", NoticeVersion: 1, Channel: "paper", RecordedBy: privacy.RecordedByCaseworker, Evidence: "EV-" + hex()}
				var err error
				if rec.EvidenceSealed, err = e.personKey(t, tn.ID, p.id).Seal(privacy.EvidenceField(rec.ID), []byte(rec.Evidence)); err != nil {
					t.Fatal(err)
				}
				e.update(t, func(tx *sqlstore.Tx) error { return tx.Consent(tn.ID).Record(as(tn.worker), rec) })
				p.consents, p.unique = append(p.consents, rec.ID), append(p.unique, rec.Evidence)
			}
			if r.IntN(2) == 0 {
				e.update(t, func(tx *sqlstore.Tx) error {
					return tx.Consent(tn.ID).Object(as(tn.worker), p.id, "fraud_prevention", "")
				})
				p.objected = true
			}
			if r.IntN(2) == 0 {
				reason := "HOLD-" + hex()
				var h *sqlstore.Hold
				e.update(t, func(tx *sqlstore.Tx) (err error) {
					h, err = tx.Subjects(tn.ID).PlaceHold(as(tn.approver), p.id, reason)
					return err
				})
				p.withheld = append(p.withheld, reason, h.ID)
			}
			for range r.IntN(3) {
				marker := "AUD-" + hex()
				e.update(t, func(tx *sqlstore.Tx) error {
					return tx.Record(as(tn.worker), "subject.note", tn.ID, "subject", p.id, "", map[string]any{"marker": marker})
				})
				p.unique = append(p.unique, marker)
			}
			for range r.IntN(3) {
				kind := []privacy.DSRKind{privacy.DSRAccess, privacy.DSRRestriction, privacy.DSRErasure, privacy.DSRObjection}[r.IntN(4)]
				purpose := ""
				if kind == privacy.DSRObjection {
					purpose = "fraud_prevention"
				}
				text := "TXT-" + hex()
				d := e.newDSR(t, tn, p.id, kind, purpose, text)
				if r.IntN(2) == 0 {
					e.update(t, func(tx *sqlstore.Tx) error {
						_, err := tx.DSRs(tn.ID).Verify(as(tn.worker), d.ID, privacy.VerificationVerified, "document_copy")
						return err
					})
				}
				p.requests, p.unique = append(p.requests, d.ID), append(p.unique, text)
			}
			people = append(people, p)
		}
	}
	return people
}

// download makes a link for a completed request's package and downloads it once.
func (e *env) download(t *testing.T, tn *tenant, id string) []byte {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	e.update(t, func(tx *sqlstore.Tx) error {
		_, err := tx.DSRs(tn.ID).SetDownloadLink(as(tn.approver), id, sqlstore.DSRTokenHash(tok), time.Hour, sqlstore.DSRDeliveryEmail)
		return err
	})
	var zipped []byte
	e.update(t, func(tx *sqlstore.Tx) error {
		dl, err := tx.ConsumeDSRDownload(ctx, sqlstore.DSRTokenHash(tok))
		if err != nil {
			return err
		}
		zipped, err = e.exec.OpenDownload(ctx, dl)
		return err
	})
	return zipped
}

func unzip(t *testing.T, zipped []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
	}
	return out
}

// eventIDs lists the IDs of the audit events whose target is one of targets.
func (e *env) eventIDs(t *testing.T, tenantID string, targets map[string]string) []string {
	t.Helper()
	var ids []string
	for id, typ := range targets {
		recs, _, err := e.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tenantID, TargetType: typ, TargetID: id, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if strings.HasPrefix(r.Event.Action, "subject.hold.") {
				continue // withheld from the package with the holds
			}
			ids = append(ids, r.Event.ID)
		}
	}
	return ids
}

// TestPackage_HoldsEverythingOfTheSubjectAndNothingOfOthers is the property: over
// generated tenants, subjects, consents, objections, requests and audit events, the package of a
// subject holds every record of them (every field value, consent record, request with its text,
// audit event naming them) and nothing of any other subject (no other subject's ID, value,
// evidence, text, request or consent ID anywhere in the ZIP), nor of other people: no staff user
// ID (they appear as "staff") and no legal hold (reason, ID), on both stores.
func TestPackage_HoldsEverythingOfTheSubjectAndNothingOfOthers(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		prop := func(seed uint64) bool {
			people := world(t, e, seed)
			s := people[mrand.New(mrand.NewPCG(seed, 7)).IntN(len(people))]
			d := e.newDSR(t, s.tn, s.id, privacy.DSRAccess, "", "TXT-access-"+s.id[:8])
			s.requests = append(s.requests, d.ID)
			targets := map[string]string{s.id: "subject"}
			for _, id := range s.requests {
				targets[id] = "dsr"
			}
			before := e.eventIDs(t, s.tn.ID, targets)
			if res := e.complete(t, s.tn, d.ID); res.DSR.Status != privacy.DSRCompleted {
				t.Errorf("access request not completed: %+v", res.DSR)
				return false
			}
			files := unzip(t, e.download(t, s.tn, d.ID))
			var pkg dsr.Package
			if err := json.Unmarshal(files["package.json"], &pkg); err != nil {
				t.Errorf("package.json: %v", err)
				return false
			}
			// Everything of s.
			if pkg.SubjectID != s.id || !mapsEqual(pkg.Subject.Values, s.values) {
				t.Errorf("subject values = %v, want %v", pkg.Subject.Values, s.values)
			}
			var consents []string
			for _, c := range pkg.Consents {
				consents = append(consents, c.ID)
				if !strings.HasPrefix(c.Evidence, "EV-") {
					t.Errorf("consent %s evidence not opened: %q", c.ID, c.Evidence)
				}
			}
			if !sameSet(consents, s.consents) {
				t.Errorf("consents = %v, want %v", consents, s.consents)
			}
			if s.objected != slices.ContainsFunc(pkg.Objections, func(o *sqlstore.Objection) bool { return o.Purpose == "fraud_prevention" }) {
				t.Errorf("objections = %v, want objected=%v", pkg.Objections, s.objected)
			}
			var requests []string
			for _, r := range pkg.Requests {
				requests = append(requests, r.ID)
				if !strings.HasPrefix(r.Text, "TXT-") || len(r.Steps) == 0 {
					t.Errorf("request %s: text %q, %d steps", r.ID, r.Text, len(r.Steps))
				}
			}
			if !sameSet(requests, s.requests) {
				t.Errorf("requests = %v, want %v", requests, s.requests)
			}
			var events []string
			for _, ev := range pkg.AuditEvents {
				events = append(events, ev.ID)
				if _, ok := targets[ev.TargetID]; !ok {
					t.Errorf("audit event %s (%s) names %s, not the subject", ev.ID, ev.Action, ev.TargetID)
				}
			}
			for _, id := range before {
				if !slices.Contains(events, id) {
					t.Errorf("audit event %s naming the subject is missing", id)
				}
			}
			all := bytes.Join(mapValues(files), []byte{0})
			for _, v := range s.unique {
				if !bytes.Contains(files["package.json"], []byte(v)) {
					t.Errorf("package.json lacks %q", v)
				}
			}
			for _, name := range []string{"subject.csv", "consents.csv", "requests.csv", "steps.csv", "audit_events.csv"} {
				if _, ok := files[name]; !ok {
					t.Errorf("%s missing", name)
				}
			}
			if !bytes.Contains(files["subject.csv"], []byte(s.values["full_name"])) {
				t.Error("subject.csv lacks the subject's name")
			}
			// Nothing of the staff who worked on the subject, nothing of the holds on them.
			for _, v := range slices.Concat([]string{s.tn.worker.ID, s.tn.approver.ID}, s.withheld) {
				if bytes.Contains(all, []byte(v)) {
					t.Errorf("the package of %s holds %q (a staff user ID or a legal hold)", s.id, v)
				}
			}
			if _, ok := files["legal_holds.csv"]; ok {
				t.Error("legal_holds.csv is in the package")
			}
			if !bytes.Contains(files["package.json"], []byte(`"actor_id": "staff"`)) ||
				!bytes.Contains(files["steps.csv"], []byte(",staff,")) {
				t.Error("staff actors are not named as staff")
			}
			// Nothing of anyone else.
			for _, o := range people {
				if o == s {
					continue
				}
				for _, v := range slices.Concat([]string{o.id}, o.unique, o.consents, o.requests) {
					if bytes.Contains(all, []byte(v)) {
						t.Errorf("the package of %s holds %q of subject %s", s.id, v, o.id)
					}
				}
			}
			return !t.Failed()
		}
		if err := quick.Check(prop, &quick.Config{MaxCount: 3}); err != nil {
			t.Fatal(err)
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func mapValues(m map[string][]byte) [][]byte {
	var out [][]byte
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
