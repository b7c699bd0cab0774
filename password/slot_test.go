package password

import (
	"context"
	"errors"
	"testing"
)

// A Slot holds one of the Hasher's slots from Acquire to Release: nothing else hashes in it
// meanwhile, its Verify and DummyVerify run in it (and count as computations), Release frees
// exactly one slot however often it is called, and a released Slot computes nothing.
func TestSlot_HoldsOneSlotUntilReleased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, err := NewHasher(testParams, 1, 0) // one slot, no waiting: busy at once when it is taken
	if err != nil {
		t.Fatal(err)
	}
	enc := mustHash(t, h, "pw")
	slot, err := h.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Acquire(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Acquire with the only slot held: %v, want ErrBusy", err)
	}
	if _, _, err := h.Verify(ctx, "pw", enc); !errors.Is(err, ErrBusy) {
		t.Fatalf("Verify with the only slot held: %v, want ErrBusy", err)
	}
	before := h.Computed()
	if ok, _, err := slot.Verify(ctx, "pw", enc); !ok || err != nil {
		t.Fatalf("Slot.Verify right password: %v, %v", ok, err)
	}
	if ok, _, err := slot.Verify(ctx, "wrong", enc); ok || err != nil {
		t.Fatalf("Slot.Verify wrong password: %v, %v", ok, err)
	}
	if err := slot.DummyVerify(ctx, "pw"); err != nil {
		t.Fatalf("Slot.DummyVerify: %v", err)
	}
	if got := h.Computed() - before; got != 3 {
		t.Fatalf("%d computations counted, want 3", got)
	}
	slot.Release()
	slot.Release() // a second Release must not free a slot someone else holds
	other, err := h.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	defer other.Release()
	if _, err := h.Acquire(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("Acquire with the slot held again: %v, want ErrBusy (Release freed more than one slot)", err)
	}
	before = h.Computed()
	if _, _, err := slot.Verify(ctx, "pw", enc); !errors.Is(err, errSlotReleased) {
		t.Fatalf("Verify on a released Slot: %v", err)
	}
	if err := slot.DummyVerify(ctx, "pw"); !errors.Is(err, errSlotReleased) {
		t.Fatalf("DummyVerify on a released Slot: %v", err)
	}
	if got := h.Computed() - before; got != 0 {
		t.Fatalf("a released Slot computed %d hashes", got)
	}
	// A slot of another Hasher does not run here.
	h2, err := NewHasher(testParams, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h2.verify(ctx, other, "pw", enc); err == nil {
		t.Fatal("a Slot of another Hasher was used")
	}
}
