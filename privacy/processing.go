package privacy

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"

	"tutela"
)

// Records of processing (issue 14; GDPR Art. 30(1)): what a controller must be able to show a
// supervisory authority. Most of it is not declared but read from the live configuration (the
// register of purposes, the subject schema); what only people know (categories of subjects and
// recipients, transfers, security measures, the sub-processors) is declared here and merged in
// (records.go). The controller's details are business contact data, not subjects' data.

// Bounds on what may be declared: enough for a real register, small enough that one tenant
// cannot make the record (generated on every read) expensive.
const (
	MaxListItems        = 50   // subject categories, recipients, locations, data categories
	MaxTransfers        = 50   // transfers of one processing record
	MaxSubprocessors    = 500  // sub-processors of one tenant, removed ones included
	maxLabel            = 200  // one category, recipient, name, service or reference
	maxContact          = 500  // a controller's or DPO's contact
	maxNote             = 4000 // retention and security notes
	maxSafeguardDetails = 1000
)

// Controller is who determines the purposes and means of the processing (Art. 30(1)(a)): the
// tenant's organisation, its contact, and its data protection officer's contact.
type Controller struct {
	Name           string    `json:"name"`
	Contact        string    `json:"contact"`
	DPOContact     string    `json:"dpo_contact,omitempty"`
	Representative string    `json:"representative,omitempty"` // Art. 27, for a controller outside the EU
	UpdatedAt      time.Time `json:"updated_at"`
}

// Validate checks the controller's details.
func (c *Controller) Validate() error {
	switch {
	case !validLabel(c.Name, maxLabel):
		return tutela.FieldErrorf("name", "name is required: up to %d characters on one line", maxLabel)
	case !validNote(c.Contact, maxContact):
		return tutela.FieldErrorf("contact", "contact is required: up to %d characters of printable text", maxContact)
	case c.DPOContact != "" && !validNote(c.DPOContact, maxContact):
		return tutela.FieldErrorf("dpo_contact", "dpo_contact must be up to %d characters of printable text", maxContact)
	case c.Representative != "" && !validNote(c.Representative, maxContact):
		return tutela.FieldErrorf("representative", "representative must be up to %d characters of printable text", maxContact)
	}
	return nil
}

// Safeguard is the ground a transfer to a third country rests on (GDPR Chapter V).
type Safeguard string

const (
	SafeguardNone       Safeguard = ""           // none declared yet: a gap in the record
	SafeguardAdequacy   Safeguard = "adequacy"   // Art. 45 adequacy decision
	SafeguardSCC        Safeguard = "scc"        // Art. 46(2)(c) standard contractual clauses
	SafeguardBCR        Safeguard = "bcr"        // Art. 47 binding corporate rules
	SafeguardDerogation Safeguard = "derogation" // Art. 49 derogation for a specific situation
	SafeguardOther      Safeguard = "other"      // another Art. 46 safeguard, described in details
)

// Safeguards lists the safeguards one may declare.
var Safeguards = []Safeguard{SafeguardAdequacy, SafeguardSCC, SafeguardBCR, SafeguardDerogation, SafeguardOther}

// validSafeguard checks a safeguard and its details (field names the JSON field).
func validSafeguard(s Safeguard, details, field, detailsField string) error {
	if s != SafeguardNone && !slices.Contains(Safeguards, s) {
		return tutela.FieldErrorf(field, "%s must be one of adequacy, scc, bcr, derogation, other (or empty while none is in place)", field)
	}
	if details != "" && !validNote(details, maxSafeguardDetails) {
		return tutela.FieldErrorf(detailsField, "%s must be up to %d characters of printable text", detailsField, maxSafeguardDetails)
	}
	if (s == SafeguardOther || s == SafeguardDerogation) && details == "" {
		return tutela.FieldErrorf(detailsField, "a safeguard of %s must be described in %s", s, detailsField)
	}
	return nil
}

// Transfer is a transfer of personal data to a recipient in a third country (Art. 30(1)(e)).
type Transfer struct {
	Country          string    `json:"country"` // ISO 3166-1 alpha-2
	Recipient        string    `json:"recipient"`
	Safeguard        Safeguard `json:"safeguard"`
	SafeguardDetails string    `json:"safeguard_details,omitempty"`
}

