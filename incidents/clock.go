package incidents

import (
	"slices"
	"sort"
	"time"
)

// Framework is one legal framework's deadline for telling the supervisory authority about a
// personal-data breach, counted from when the controller became aware of it (the incident's
// ConfirmedAt), and when its owners are reminded before that deadline.
type Framework struct {
	Key       string
	Name      string
	Authority string        // whom the law says to notify
	Citation  string        // the provision
	Deadline  time.Duration // from awareness
	// RemindBefore are the reminders, as time left before the deadline; one more goes out at
	// the deadline itself (overdue). Offsets larger than Deadline are skipped.
	RemindBefore []time.Duration
}

// DefaultFramework applies when an incident names none.
const DefaultFramework = "gdpr"

// Frameworks is the one table of breach-notification deadlines. Each applies to an incident
// that names it; an incident affecting tenants under several laws names several, and each runs
// its own clock until its authority notification is recorded.
//
// With a 72-hour deadline the reminders fall at 24 h, 48 h, 60 h and 70 h after awareness and
// at 72 h (overdue).
var Frameworks = map[string]Framework{
	"gdpr": {Key: "gdpr", Name: "GDPR", Authority: "the competent supervisory authority",
		Citation: "GDPR Art. 33(1)", Deadline: 72 * time.Hour, RemindBefore: remind72},
	"uk_gdpr": {Key: "uk_gdpr", Name: "UK GDPR", Authority: "the Information Commissioner's Office",
		Citation: "UK GDPR Art. 33(1)", Deadline: 72 * time.Hour, RemindBefore: remind72},
	"ndpa": {Key: "ndpa", Name: "Nigeria Data Protection Act 2023", Authority: "the Nigeria Data Protection Commission",
		Citation: "NDPA 2023 s.40(2)", Deadline: 72 * time.Hour, RemindBefore: remind72},
}

var remind72 = []time.Duration{48 * time.Hour, 24 * time.Hour, 12 * time.Hour, 2 * time.Hour}

// FrameworkKeys lists the table's keys, sorted.
func FrameworkKeys() []string {
	out := make([]string, 0, len(Frameworks))
	for k := range Frameworks {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Clock is one framework's breach clock for an incident.
type Clock struct {
	Framework  string    `json:"framework"`
	Authority  string    `json:"authority"`
	Citation   string    `json:"citation"`
	Deadline   time.Time `json:"deadline"`
	NotifiedAt time.Time `json:"notified_at,omitzero"` // the authority's notification, once recorded
	// Remaining is the time left in seconds (negative: overdue), while not notified.
	Remaining int64 `json:"remaining_seconds"`
	Overdue   bool  `json:"overdue"`
	// Late is set when the notification was made after the deadline (Art. 33(1): the reasons
	// for the delay must accompany it).
	Late bool `json:"late"`
}

// Clocks are the incident's breach clocks at now: one per framework, for a confirmed breach;
// none otherwise.
func (inc *Incident) Clocks(now time.Time) []Clock {
	if !inc.PersonalDataBreach || inc.ConfirmedAt.IsZero() {
		return []Clock{}
	}
	out := make([]Clock, 0, len(inc.Frameworks))
	for _, key := range inc.Frameworks {
		f, ok := Frameworks[key]
		if !ok {
			continue
		}
		c := Clock{Framework: key, Authority: f.Authority, Citation: f.Citation, Deadline: inc.ConfirmedAt.Add(f.Deadline)}
		if n, ok := inc.authorityNotice(key); ok {
			c.NotifiedAt = n.MadeAt
			c.Late = n.MadeAt.After(c.Deadline)
		} else {
			c.Remaining = int64(c.Deadline.Sub(now) / time.Second)
			c.Overdue = !now.Before(c.Deadline)
		}
		out = append(out, c)
	}
	return out
}

// authorityNotice says whether the authority has been notified under framework, and when: by
// a deployment-wide notification (no tenant: the earliest), or by one for each affected tenant
// (each controller notifying its own authority: when the last of them was). An incident with
// no affected tenant yet needs a deployment-wide one.
func (inc *Incident) authorityNotice(framework string) (Notification, bool) {
	var global Notification
	foundGlobal := false
	perTenant := map[string]Notification{}
	for _, n := range inc.Notifications {
		if n.Recipient != ToAuthority || n.Framework != framework {
			continue
		}
		if n.TenantID == "" {
			if !foundGlobal || n.MadeAt.Before(global.MadeAt) {
				global, foundGlobal = n, true
			}
		} else if p, ok := perTenant[n.TenantID]; !ok || n.MadeAt.Before(p.MadeAt) {
			perTenant[n.TenantID] = n
		}
	}
	if foundGlobal {
		return global, true
	}
	if len(inc.Tenants) == 0 {
		return Notification{}, false
	}
	var last Notification
	for _, a := range inc.Tenants {
		n, ok := perTenant[a.TenantID]
		if !ok {
			return Notification{}, false
		}
		if n.MadeAt.After(last.MadeAt) {
			last = n
		}
	}
	return last, true
}

// Reminder is one point of the breach clock at which the owners are told.
type Reminder struct {
	At        time.Time
	Framework string
	Deadline  time.Time
	Overdue   bool // the deadline itself
}

// Reminders are the incident's reminder points, earliest first: for each framework whose
// authority notification is not recorded, each RemindBefore offset before its deadline and the
// deadline. None for an incident that is not a confirmed breach or that is closed.
func (inc *Incident) Reminders() []Reminder {
	if !inc.PersonalDataBreach || inc.ConfirmedAt.IsZero() || inc.Status == StatusClosed {
		return nil
	}
	var out []Reminder
	for _, key := range inc.Frameworks {
		f, ok := Frameworks[key]
		if !ok {
			continue
		}
		if _, done := inc.authorityNotice(key); done {
			continue
		}
		deadline := inc.ConfirmedAt.Add(f.Deadline)
		for _, before := range f.RemindBefore {
			if before < f.Deadline {
				out = append(out, Reminder{At: deadline.Add(-before), Framework: key, Deadline: deadline})
			}
		}
		out = append(out, Reminder{At: deadline, Framework: key, Deadline: deadline, Overdue: true})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// NextReminder is the first reminder point after `after` (zero time: from the start), if any.
// The store keeps it as the incident's next_reminder_at, so the sweep finds due incidents with
// one indexed query.
func (inc *Incident) NextReminder(after time.Time) (time.Time, bool) {
	for _, r := range inc.Reminders() {
		if r.At.After(after) {
			return r.At, true
		}
	}
	return time.Time{}, false
}

// DueReminder is the reminder to send at now when the last one sent was at `after` (zero: none
// yet): the latest point in (after, now]. Points missed while no node swept (an outage) are not
// sent one by one: only the latest, which says where the clock stands now.
func (inc *Incident) DueReminder(after, now time.Time) (Reminder, bool) {
	var due Reminder
	found := false
	for _, r := range inc.Reminders() {
		if r.At.After(after) && !r.At.After(now) {
			due, found = r, true
		}
	}
	return due, found
}
