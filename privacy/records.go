package privacy

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"tutela/authz"
)

// The record of processing activities is generated, never stored: each read merges the live
// register of purposes and subject schema with what was declared, so a field given a new purpose
// appears under it at once, and a record cannot drift from what the system actually does.

// DataCategory is a subject-schema field processed for a purpose (Art. 30(1)(c)).
type DataCategory struct {
	Field          string               `json:"field"`
	Type           FieldType            `json:"type"`
	Classification authz.Classification `json:"classification"`
	RetentionDays  int                  `json:"retention_days"`
}

// PurposeRecord is the record for one purpose: the register's entry (InRegister false for a
// purpose the schema uses but the register lacks), the fields processed for it, the retention
// they imply, and what was declared (Declared false when nothing was).
type PurposeRecord struct {
	Purpose       string      `json:"purpose"`
	InRegister    bool        `json:"in_register"`
	Description   string      `json:"description,omitempty"`
	LawfulBasis   LawfulBasis `json:"lawful_basis,omitempty"`
	NoticeID      string      `json:"notice_id,omitempty"`
	NoticeVersion int         `json:"notice_version,omitempty"`
	// DataCategories are the fields whose purposes include this one, by name.
	DataCategories []DataCategory `json:"data_categories"`
	// RetentionDays is the longest retention among DataCategories (0 without any): no data
	// held for this purpose is kept longer.
	RetentionDays     int        `json:"retention_days"`
	Declared          bool       `json:"declared"`
	SubjectCategories []string   `json:"subject_categories"`
	Recipients        []string   `json:"recipients"`
	Transfers         []Transfer `json:"transfers"`
	RetentionNote     string     `json:"retention_note,omitempty"`
	SecurityMeasures  string     `json:"security_measures,omitempty"`
	DeclaredAt        *time.Time `json:"declared_at,omitempty"` // the declaration's last change
}

// Gap kinds: what an auditor must look at first.
const (
	GapNoController         = "controller_missing"         // no controller details declared
	GapPurposeNotInRegister = "purpose_not_in_register"    // the schema uses a purpose with no lawful basis
	GapNoRecord             = "purpose_without_record"     // a registered purpose with nothing declared
	GapTransferNoSafeguard  = "transfer_without_safeguard" // a transfer to a third country on no safeguard
	GapREDWithoutSecurity   = "red_without_security_measures"
)

// Gap is one shortcoming of the record.
type Gap struct {
	Kind    string   `json:"kind"`
	Purpose string   `json:"purpose,omitempty"`
	Fields  []string `json:"fields,omitempty"`
	Detail  string   `json:"detail"`
}

// RecordsOfProcessing is a tenant's generated record.
type RecordsOfProcessing struct {
	TenantID    string          `json:"tenant_id"`
	TenantSlug  string          `json:"tenant_slug"`
	TenantName  string          `json:"tenant_name"`
	GeneratedAt time.Time       `json:"generated_at"`
	Gaps        []Gap           `json:"gaps"`
	Controller  *Controller     `json:"controller"`
	Purposes    []PurposeRecord `json:"purposes"`
	// Subprocessors are the active ones (removed ones are in the sub-processor register).
	Subprocessors []*Subprocessor `json:"subprocessors"`
}

// RecordsInput is the live configuration and the declarations a record is generated from.
type RecordsInput struct {
	Controller    *Controller // nil when none was declared
	Purposes      []*Purpose
	Schema        Schema
	Records       []*Record
	Subprocessors []*Subprocessor // active ones
}

// BuildRecords generates the purposes' records and the gaps, purposes in name order.
func BuildRecords(in RecordsInput) ([]PurposeRecord, []Gap) {
	byName := map[string]*PurposeRecord{}
	get := func(name string) *PurposeRecord {
		if pr, ok := byName[name]; ok {
			return pr
		}
		pr := &PurposeRecord{Purpose: name, DataCategories: []DataCategory{}, SubjectCategories: []string{},
			Recipients: []string{}, Transfers: []Transfer{}}
		byName[name] = pr
		return pr
	}
	for _, p := range in.Purposes {
		pr := get(p.Name)
		pr.InRegister, pr.Description, pr.LawfulBasis = true, p.Description, p.LawfulBasis
		pr.NoticeID, pr.NoticeVersion = p.NoticeID, p.NoticeVersion
	}
	for _, f := range in.Schema {
		for _, name := range f.Purposes {
			pr := get(name)
			pr.DataCategories = append(pr.DataCategories, DataCategory{Field: f.Name, Type: f.Type,
				Classification: f.Classification, RetentionDays: f.RetentionDays})
			pr.RetentionDays = max(pr.RetentionDays, f.RetentionDays)
		}
	}
	for _, r := range in.Records {
		pr, ok := byName[r.Purpose]
		if !ok || !pr.InRegister {
			continue // a record's purpose is in the register (foreign key); defensive
		}
		at := r.UpdatedAt
		pr.Declared, pr.DeclaredAt = true, &at
		pr.SubjectCategories, pr.Recipients = nonNilStrings(r.SubjectCategories), nonNilStrings(r.Recipients)
		pr.Transfers = slices.Clone(r.Transfers)
		if pr.Transfers == nil {
			pr.Transfers = []Transfer{}
		}
		pr.RetentionNote, pr.SecurityMeasures = r.RetentionNote, r.SecurityMeasures
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]PurposeRecord, 0, len(names))
	gaps := []Gap{}
	if in.Controller == nil {
		gaps = append(gaps, Gap{Kind: GapNoController, Detail: "the controller's name and contact are not declared (Art. 30(1)(a))"})
	}
	for _, n := range names {
		pr := byName[n]
		slices.SortFunc(pr.DataCategories, func(a, b DataCategory) int { return strings.Compare(a.Field, b.Field) })
		out = append(out, *pr)
		fields := make([]string, 0, len(pr.DataCategories))
		var red []string
		for _, c := range pr.DataCategories {
			fields = append(fields, c.Field)
			if c.Classification == authz.Red {
				red = append(red, c.Field)
			}
		}
		switch {
		case !pr.InRegister:
			gaps = append(gaps, Gap{Kind: GapPurposeNotInRegister, Purpose: n, Fields: fields,
				Detail: "the subject schema processes fields for this purpose, which is not in the register: declare it with its lawful basis"})
			continue
		case !pr.Declared:
			gaps = append(gaps, Gap{Kind: GapNoRecord, Purpose: n,
				Detail: "nothing is declared for this purpose: subject categories, recipients, transfers, security measures"})
		}
		for i, tr := range pr.Transfers {
			if tr.Safeguard == SafeguardNone {
				gaps = append(gaps, Gap{Kind: GapTransferNoSafeguard, Purpose: n,
					Detail: fmt.Sprintf("transfer %d to %s (%s) rests on no safeguard (Chapter V)", i+1, tr.Country, tr.Recipient)})
			}
		}
		if len(red) > 0 && pr.SecurityMeasures == "" {
			gaps = append(gaps, Gap{Kind: GapREDWithoutSecurity, Purpose: n, Fields: red,
				Detail: "RED fields are processed for this purpose, and no security measures are described"})
		}
	}
	return out, gaps
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

