package storetest

import (
	"errors"
	"strings"
	"testing"

	"tutela"
	"tutela/authz"
	"tutela/sqlstore"
)

// ASVS 5.0 2.2.1: every name, address and region the store keeps is validated against a
// positive rule before it reaches SQL. A refused value is an invalid error naming the field on
// every dialect; PostgreSQL would otherwise answer NUL or invalid UTF-8 with an internal error.

// names that must survive unchanged: people and programmes are named in every script.
var goodNames = []string{
	"Ana López", "José María Núñez-O'Brien", "Nguyễn Thị Minh Khai", "محمد عبد الله", "Оксана Коваленко",
	"王秀英", "김민준", "Αλέξανδρος", "שרה לוי", "अनुष्का शर्मा", "مهر\u200cانگیز رضایی", "Ärzte ohne Grenzen e.V. (Amman) — field #2",
}

// badNames carry a control or format character, or are not UTF-8.
var badNames = map[string]string{
	"NUL":                      "Ana\x00López",
	"LF":                       "Ana\nadmin logged in",
	"CRLF":                     "Ana\r\nLópez",
	"ANSI escape":              "\x1b[2J\x1b[31mAna",
	"right-to-left override":   "Ana\u202eexe.txt",
	"left-to-right isolate":    "\u2066Ana\u2069",
	"zero-width space":         "Ad\u200bmin",
	"byte order mark":          "\ufeffAna",
	"line separator":           "Ana\u2028López",
	"invalid UTF-8":            "Ana\xffLópez",
	"overlong UTF-8 encoding":  "Ana\xc0\xaf",
	"C1 control (next line)":   "Ana\u0085López",
	"zero-width joiner inside": "Ana\u200dLópez",
}

func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	var e *tutela.Error
	if !errors.As(err, &e) || e.Code != tutela.EINVALID || e.Field != field {
		t.Errorf("%s = %v, want invalid on %s", what, err, field)
	}
}

// testEmailRule checks the store takes exactly the addresses the mail package can send to
// (tutela.ValidEmail): look-alikes of an existing account, IP literals and quoted local parts
// are refused rather than stored as a second account.
func testEmailRule(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	admin := createUser(t, db, tn.ID, "admin@example.org")
	for _, email := range []string{
		"Jean-Luc.Picard+work@mail.starfleet.org", "=1+2@example.org", "o'brien@example.ie",
		"x_y{z}|~!#$%&*/?^`@example.org", "root@localhost", "user@xn--bcher-kva.example",
		strings.Repeat("a", 64) + "@example.org",
		" padded@example.org ", // trimmed before it is checked
	} {
		createUser(t, db, tn.ID, email)
	}
	for _, email := range []string{
		"ad\u200bmin@example.org", // zero-width space
		"\u0430dmin@example.org",  // Cyrillic а
		"admin@ex\u0430mple.org",  // Cyrillic а in the domain
		"admin@example.org\u200e", // left-to-right mark
		"x@[127.0.0.1]", "x@[IPv6:::1]", "x@127.0.0.1",
		`"admin"@example.org`, `"a b"@example.org`,
		"admin\x00@example.org", "a\r\nBcc: eve@example.org", "admin@example.org\xff",
		strings.Repeat("a", 65) + "@example.org",
		"a@" + strings.Repeat("d", 64) + ".org",
		strings.Repeat("a", 64) + "@" + strings.Repeat("d.", 95) + "org", // over 254 bytes
		"a@-example.org", "a..b@example.org", "Ana <ana@example.org>",
	} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Users(tn.ID).Create(ctx, &tutela.User{Email: email})
		})
		wantInvalid(t, "Create(email="+strings.ToValidUTF8(email, "?")+")", err, "email")
		renamed := *admin
		renamed.Email = email
		err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Update(ctx, &renamed) })
		wantInvalid(t, "Update(email="+strings.ToValidUTF8(email, "?")+")", err, "email")
	}
	var n int
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { n, err = tx.Users(tn.ID).Count(ctx); return })
	if n != 9 {
		t.Errorf("tenant has %d users, want 9: a refused address was stored", n)
	}
}

