package privacy

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"tutela"
)

// Purposes and consent (issue 14). Every read of a subject names a purpose; the tenant's
// register of purposes says on which lawful basis (GDPR Art. 6) each is processed. A purpose on
// consent may be processed for a subject only while the subject's latest consent record for it
// is a grant to a notice version the purpose still accepts; a purpose on public task or
// legitimate interests only while the subject has not objected (Art. 21); and no purpose while
// the subject's processing is restricted (Art. 18). The store checks all three in the same
// transaction as the processing, so a withdrawal takes effect on every node at once.

// LawfulBasis is a purpose's legal ground for processing (GDPR Art. 6(1); NDPA s.25; POPIA s.11).
type LawfulBasis string

const (
	BasisConsent             LawfulBasis = "consent"
	BasisContract            LawfulBasis = "contract"
	BasisLegalObligation     LawfulBasis = "legal_obligation"
	BasisVitalInterests      LawfulBasis = "vital_interests"
	BasisPublicTask          LawfulBasis = "public_task"
	BasisLegitimateInterests LawfulBasis = "legitimate_interests"
)

// LawfulBases lists every lawful basis.
var LawfulBases = []LawfulBasis{BasisConsent, BasisContract, BasisLegalObligation, BasisVitalInterests,
	BasisPublicTask, BasisLegitimateInterests}

// Valid reports whether b is a known basis.
func (b LawfulBasis) Valid() bool { return slices.Contains(LawfulBases, b) }

// NeedsConsent reports whether processing on basis b needs the subject's consent.
func (b LawfulBasis) NeedsConsent() bool { return b == BasisConsent }

// Objectable reports whether a subject may object to processing on basis b (GDPR Art. 21(1):
// public task or legitimate interests; withdrawing consent is the objection to a consent basis).
func (b LawfulBasis) Objectable() bool { return b == BasisPublicTask || b == BasisLegitimateInterests }

// Purpose is one entry of a tenant's register of purposes. A purpose on consent names the
// privacy notice the subject is shown (NoticeID, NoticeVersion); publishing a new version that
// requires re-consent raises ConsentMinVersion to it, so consents given to earlier versions no
// longer count.
type Purpose struct {
	Name              string      `json:"name"`
	Description       string      `json:"description"`
	LawfulBasis       LawfulBasis `json:"lawful_basis"`
	NoticeID          string      `json:"notice_id,omitempty"`
	NoticeVersion     int         `json:"notice_version,omitempty"`
	ConsentMinVersion int         `json:"consent_min_version,omitempty"`
	CreatedAt         time.Time   `json:"created_at"`
	UpdatedAt         time.Time   `json:"updated_at"`
}

// MaxRegisteredPurposes is how many purposes one tenant may declare in its register.
const MaxRegisteredPurposes = 200

// Validate checks a purpose as declared (every problem's field named).
func (p *Purpose) Validate() error {
	switch {
	case !ValidName(p.Name):
		return tutela.FieldErrorf("name", "name must be a purpose name: lower-case letters, digits and underscores, starting with a letter")
	case !validText(p.Description, 1000):
		return tutela.FieldErrorf("description", "description is required: up to 1000 characters of printable text")
	case !p.LawfulBasis.Valid():
		return tutela.FieldErrorf("lawful_basis", "lawful_basis must be one of %s", basisList())
	}
	if p.LawfulBasis.NeedsConsent() {
		switch {
		case !ValidName(p.NoticeID):
			return tutela.FieldErrorf("notice_id", "a purpose on consent needs notice_id, the privacy notice subjects consent to: lower-case letters, digits and underscores, starting with a letter")
		case p.NoticeVersion < 1 || p.NoticeVersion > 1_000_000:
			return tutela.FieldErrorf("notice_version", "notice_version must be from 1 to 1000000")
		case p.ConsentMinVersion < 1 || p.ConsentMinVersion > p.NoticeVersion:
			return tutela.FieldErrorf("consent_min_version", "consent_min_version must be from 1 to notice_version")
		}
		return nil
	}
	if p.NoticeID != "" || p.NoticeVersion != 0 || p.ConsentMinVersion != 0 {
		return tutela.FieldErrorf("notice_id", "only a purpose on consent has a consent notice")
	}
	return nil
}

func basisList() string {
	s := make([]string, len(LawfulBases))
	for i, b := range LawfulBases {
		s[i] = string(b)
	}
	return strings.Join(s, ", ")
}

// validText reports whether s is non-empty printable text of at most max characters (new lines
// allowed, no other control characters).
func validText(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' || r == 0x7f {
			return false
		}
	}
	return true
}

// ConsentAction is what a consent record says.
type ConsentAction string

const (
	ConsentGranted   ConsentAction = "granted"
	ConsentWithdrawn ConsentAction = "withdrawn"
)

