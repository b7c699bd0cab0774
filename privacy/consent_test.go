package privacy

import (
	"testing"

	"tutela"
)

// TestRecordedBy_PersonIsACaseworkerOnlyServiceRecordsAsSubject: who recorded a consent record
// follows the principal; a request that disagrees is refused, not corrected.
func TestRecordedBy_PersonIsACaseworkerOnlyServiceRecordsAsSubject(t *testing.T) {
	for _, c := range []struct {
		person          bool
		requested, want string
		refused         bool
	}{
		{true, "", RecordedByCaseworker, false},
		{true, RecordedByCaseworker, RecordedByCaseworker, false},
		{true, RecordedBySubject, "", true},
		{true, "Subject", "", true},
		{false, "", RecordedBySubject, false},
		{false, RecordedBySubject, RecordedBySubject, false},
		{false, RecordedByCaseworker, RecordedByCaseworker, false},
		{false, "robot", "", true},
	} {
		got, err := RecordedBy(c.person, c.requested)
		if c.refused {
			if tutela.ErrorCode(err) != tutela.EINVALID || got != "" {
				t.Errorf("person=%v %q: %q, %v; want refused", c.person, c.requested, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("person=%v %q: %q, %v; want %q", c.person, c.requested, got, err, c.want)
		}
	}
}
