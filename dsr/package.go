// Package dsr executes data-subject requests (issue 14) where the store alone cannot: it opens
// what the tenant holds about a subject with the subject's key and assembles their access or
// portability package (JSON and CSV in one ZIP, sealed back under the same key), runs an approved
// request by its kind, and sends the reminders and overdue notices of the durable job queue.
// The rules are privacy/dsr.go's; the rows and the workflow's steps sqlstore/dsr*.go's.
package dsr

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"tutela/audit"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Format names the package's layout, written into package.json.
const Format = "tutela.dsr_package.v1"

// Package is what package.json holds: everything the tenant holds about the subject. The
// subject's values are all there, in clear, whatever their classification or purposes: this is
// the subject's own right of access (GDPR Art. 15, 20), not a purpose-bound read by a caseworker.
//
// Other people's information is left out (GDPR Art. 15(4): the copy must not adversely affect
// the rights of others): legal holds (their reasons and placers; Art. 23 allows withholding them,
// and a hold may be part of an investigation the subject must not be tipped off about), and
// staff user IDs, which appear as Staff wherever a member of staff acted or was named. The
// subject's own ID stays.
type Package struct {
	Format      string                   `json:"format"`
	TenantID    string                   `json:"tenant_id"`
	SubjectID   string                   `json:"subject_id"`
	RequestID   string                   `json:"request_id"`
	GeneratedAt time.Time                `json:"generated_at"`
	Subject     PackageSubject           `json:"subject"`
	Consents    []*privacy.ConsentRecord `json:"consents"`
	Objections  []*sqlstore.Objection    `json:"objections"`
	Restriction *sqlstore.Restriction    `json:"restriction"`
	Requests    []PackageRequest         `json:"requests"`
	AuditEvents []PackageEvent           `json:"audit_events"`
	Files       map[string]string        `json:"files"` // CSV file → what it holds
}

