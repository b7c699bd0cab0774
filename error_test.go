package tutela

import (
	"errors"
	"testing"
)

// Wrapping an outage keeps it an outage (503 with Retry-After), not an internal error (500);
// anything else wrapped is internal, its cause kept for the log only.
func TestWrap_KeepsUnavailable(t *testing.T) {
	t.Parallel()
	outage := Errorf(EUNAVAILABLE, "the database is unavailable; try again shortly")
	w := Wrap(outage, "cannot open a TOTP seed")
	if w.Code != EUNAVAILABLE || w.Message != outage.Message || !errors.Is(w, outage) {
		t.Errorf("Wrap(unavailable) = %+v", w)
	}
	other := Wrap(errors.New("disk on fire"), "cannot open a TOTP seed")
	if other.Code != EINTERNAL || other.Message != "cannot open a TOTP seed" {
		t.Errorf("Wrap(other) = %+v", other)
	}
	if ErrorCode(Wrap(Errorf(ECONFLICT, "taken"), "x")) != EINTERNAL {
		t.Error("a non-outage code survived Wrap")
	}
}