// listSep joins a cell's list entries in CSV.
const listSep = "; "

// RecordsCSVHeader is the first row of a record's CSV: one row per (purpose, data category); a
// purpose without any field has one row with the field columns empty.
var RecordsCSVHeader = []string{"purpose", "in_register", "lawful_basis", "description", "notice_id", "notice_version",
	"field", "field_type", "classification", "field_retention_days", "purpose_retention_days", "subject_categories",
	"recipients", "transfers", "retention_note", "security_measures", "declared_at", "gaps"}

// WriteRecordsCSV writes rop's purposes as CSV (through WriteCSV: cells made formula-safe). Lists
// are joined with "; "; a transfer reads "US: recipient [scc]". The gaps column names the kinds
// of gap of the row's purpose; gaps without a purpose (controller_missing) are in the JSON.
func WriteRecordsCSV(w io.Writer, rop *RecordsOfProcessing) error {
	gapsOf := map[string][]string{}
	for _, g := range rop.Gaps {
		if g.Purpose != "" && !slices.Contains(gapsOf[g.Purpose], g.Kind) {
			gapsOf[g.Purpose] = append(gapsOf[g.Purpose], g.Kind)
		}
	}
	var rows [][]string
	for _, p := range rop.Purposes {
		transfers := make([]string, len(p.Transfers))
		for i, tr := range p.Transfers {
			transfers[i] = TransferString(tr)
		}
		notice := ""
		if p.NoticeVersion > 0 {
			notice = strconv.Itoa(p.NoticeVersion)
		}
		declared := ""
		if p.DeclaredAt != nil {
			declared = p.DeclaredAt.UTC().Format(time.RFC3339)
		}
		row := func(c *DataCategory) []string {
			field, typ, class, days := "", "", "", ""
			if c != nil {
				field, typ, class, days = c.Field, string(c.Type), string(c.Classification), strconv.Itoa(c.RetentionDays)
			}
			return []string{p.Purpose, strconv.FormatBool(p.InRegister), string(p.LawfulBasis), p.Description, p.NoticeID,
				notice, field, typ, class, days, strconv.Itoa(p.RetentionDays), strings.Join(p.SubjectCategories, listSep),
				strings.Join(p.Recipients, listSep), strings.Join(transfers, listSep), p.RetentionNote, p.SecurityMeasures,
				declared, strings.Join(gapsOf[p.Purpose], listSep)}
		}
		if len(p.DataCategories) == 0 {
			rows = append(rows, row(nil))
		}
		for i := range p.DataCategories {
			rows = append(rows, row(&p.DataCategories[i]))
		}
	}
	return WriteCSV(w, RecordsCSVHeader, rows)
}

// TransferString is a transfer as one CSV list entry.
func TransferString(tr Transfer) string {
	s := tr.Country + ": " + tr.Recipient + " [" + string(tr.Safeguard)
	if tr.Safeguard == SafeguardNone {
		s += "none"
	}
	if tr.SafeguardDetails != "" {
		s += ": " + tr.SafeguardDetails
	}
	return s + "]"
}

// SubprocessorsCSVHeader is the first row of the sub-processor register's CSV.
var SubprocessorsCSVHeader = []string{"id", "name", "service", "locations", "data_categories", "transfer_safeguard",
	"safeguard_details", "contract_ref", "status", "added_at", "removed_at"}

// WriteSubprocessorsCSV writes the sub-processor register as CSV, one row per sub-processor.
func WriteSubprocessorsCSV(w io.Writer, subs []*Subprocessor) error {
	rows := make([][]string, 0, len(subs))
	for _, s := range subs {
		removed := ""
		if s.RemovedAt != nil {
			removed = s.RemovedAt.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{s.ID, s.Name, s.Service, strings.Join(s.Locations, listSep),
			strings.Join(s.DataCategories, listSep), string(s.TransferSafeguard), s.SafeguardDetails, s.ContractRef,
			string(s.Status), s.AddedAt.UTC().Format(time.RFC3339), removed})
	}
	return WriteCSV(w, SubprocessorsCSVHeader, rows)
}