// PackageSubject is the subject's record with every field value opened.
type PackageSubject struct {
	ID          string            `json:"id"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	RetainUntil *time.Time        `json:"retain_until,omitempty"`
	Values      map[string]string `json:"values"`
}

// PackageRequest is one of the subject's requests with what they wrote and its history.
type PackageRequest struct {
	*sqlstore.DSR
	Text  string              `json:"text,omitempty"`
	Steps []*sqlstore.DSRStep `json:"steps"`
}

// PackageEvent is an audit event naming the subject, without the caller's IP and user agent
// (those are the caseworker's data, not the subject's).
type PackageEvent struct {
	ID         string         `json:"id"`
	Time       time.Time      `json:"time"`
	ActorType  string         `json:"actor_type"`
	ActorID    string         `json:"actor_id,omitempty"`
	Action     string         `json:"action"`
	TargetType string         `json:"target_type"`
	TargetID   string         `json:"target_id"`
	Outcome    string         `json:"outcome"`
	Reason     string         `json:"reason,omitempty"`
	Details    map[string]any `json:"details,omitempty"`
}

// Open opens src with the subject's key (values, consent evidence, request texts) into the
// package of request requestID.
func Open(ctx context.Context, keys privacy.Keys, tenantID, requestID string, src *sqlstore.DSRSources, now time.Time) (*Package, error) {
	st := &src.Subject.Stored
	pk, err := keys.Open(ctx, tenantID, st.SubjectID, st.Wrapped)
	if err != nil {
		return nil, err
	}
	sc := scrubber{staff: src.Staff, subject: st.SubjectID}
	p := &Package{Format: Format, TenantID: tenantID, SubjectID: st.SubjectID, RequestID: requestID, GeneratedAt: now}
	values := map[string]string{}
	for name, ct := range st.Values {
		pt, err := pk.Open(name, ct)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", name, err)
		}
		values[name] = string(pt)
	}
	p.Subject = PackageSubject{ID: src.Subject.ID, CreatedAt: src.Subject.CreatedAt, UpdatedAt: src.Subject.UpdatedAt,
		RetainUntil: src.Subject.RetainUntil, Values: values}
	// A survivor's history holds the records of the subjects merged into it (identity merge),
	// their evidence sealed under those subjects' own keys.
	opened := map[string]*privacy.PersonKey{st.SubjectID: pk}
	for _, c := range src.Consents {
		cc := *c
		cc.ActorID = sc.id(c.ActorID)
		if len(c.EvidenceSealed) > 0 {
			rpk, ok := opened[c.SubjectID]
			if !ok {
				if rpk, err = keys.Open(ctx, tenantID, c.SubjectID, src.MergedKeys[c.SubjectID]); err != nil {
					return nil, fmt.Errorf("consent record %s: %w", c.ID, err)
				}
				opened[c.SubjectID] = rpk
			}
			ev, err := rpk.Open(privacy.EvidenceField(c.ID), c.EvidenceSealed)
			if err != nil {
				return nil, fmt.Errorf("consent record %s: %w", c.ID, err)
			}
			cc.Evidence = string(ev)
		}
		p.Consents = append(p.Consents, &cc)
	}
	for _, o := range src.Objections {
		oo := *o
		oo.ActorID = sc.id(o.ActorID)
		p.Objections = append(p.Objections, &oo)
	}
	if r := src.Restriction; r != nil {
		rr := *r
		rr.ActorID = sc.id(r.ActorID)
		p.Restriction = &rr
	}
	for _, d := range src.Requests {
		dd := *d
		dd.Assignee, dd.Approver, dd.CreatedBy = sc.id(d.Assignee), sc.id(d.Approver), sc.id(d.CreatedBy)
		if dd.BlockedReason != "" {
			dd.BlockedReason = withheld // names a legal hold
		}
		pr := PackageRequest{DSR: &dd}
		for _, st := range src.Steps[d.ID] {
			ss := *st
			ss.ActorID, ss.Details = sc.id(st.ActorID), sc.details(st.Details)
			pr.Steps = append(pr.Steps, &ss)
		}
		if ct := src.Texts[d.ID]; ct != nil {
			txt, err := pk.Open(privacy.DSRTextField(d.ID), ct)
			if err != nil {
				return nil, fmt.Errorf("request %s text: %w", d.ID, err)
			}
			pr.Text = string(txt)
		}
		if pr.Steps == nil {
			pr.Steps = []*sqlstore.DSRStep{}
		}
		p.Requests = append(p.Requests, pr)
	}
	for _, e := range src.Events {
		p.AuditEvents = append(p.AuditEvents, PackageEvent{ID: e.ID, Time: e.Time, ActorType: e.ActorType, ActorID: sc.id(e.ActorID),
			Action: e.Action, TargetType: e.TargetType, TargetID: e.TargetID, Outcome: e.Outcome, Reason: e.Reason,
			Details: sc.details(e.Details)})
	}
	p.nonNil()
	return p, nil
}

// Staff replaces a staff member's user ID in the package.
const Staff = "staff"

// withheld replaces what would disclose a legal hold.
const withheld = "withheld"

// scrubber replaces other people's identifiers in what goes into the package.
type scrubber struct {
	staff   map[string]bool
	subject string
}

// id is id unless it names someone other than the subject: any user of the tenant, or an
// actor of another tenant (a platform operator), is Staff.
func (s scrubber) id(id string) string {
	if id == "" || id == s.subject || id == audit.ActorSystem {
		return id
	}
	return Staff
}

// holdKeys are detail keys that describe a legal hold: withheld with the holds.
var holdKeys = map[string]bool{"hold_id": true, "placed_by": true, "released_by": true}

// details copies d with every staff user ID (as a value, or in a list) replaced by Staff and
// hold details withheld. Keys naming people (assignee, approver, recipients, …) hold user IDs,
// which the tenant's user list catches; anything else that is an ID stays (request, package,
// consent IDs are the subject's).
func (s scrubber) details(d map[string]any) map[string]any {
	if d == nil {
		return nil
	}
	out := make(map[string]any, len(d))
	for k, v := range d {
		if holdKeys[k] {
			out[k] = withheld
			continue
		}
		out[k] = s.value(v)
	}
	return out
}

func (s scrubber) value(v any) any {
	switch x := v.(type) {
	case string:
		if s.staff[x] && x != s.subject {
			return Staff
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = s.value(e)
		}
		return out
	case []string:
		out := make([]string, len(x))
		for i, e := range x {
			out[i], _ = s.value(e).(string)
		}
		return out
	case map[string]any:
		return s.details(x)
	}
	return v
}

func (p *Package) nonNil() {
	if p.Consents == nil {
		p.Consents = []*privacy.ConsentRecord{}
	}
	if p.Objections == nil {
		p.Objections = []*sqlstore.Objection{}
	}
	if p.Requests == nil {
		p.Requests = []PackageRequest{}
	}
	if p.AuditEvents == nil {
		p.AuditEvents = []PackageEvent{}
	}
}

// csvFiles are the package's CSV files, each one table of package.json.
var csvFiles = map[string]string{
	"subject.csv":      "the subject's record: one row per field (field, value)",
	"consents.csv":     "the subject's consent history",
	"objections.csv":   "the subject's standing objections",
	"restriction.csv":  "the restriction of the subject's processing, if any",
	"requests.csv":     "the subject's data-subject requests",
	"steps.csv":        "every step of those requests",
	"audit_events.csv": "audit events naming the subject or their requests (details as JSON)",
}

// ZIP writes the package as a ZIP: package.json, the CSV files (privacy.WriteCSV, safe to open
// in a spreadsheet) and README.txt.
func (p *Package) ZIP() ([]byte, error) {
	p.Files = csvFiles
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, b []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: p.GeneratedAt})
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	js, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := add("package.json", js); err != nil {
		return nil, err
	}
	clear(js)
	tables, err := p.tables()
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(csvFiles)) {
		var b bytes.Buffer
		t := tables[name]
		if err := privacy.WriteCSV(&b, t.header, t.rows); err != nil {
			return nil, err
		}
		if err := add(name, b.Bytes()); err != nil {
			return nil, err
		}
	}
	readme := "This archive holds the personal data " + "the organisation keeps about you, in answer to your request " +
		p.RequestID + ".\npackage.json holds everything in a machine-readable form; the CSV files hold the same tables.\n" +
		"Information about other people is left out: members of staff appear as \"staff\", and legal holds, if any, are withheld.\n"
	if err := add("README.txt", []byte(readme)); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type table struct {
	header []string
	rows   [][]string
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optTS(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ts(*t)
}

func (p *Package) tables() (map[string]table, error) {
	out := map[string]table{}
	subj := table{header: []string{"field", "value"}}
	for _, f := range slices.Sorted(maps.Keys(p.Subject.Values)) {
		subj.rows = append(subj.rows, []string{f, p.Subject.Values[f]})
	}
	out["subject.csv"] = subj
	cons := table{header: []string{"id", "purpose", "action", "lawful_basis", "notice_id", "notice_version", "channel",
		"recorded_by", "actor_type", "actor_id", "evidence", "at"}}
	for _, c := range p.Consents {
		cons.rows = append(cons.rows, []string{c.ID, c.Purpose, string(c.Action), string(c.Basis), c.NoticeID,
			strconv.Itoa(c.NoticeVersion), c.Channel, c.RecordedBy, c.ActorType, c.ActorID, c.Evidence, ts(c.At)})
	}
	out["consents.csv"] = cons
	obj := table{header: []string{"purpose", "reference", "actor_type", "actor_id", "created_at"}}
	for _, o := range p.Objections {
		obj.rows = append(obj.rows, []string{o.Purpose, o.Reference, o.ActorType, o.ActorID, ts(o.CreatedAt)})
	}
	out["objections.csv"] = obj
	res := table{header: []string{"reference", "actor_type", "actor_id", "created_at"}}
	if r := p.Restriction; r != nil {
		res.rows = append(res.rows, []string{r.Reference, r.ActorType, r.ActorID, ts(r.CreatedAt)})
	}
	out["restriction.csv"] = res
	reqs := table{header: []string{"id", "kind", "jurisdiction", "purpose", "status", "verification", "received_at", "due_at",
		"extension_days", "completed_at", "outcome", "outcome_reason", "rectified_fields", "text"}}
	steps := table{header: []string{"request_id", "id", "at", "step", "actor_type", "actor_id", "details"}}
	for _, r := range p.Requests {
		rect, err := json.Marshal(r.RectifiedFields)
		if err != nil {
			return nil, err
		}
		reqs.rows = append(reqs.rows, []string{r.ID, string(r.Kind), r.Jurisdiction, r.Purpose, r.Status, r.Verification,
			ts(r.ReceivedAt), ts(r.DueAt), strconv.Itoa(r.ExtensionDays), optTS(r.CompletedAt), r.Outcome, r.OutcomeReason,
			string(rect), r.Text})
		for _, s := range r.Steps {
			d, err := json.Marshal(s.Details)
			if err != nil {
				return nil, err
			}
			steps.rows = append(steps.rows, []string{r.ID, s.ID, ts(s.At), s.Step, s.ActorType, s.ActorID, string(d)})
		}
	}
	out["requests.csv"], out["steps.csv"] = reqs, steps
	evs := table{header: []string{"id", "time", "actor_type", "actor_id", "action", "target_type", "target_id", "outcome",
		"reason", "details"}}
	for _, e := range p.AuditEvents {
		d, err := json.Marshal(e.Details)
		if err != nil {
			return nil, err
		}
		evs.rows = append(evs.rows, []string{e.ID, ts(e.Time), e.ActorType, e.ActorID, e.Action, e.TargetType, e.TargetID,
			e.Outcome, e.Reason, string(d)})
	}
	out["audit_events.csv"] = evs
	return out, nil
}