// ConsentBasis is the form of consent a record documents: ordinary consent (Art. 6(1)(a)),
// explicit consent for special categories (Art. 9(2)(a)), or consent given by a parent or
// guardian for a child (Art. 8).
type ConsentBasis string

const (
	ConsentOrdinary ConsentBasis = "consent"
	ConsentExplicit ConsentBasis = "explicit_consent"
	ConsentParental ConsentBasis = "parental_consent"
)

// ConsentChannels are how a consent or withdrawal may reach the tenant.
var ConsentChannels = []string{"web", "app", "paper", "verbal", "phone", "sms", "email", "api"}

// Who recorded a consent record: the subject themselves (through a channel the platform
// operates), or a caseworker on their behalf, who must cite evidence (a signed form's
// reference, a call recording's ID).
const (
	RecordedBySubject    = "subject"
	RecordedByCaseworker = "caseworker"
)

// RecordedBy decides who a consent record says recorded it, from who is entering it (issue
// 14's review: taken from the request, it let a caseworker claim "the subject did it" and skip
// the evidence a caseworker must give). A person signed in to Tutela (person: a user account)
// is never the subject of the record: they record as a caseworker, with evidence. Only a
// service account, the subject-facing app or portal acting for the subject, records as the
// subject (the default), or as a caseworker when it relays a caseworker's entry. requested is
// what the caller said ("" for nothing); a value that disagrees is refused, not corrected, so a
// client never believes it recorded something it did not.
func RecordedBy(person bool, requested string) (string, error) {
	switch {
	case requested != "" && requested != RecordedBySubject && requested != RecordedByCaseworker:
		return "", tutela.FieldErrorf("recorded_by", "recorded_by must be subject or caseworker")
	case person && requested == RecordedBySubject:
		return "", tutela.FieldErrorf("recorded_by", "a person records consent as a caseworker on the subject's behalf, with evidence; "+
			"recorded_by subject is for the subject-facing app's service account")
	case person:
		return RecordedByCaseworker, nil
	case requested == "":
		return RecordedBySubject, nil
	}
	return requested, nil
}

// ConsentRecord is one entry of a subject's append-only consent history. Evidence is the
// caseworker's evidence reference in clear on the way in; the store keeps it sealed under the
// subject's key (EvidenceSealed), so erasing the subject shreds it.
type ConsentRecord struct {
	ID            string        `json:"id"`
	SubjectID     string        `json:"subject_id"`
	Purpose       string        `json:"purpose"`
	Action        ConsentAction `json:"action"`
	Basis         ConsentBasis  `json:"lawful_basis"`
	NoticeID      string        `json:"notice_id"`
	NoticeVersion int           `json:"notice_version"`
	Channel       string        `json:"channel"`
	RecordedBy    string        `json:"recorded_by"` // RecordedBySubject or RecordedByCaseworker
	ActorType     string        `json:"actor_type"`  // the principal who entered it
	ActorID       string        `json:"actor_id"`
	Evidence      string        `json:"evidence,omitempty"`
	At            time.Time     `json:"at"`

	EvidenceSealed []byte `json:"-"`
}

// Validate checks a record as submitted, before it is sealed and stored. The notice is
// checked against the purpose by the store, which reads the purpose in the same transaction.
func (c *ConsentRecord) Validate() error {
	switch {
	case !tutela.ValidID(c.SubjectID):
		return tutela.FieldErrorf("subject_id", "subject_id must be a subject's ID")
	case !ValidName(c.Purpose):
		return tutela.FieldErrorf("purpose", "purpose must be a purpose name")
	case c.Action != ConsentGranted && c.Action != ConsentWithdrawn:
		return tutela.FieldErrorf("action", "action must be granted or withdrawn")
	case c.Basis != ConsentOrdinary && c.Basis != ConsentExplicit && c.Basis != ConsentParental:
		return tutela.FieldErrorf("lawful_basis", "lawful_basis must be consent, explicit_consent or parental_consent")
	case !slices.Contains(ConsentChannels, c.Channel):
		return tutela.FieldErrorf("channel", "channel must be one of %s", strings.Join(ConsentChannels, ", "))
	case c.RecordedBy != RecordedBySubject && c.RecordedBy != RecordedByCaseworker:
		return tutela.FieldErrorf("recorded_by", "recorded_by must be subject or caseworker")
	case c.RecordedBy == RecordedByCaseworker && c.Evidence == "":
		return tutela.FieldErrorf("evidence", "a caseworker recording consent on a subject's behalf must give an evidence reference")
	case c.Evidence != "" && !validText(c.Evidence, 500):
		return tutela.FieldErrorf("evidence", "evidence must be up to 500 characters of printable text")
	}
	return nil
}

// EvidenceField is the person-key field a consent record's evidence is sealed as: bound to
// the record, so evidence moved to another record does not open.
func EvidenceField(recordID string) string { return "consent_records.evidence:" + recordID }