// Record is what a tenant declares about the processing for one purpose of its register: what
// the live configuration cannot tell.
type Record struct {
	Purpose           string     `json:"purpose"`
	SubjectCategories []string   `json:"subject_categories"` // Art. 30(1)(c): "beneficiaries", "staff"
	Recipients        []string   `json:"recipients"`         // Art. 30(1)(d)
	Transfers         []Transfer `json:"transfers"`          // Art. 30(1)(e)
	RetentionNote     string     `json:"retention_note,omitempty"`
	SecurityMeasures  string     `json:"security_measures,omitempty"` // Art. 30(1)(g), Art. 32
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

// Validate checks a declared record; nil lists become empty ones.
func (r *Record) Validate() error {
	if !ValidName(r.Purpose) {
		return tutela.FieldErrorf("purpose", "purpose must be a purpose name")
	}
	var err error
	if r.SubjectCategories, err = validLabels(r.SubjectCategories, "subject_categories"); err != nil {
		return err
	}
	if r.Recipients, err = validLabels(r.Recipients, "recipients"); err != nil {
		return err
	}
	if r.Transfers == nil {
		r.Transfers = []Transfer{}
	}
	if len(r.Transfers) > MaxTransfers {
		return tutela.FieldErrorf("transfers", "at most %d transfers", MaxTransfers)
	}
	for i := range r.Transfers {
		tr := &r.Transfers[i]
		switch {
		case !ValidCountry(tr.Country):
			return tutela.FieldErrorf("transfers", "transfers[%d].country must be an ISO 3166-1 alpha-2 country code such as US", i)
		case !validLabel(tr.Recipient, maxLabel):
			return tutela.FieldErrorf("transfers", "transfers[%d].recipient is required: up to %d characters on one line", i, maxLabel)
		}
		if err := validSafeguard(tr.Safeguard, tr.SafeguardDetails, "safeguard", "safeguard_details"); err != nil {
			return tutela.FieldErrorf("transfers", "transfers[%d]: %s", i, tutela.ErrorMessage(err))
		}
	}
	switch {
	case r.RetentionNote != "" && !validNote(r.RetentionNote, maxNote):
		return tutela.FieldErrorf("retention_note", "retention_note must be up to %d characters of printable text", maxNote)
	case r.SecurityMeasures != "" && !validNote(r.SecurityMeasures, maxNote):
		return tutela.FieldErrorf("security_measures", "security_measures must be up to %d characters of printable text", maxNote)
	}
	return nil
}

// SubprocessorStatus is whether a sub-processor still processes for the tenant.
type SubprocessorStatus string

const (
	SubprocessorActive  SubprocessorStatus = "active"
	SubprocessorRemoved SubprocessorStatus = "removed"
)

// Subprocessor is a processor the tenant engages (Art. 28(2), (4)). Removing one keeps its row
// with the date: which processors held the data when is the history an auditor asks for.
type Subprocessor struct {
	ID                string             `json:"id"`
	Name              string             `json:"name"`
	Service           string             `json:"service"`
	Locations         []string           `json:"locations"` // countries where it processes, ISO 3166-1 alpha-2
	DataCategories    []string           `json:"data_categories"`
	TransferSafeguard Safeguard          `json:"transfer_safeguard"`
	SafeguardDetails  string             `json:"safeguard_details,omitempty"`
	ContractRef       string             `json:"contract_ref"` // the data processing agreement
	Status            SubprocessorStatus `json:"status"`
	AddedAt           time.Time          `json:"added_at"`
	UpdatedAt         time.Time          `json:"updated_at"`
	RemovedAt         *time.Time         `json:"removed_at,omitempty"`
}

// Validate checks a sub-processor as declared; nil lists become empty ones.
func (s *Subprocessor) Validate() error {
	switch {
	case !validLabel(s.Name, maxLabel):
		return tutela.FieldErrorf("name", "name is required: up to %d characters on one line", maxLabel)
	case !validLabel(s.Service, maxLabel):
		return tutela.FieldErrorf("service", "service is required: what it does for the tenant, up to %d characters on one line", maxLabel)
	case len(s.Locations) == 0 || len(s.Locations) > MaxListItems:
		return tutela.FieldErrorf("locations", "locations must list 1 to %d countries where it processes", MaxListItems)
	case !validLabel(s.ContractRef, maxLabel):
		return tutela.FieldErrorf("contract_ref", "contract_ref is required: the data processing agreement's reference, up to %d characters", maxLabel)
	}
	seen := map[string]bool{}
	for _, c := range s.Locations {
		if !ValidCountry(c) {
			return tutela.FieldErrorf("locations", "locations must be ISO 3166-1 alpha-2 country codes such as DE")
		}
		if seen[c] {
			return tutela.FieldErrorf("locations", "location %s is listed twice", c)
		}
		seen[c] = true
	}
	var err error
	if s.DataCategories, err = validLabels(s.DataCategories, "data_categories"); err != nil {
		return err
	}
	return validSafeguard(s.TransferSafeguard, s.SafeguardDetails, "transfer_safeguard", "safeguard_details")
}

var countryRe = regexp.MustCompile(`^[A-Z]{2}$`)

// reservedRegions are two-letter codes that name no country of ISO 3166-1 (exceptionally
// reserved or groupings) but that CLDR accepts as regions.
var reservedRegions = []string{"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "TA", "UK", "UN"}

// ValidCountry reports whether c is an ISO 3166-1 alpha-2 country code, upper case ("GB", not
// "UK" or "gb").
func ValidCountry(c string) bool {
	if !countryRe.MatchString(c) || slices.Contains(reservedRegions, c) {
		return false
	}
	r, err := language.ParseRegion(c)
	return err == nil && r.IsCountry() && r.String() == c
}

// validNote reports whether s is printable text of 1 to max characters: line breaks allowed,
// other controls, bidi overrides and zero-width characters refused (they make an auditor read
// something other than what is stored).
func validNote(s string, max int) bool { return validText(s, max) && validMultiline(s) }

// validLabel reports whether s is one line of printable text, 1 to max characters.
func validLabel(s string, max int) bool {
	return validText(s, max) && tutela.ValidText(s) && strings.TrimSpace(s) != ""
}

// validLabels checks a list of labels (at most MaxListItems, each one line, no duplicates).
func validLabels(in []string, field string) ([]string, error) {
	if in == nil {
		return []string{}, nil
	}
	if len(in) > MaxListItems {
		return nil, tutela.FieldErrorf(field, "%s lists at most %d entries", field, MaxListItems)
	}
	seen := map[string]bool{}
	for _, s := range in {
		if !validLabel(s, maxLabel) {
			return nil, tutela.FieldErrorf(field, "each of %s must be one line of 1 to %d characters", field, maxLabel)
		}
		if seen[s] {
			return nil, tutela.FieldErrorf(field, "%s lists an entry twice", field)
		}
		seen[s] = true
	}
	return in, nil
}
