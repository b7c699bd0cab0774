package incidents

import (
	"fmt"
	"strings"
	"time"
)

// Report is what a notification to the supervisory authority must at least contain (GDPR Art.
// 33(3); NDPA 2023 s.40(4) asks for the same facts), taken from the incident's fields. Missing
// names the fields still empty, so whoever files the notification sees what to complete (Art.
// 33(4) allows the rest to follow in phases, without undue further delay).
type Report struct {
	IncidentID  string    `json:"incident_id"`
	Title       string    `json:"title"`
	GeneratedAt time.Time `json:"generated_at"`
	Severity    Severity  `json:"severity"`
	Status      Status    `json:"status"`
	DetectedAt  time.Time `json:"detected_at"`
	AwareAt     time.Time `json:"aware_at,omitzero"`
	// (a) the nature of the breach, the categories and approximate number of subjects and of
	// records concerned.
	Nature            string   `json:"nature"`
	SubjectCategories []string `json:"subject_categories"`
	SubjectsApprox    int      `json:"subjects_approx"`
	DataCategories    []string `json:"data_categories"`
	RecordsApprox     int      `json:"records_approx"`
	TenantsAffected   int      `json:"tenants_affected"`
	// (b) the contact point; (c) the likely consequences; (d) the measures taken or proposed.
	Contact       string         `json:"contact"`
	Consequences  string         `json:"consequences"`
	Measures      string         `json:"measures"`
	Clocks        []Clock        `json:"clocks"`
	Notifications []Notification `json:"notifications"`
	Missing       []string       `json:"missing"`
	Complete      bool           `json:"complete"`
}

// Report builds the notification facts from inc (a platform or a tenant view: counts cover the
// tenants the view holds) at now.
func (inc *Incident) Report(now time.Time) Report {
	r := Report{IncidentID: inc.ID, Title: inc.Title, GeneratedAt: now, Severity: inc.Severity, Status: inc.Status,
		DetectedAt: inc.DetectedAt, AwareAt: inc.ConfirmedAt, Nature: inc.Description,
		SubjectCategories: nonNil(inc.SubjectCategories), DataCategories: nonNil(inc.DataCategories),
		TenantsAffected: len(inc.Tenants), Contact: inc.Contact, Consequences: inc.Consequences, Measures: inc.Measures,
		Clocks: inc.Clocks(now), Notifications: nonNil(inc.Notifications), Missing: []string{}}
	for _, a := range inc.Tenants {
		r.SubjectsApprox += a.Subjects()
		r.RecordsApprox += a.RecordsApprox
	}
	miss := func(ok bool, field string) {
		if !ok {
			r.Missing = append(r.Missing, field)
		}
	}
	miss(inc.PersonalDataBreach, "personal_data_breach")
	miss(strings.TrimSpace(inc.Description) != "", "description")
	miss(len(inc.SubjectCategories) > 0, "subject_categories")
	miss(r.SubjectsApprox > 0, "subjects_approx")
	miss(len(inc.DataCategories) > 0, "data_categories")
	miss(r.RecordsApprox > 0, "records_approx")
	miss(strings.TrimSpace(inc.Contact) != "", "contact")
	miss(strings.TrimSpace(inc.Consequences) != "", "consequences")
	miss(strings.TrimSpace(inc.Measures) != "", "measures")
	r.Complete = len(r.Missing) == 0
	return r
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Markdown is the report as a document to paste into an authority's form or attach to a letter.
// Fields still missing are marked so, never left blank.
func (r Report) Markdown() string {
	var b strings.Builder
	const missing = "_(missing: to be completed)_"
	val := func(s string) string {
		if strings.TrimSpace(s) == "" {
			return missing
		}
		return s
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return missing
		}
		return strings.Join(s, "; ")
	}
	num := func(n int) string {
		if n <= 0 {
			return missing
		}
		return fmt.Sprintf("about %d", n)
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return missing
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(&b, "# Personal data breach notification: %s\n\n", r.Title)
	fmt.Fprintf(&b, "Incident %s, severity %s, status %s. Generated %s.\n\n", r.IncidentID, r.Severity, r.Status, ts(r.GeneratedAt))
	if !r.Complete {
		fmt.Fprintf(&b, "**Incomplete:** still missing %s. The information may be provided in phases (GDPR Art. 33(4)).\n\n",
			strings.Join(r.Missing, ", "))
	}
	b.WriteString("## Timing\n\n")
	fmt.Fprintf(&b, "- Detected: %s\n- Became aware of the personal data breach: %s\n", ts(r.DetectedAt), ts(r.AwareAt))
	for _, c := range r.Clocks {
		state := fmt.Sprintf("notified %s", ts(c.NotifiedAt))
		switch {
		case c.NotifiedAt.IsZero() && c.Overdue:
			state = "OVERDUE: not yet notified; give the reasons for the delay"
		case c.NotifiedAt.IsZero():
			state = "not yet notified"
		case c.Late:
			state += " (after the deadline; give the reasons for the delay)"
		}
		fmt.Fprintf(&b, "- %s (%s): deadline %s, %s\n", c.Citation, c.Authority, ts(c.Deadline), state)
	}
	b.WriteString("\n## (a) Nature of the breach\n\n")
	fmt.Fprintf(&b, "%s\n\n", val(r.Nature))
	fmt.Fprintf(&b, "- Categories of data subjects: %s\n", list(r.SubjectCategories))
	fmt.Fprintf(&b, "- Approximate number of data subjects: %s\n", num(r.SubjectsApprox))
	fmt.Fprintf(&b, "- Categories of personal data records: %s\n", list(r.DataCategories))
	fmt.Fprintf(&b, "- Approximate number of personal data records: %s\n", num(r.RecordsApprox))
	fmt.Fprintf(&b, "- Controllers (tenants) affected: %d\n", r.TenantsAffected)
	b.WriteString("\n## (b) Contact point\n\n")
	fmt.Fprintf(&b, "%s\n", val(r.Contact))
	b.WriteString("\n## (c) Likely consequences\n\n")
	fmt.Fprintf(&b, "%s\n", val(r.Consequences))
	b.WriteString("\n## (d) Measures taken or proposed\n\n")
	fmt.Fprintf(&b, "%s\n", val(r.Measures))
	if len(r.Notifications) > 0 {
		b.WriteString("\n## Notifications made\n\n")
		for _, n := range r.Notifications {
			ref := n.Reference
			if ref == "" {
				ref = "no reference"
			}
			fmt.Fprintf(&b, "- %s: to %s (%s, %s), %s\n", ts(n.MadeAt), n.To, n.Recipient, n.Framework, ref)
		}
	}
	return b.String()
}
