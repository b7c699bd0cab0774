package vault

import (
	"context"
	"errors"
	"testing"
)

// A call marked WithoutCreate never creates a keyset (it could wait for a creation that needs
// the caller's own write connection): it reports the missing keyset, and creates only for the
// tenants the mark allows; an existing keyset is used as always.
func TestWithoutCreate_ReportsMissingKeysetInsteadOfCreating(t *testing.T) {
	t.Parallel()
	v, st := newPepperVault(t)
	bg := context.Background()
	ctx := WithoutCreate(bg, func(tenant string) bool { return tenant == "new-tenant" })

	var mk *MissingKeysetError
	if _, err := v.Encrypt(ctx, "t1", PurposePersonalData, []byte("x"), nil); !errors.As(err, &mk) ||
		mk.TenantID != "t1" || mk.Purpose != PurposePersonalData {
		t.Fatalf("Encrypt without a keyset: %v, want MissingKeysetError for t1/personal_data", err)
	}
	if _, err := v.PRFPrimaryKey(ctx, "t1", PurposeBlindIndex); !errors.As(err, &mk) || mk.Purpose != PurposeBlindIndex {
		t.Fatalf("PRFPrimaryKey without a keyset: %v, want MissingKeysetError", err)
	}
	if ks, _ := st.GetKeyset(bg, "t1", PurposePersonalData); ks != nil {
		t.Fatal("a keyset was created under WithoutCreate")
	}
	if _, err := v.Encrypt(ctx, "new-tenant", PurposePersonalData, []byte("x"), nil); err != nil {
		t.Fatalf("an allowed tenant: %v", err)
	}
	ct, err := v.Encrypt(bg, "t1", PurposePersonalData, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Invalidate()
	if _, err := v.Encrypt(ctx, "t1", PurposePersonalData, []byte("y"), nil); err != nil {
		t.Fatalf("existing keyset under WithoutCreate: %v", err)
	}
	if pt, err := v.Decrypt(ctx, "t1", PurposePersonalData, ct, nil); err != nil || string(pt) != "x" {
		t.Fatalf("Decrypt under WithoutCreate: %q %v", pt, err)
	}
}