// testNameText checks the free-text name fields (user display name, tenant name, role name)
// take every script and refuse control and format characters and invalid UTF-8.
func testNameText(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "ana@example.org")
	role := &sqlstore.Role{Key: "caseworker", Name: "Caseworker", Clearance: authz.Green}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateRole(ctx, tn.ID, role) })

	for i, name := range goodNames {
		u.DisplayName = name
		update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Update(ctx, u) })
		tn.Name = name
		update(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, tn) })
		role.Name = name
		update(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateRole(ctx, tn.ID, role) })
		var gotU *tutela.User
		var gotT *tutela.Tenant
		var gotR *sqlstore.Role
		err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
			if gotU, err = tx.Users(tn.ID).Get(ctx, u.ID); err != nil {
				return err
			}
			if gotT, err = tx.Tenant(ctx, tn.ID); err != nil {
				return err
			}
			gotR, err = tx.Role(ctx, tn.ID, role.Key)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if gotU.DisplayName != name || gotT.Name != name || gotR.Name != name {
			t.Errorf("%q read back as %q / %q / %q", name, gotU.DisplayName, gotT.Name, gotR.Name)
		}
		// Creating with the name works too.
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.Users(tn.ID).Create(ctx, &tutela.User{Email: "u" + string(rune('a'+i)) + "@example.org", DisplayName: name})
		})
	}

	for what, name := range badNames {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Users(tn.ID).Create(ctx, &tutela.User{Email: "new@example.org", DisplayName: name})
		})
		wantInvalid(t, "create user, display name with "+what, err, "display_name")
		badU := *u
		badU.DisplayName = name
		wantInvalid(t, "update user, display name with "+what,
			db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Update(ctx, &badU) }), "display_name")

		err = db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.CreateTenant(ctx, &tutela.Tenant{Slug: "new", Name: name, Region: "eu"})
		})
		wantInvalid(t, "create tenant, name with "+what, err, "name")
		badT := *tn
		badT.Name = name
		wantInvalid(t, "update tenant, name with "+what,
			db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, &badT) }), "name")

		err = db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.CreateRole(ctx, tn.ID, &sqlstore.Role{Key: "new_role", Name: name, Clearance: authz.Green})
		})
		wantInvalid(t, "create role, name with "+what, err, "name")
		badR := *role
		badR.Name = name
		wantInvalid(t, "update role, name with "+what,
			db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateRole(ctx, tn.ID, &badR) }), "name")
	}

	// A role description may span lines but, like every text column, must be UTF-8 without NUL.
	role.Description = "Reads case files.\nNo exports."
	update(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateRole(ctx, tn.ID, role) })
	for _, d := range []string{"a\x00b", "a\xffb"} {
		bad := *role
		bad.Description = d
		wantInvalid(t, "update role, description "+strings.ToValidUTF8(d, "?"),
			db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateRole(ctx, tn.ID, &bad) }), "description")
	}
}

// testTenantRegion checks data_region is a region code, not free text.
func testTenantRegion(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	for i, region := range []string{"eu", "eu-west", "ch-geneva-1", "us-east-2", "jo", "eu-" + strings.Repeat("a", 16), sqlstore.DefaultRegion} {
		tn := &tutela.Tenant{Slug: "t" + string(rune('a'+i)), Name: "n", Region: region}
		update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) })
	}
	tn := createTenant(t, db, "acme")
	for _, region := range []string{
		"", "e", "EU", "Eu-west", "eur", "eu_west", "eu-", "eu--west", "-eu", "eu-west-1-a",
		"eu-" + strings.Repeat("a", 17), "eu west", " eu", "eu\n", "eu\x00", "eu-wést", "еu", // Cyrillic е
		"1u", "Europe (Frankfurt)", "default-1", "DEFAULT",
	} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.CreateTenant(ctx, &tutela.Tenant{Slug: "new", Name: "n", Region: region})
		})
		wantInvalid(t, "CreateTenant(region="+strings.ToValidUTF8(region, "?")+")", err, "data_region")
		bad := *tn
		bad.Region = region
		wantInvalid(t, "UpdateTenant(region="+strings.ToValidUTF8(region, "?")+")",
			db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, &bad) }), "data_region")
	}
}
