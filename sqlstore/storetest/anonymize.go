package storetest

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// AnonymizeTests is the anonymized copy's part of the conformance suite (`tutela export
// --anonymize`): the source is the store under test, the copy a new SQLite file with its own
// vault.
var AnonymizeTests = []Test{
	{"AnonymizedCopyHoldsNoOriginalAndNoCredential", testAnonymizeCopy},
}

// NewAnonymizeTarget makes a new, migrated SQLite database at path with a vault under a fresh
// random master key (what `tutela export --anonymize` makes), and returns it with its vault.
func NewAnonymizeTarget(t *testing.T, path string) (*sqlstore.DB, *vault.Vault) {
	t.Helper()
	dst, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	if err := dst.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	v := newVault(t, dst, newKEK(t))
	dst.SetVault(v)
	return dst, v
}

// CopyContents is an anonymized copy opened with its own vault.
type CopyContents struct {
	Users    []*tutela.User
	Schemas  map[string]privacy.Schema      // by tenant ID
	Subjects map[string][]map[string]string // by tenant ID: each subject's values
	// SubjectIDs are the IDs of Subjects, in the same order.
	SubjectIDs map[string][]string
	IDs        []string // every user and subject ID
}

// ReadCopy opens every user and subject of the copy with the copy's vault v.
func ReadCopy(t testing.TB, dst *sqlstore.DB, v *vault.Vault) CopyContents {
	t.Helper()
	c := CopyContents{Schemas: map[string]privacy.Schema{}, Subjects: map[string][]map[string]string{}, SubjectIDs: map[string][]string{}}
	open := privacy.NewSubjects(v)
	err := dst.View(ctx, func(tx *sqlstore.Tx) error {
		tenants, err := tx.ListTenants(ctx, "", sqlstore.MaxPageSize)
		if err != nil {
			return err
		}
		for _, tn := range tenants {
			if !tn.Simulation() {
				// A staging copy must send no webhook nor reach any partner.
				t.Errorf("tenant %s of the copy is %q, not in simulation", tn.Slug, tn.Mode)
			}
			users, err := tx.Users(tn.ID).List(ctx, "", sqlstore.MaxPageSize)
			if err != nil {
				return err
			}
			c.Users = append(c.Users, users...)
			for _, u := range users {
				c.IDs = append(c.IDs, u.ID)
			}
			schema, err := tx.SubjectSchema(tn.ID).Get(ctx)
			if err != nil {
				return err
			}
			c.Schemas[tn.ID] = schema
			var names []string
			for _, f := range schema {
				names = append(names, f.Name)
			}
			subjects, err := tx.Subjects(tn.ID).List(ctx, "", sqlstore.MaxPageSize)
			if err != nil {
				return err
			}
			for _, s := range subjects {
				rec, err := tx.Subjects(tn.ID).Get(ctx, s.ID)
				if err != nil {
					return err
				}
				vals, err := open.Open(ctx, tn.ID, &rec.Stored, names)
				if err != nil {
					return err
				}
				c.Subjects[tn.ID] = append(c.Subjects[tn.ID], vals)
				c.SubjectIDs[tn.ID] = append(c.SubjectIDs[tn.ID], s.ID)
				c.IDs = append(c.IDs, s.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the copy: %v", err)
	}
	return c
}

// AssertNoOriginal fails when any original value appears in the copy: in any cell of any table
// (raw bytes, text and blobs alike), in the SQLite file and its WAL, or in any value opened with
// the copy's vault. Matching ignores case, and an original of at least
// privacy.SyntheticGuardLen characters is also looked for inside longer values. It also checks
// that every opened value is valid for its type.
func AssertNoOriginal(t testing.TB, dst *sqlstore.DB, path string, originals []string, c CopyContents) {
	t.Helper()
	type probe struct{ lower []byte }
	var probes []probe
	for _, o := range originals {
		probes = append(probes, probe{bytes.ToLower([]byte(o))})
	}
	check := func(where string, cell []byte) {
		t.Helper()
		low := bytes.ToLower(cell)
		for i, p := range probes {
			short := utf8.RuneCount(p.lower) < privacy.SyntheticGuardLen
			if (short && bytes.Equal(low, p.lower)) || (!short && bytes.Contains(low, p.lower)) {
				t.Errorf("%s holds original value #%d %q", where, i, originals[i])
			}
		}
	}
	db := dst.SQL()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, table := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			cells := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range cells {
				ptrs[i] = &cells[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range cells {
				var b []byte
				switch x := v.(type) {
				case []byte:
					b = x
				case string:
					b = []byte(x)
				case nil:
					continue
				default:
					b = fmt.Append(nil, x)
				}
				check(table+"."+cols[i], b)
			}
		}
		rows.Close()
	}
	for _, suffix := range []string{"", "-wal"} {
		if b, err := os.ReadFile(path + suffix); err == nil {
			check(filepath.Base(path+suffix), b)
		}
	}
	for _, u := range c.Users {
		check("user e-mail (opened)", []byte(u.Email))
		check("user display name (opened)", []byte(u.DisplayName))
		if !tutela.ValidEmail(u.Email) {
			t.Errorf("synthetic e-mail %q is not valid", u.Email)
		}
	}
	for tenantID, subjects := range c.Subjects {
		for _, vals := range subjects {
			for name, v := range vals {
				check("subject value "+name+" (opened)", []byte(v))
				f, _ := c.Schemas[tenantID].Field(name)
				if err := privacy.ValidateValue(name, f.Type, v); err != nil {
					t.Errorf("synthetic %s value %q: %v", f.Type, v, err)
				}
			}
		}
	}
}

func testAnonymizeCopy(t *testing.T, open Opener) {
	// The source lives in March 2026 on its own clock, the copy on the system clock: a time of
	// the copy equal to a source time was copied, not made.
	clock := newClock()
	start := clock.Now()
	src := open(t, sqlstore.Options{Clock: clock.Now})
	sv := newVaultAt(t, src, newKEK(t), clock.Now)
	src.SetVault(sv)
	seal := privacy.NewSubjects(sv)
	schema := testSchema()
	a, b := createTenant(t, src, "anon-a"), createTenant(t, src, "anon-b")
	for _, tn := range []*tutela.Tenant{a, b} {
		update(t, src, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(tn.ID).Put(ctx, schema) })
	}
	purpose := &privacy.Purpose{Name: "aid", Description: "Distributing aid", LawfulBasis: privacy.BasisConsent,
		NoticeID: "aid_notice", NoticeVersion: 3, ConsentMinVersion: 2}
	update(t, src, func(tx *sqlstore.Tx) error { _, err := tx.Consent(a.ID).PutPurpose(ctx, purpose); return err })
	update(t, src, func(tx *sqlstore.Tx) error {
		return tx.MinimizationProfiles(a.ID).Put(ctx, &privacy.Profile{Purpose: "aid", Fields: map[string]privacy.Rule{"phone": {Action: privacy.Pass}}})
	})
	role := &sqlstore.Role{Key: "caseworker", Name: "Caseworker", Clearance: authz.Yellow,
		Permissions: []authz.Permission{{Resource: authz.ResSubjects, Action: authz.Read, MaxClass: authz.Yellow}},
		FieldMasks:  map[string]authz.Mask{"subjects.phone": authz.MaskPartial}}
	update(t, src, func(tx *sqlstore.Tx) error { return tx.CreateRole(ctx, a.ID, role) })
	alice := &tutela.User{Email: "Alice.Quartermain@Example.org", DisplayName: "Alice Quartermain"}
	bob := &tutela.User{Email: "bob.vandersloot@example.org", DisplayName: "Bob Vandersloot"}
	carol := &tutela.User{Email: "carol.zylberstein@example.org", DisplayName: "Carol Zylberstein"}
	update(t, src, func(tx *sqlstore.Tx) error {
		for _, u := range []*tutela.User{alice, bob} {
			if err := tx.Users(a.ID).Create(ctx, u); err != nil {
				return err
			}
		}
		if err := tx.Users(b.ID).Create(ctx, carol); err != nil {
			return err
		}
		if err := tx.Users(a.ID).Grant(ctx, alice.ID, authz.RoleProgramAdmin, "", nil); err != nil {
			return err
		}
		// Expiring grants: 10 days and 5 hours left, and one that will have lapsed by the export.
		bobUntil := clock.Now().Add(10*24*time.Hour + 5*time.Hour)
		if err := tx.Users(a.ID).Grant(ctx, bob.ID, "caseworker", alice.ID, &bobUntil); err != nil {
			return err
		}
		carolUntil := clock.Now().Add(time.Hour)
		if err := tx.Users(b.ID).GrantPermission(ctx, carol.ID, &sqlstore.UserPermission{Effect: authz.Allow,
			Permission: authz.Permission{Resource: authz.ResSubjects, Action: authz.Read, MaxClass: authz.Yellow}, ExpiresAt: &carolUntil}); err != nil {
			return err
		}
		return tx.Users(a.ID).SetPasswordHash(ctx, alice.ID, "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
	})
	s1 := map[string]string{"full_name": "Zoltan Ferencvaros", "date_of_birth": "1961-07-23", "phone": "+36 30 987 6543",
		"national_id": "HU-88123456", "notes": "Lives with daughter Margit Ferencvaros, allergic to penicillin"}
	s2 := map[string]string{"full_name": "Ilona Ferencvaros", "phone": "+36309876543"} // the same phone, another form
	erased := map[string]string{"full_name": "Erased Personovich", "national_id": "ER-55555555"}
	for _, vals := range []map[string]string{s1, s2} {
		sealed, err := seal.SealNew(ctx, a.ID, schema, vals)
		if err != nil {
			t.Fatal(err)
		}
		update(t, src, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(a.ID).Create(ctx, sealed); return err })
	}
	sealed, err := seal.SealNew(ctx, a.ID, schema, erased)
	if err != nil {
		t.Fatal(err)
	}
	update(t, src, func(tx *sqlstore.Tx) error {
		if _, err := tx.Subjects(a.ID).Create(ctx, sealed); err != nil {
			return err
		}
		_, err := tx.Subjects(a.ID).Erase(ctx, sealed.SubjectID, "request of the person", "GDPR art. 17", sqlstore.ErasureRequest)
		return err
	})
	clock.Add(2 * time.Hour) // carol's grant lapses; bob's has 10 days and 3 hours left
	var originals, srcIDs []string
	for _, m := range []map[string]string{s1, s2, erased} {
		originals = append(originals, slices.Collect(maps.Values(m))...)
	}
	for _, u := range []*tutela.User{alice, bob, carol} {
		originals = append(originals, u.Email, u.DisplayName)
		srcIDs = append(srcIDs, u.ID)
	}

	path := filepath.Join(t.TempDir(), "staging.db")
	dst, dv := NewAnonymizeTarget(t, path)
	syn, err := privacy.NewSynthesizer()
	if err != nil {
		t.Fatal(err)
	}
	runID := tutela.NewID()
	counts, err := src.AnonymizeInto(ctx, dst, syn, runID)
	if err != nil {
		t.Fatal(err)
	}
	want := sqlstore.AnonymizeCounts{Tenants: 2, Roles: 1, Users: 3, Grants: 3, Subjects: 2, Values: 7}
	if counts != want {
		t.Fatalf("counts = %+v, want %+v", counts, want)
	}
	c := ReadCopy(t, dst, dv)
	AssertNoOriginal(t, dst, path, originals, c)
	// The source's times: what its clock made, and grant expiries up to 30 days on (the
	// system clock, the copy's, is long past that).
	AssertNoSourceTime(t, dst, AllTimes(t, src).Between(start, start.AddDate(0, 0, 30)))
	assertCoarseExpiries(t, dst)
	for _, id := range c.IDs {
		if slices.Contains(srcIDs, id) {
			t.Errorf("copy reuses production ID %s", id)
		}
	}
	// The same phone in two forms is one synthetic phone: joins and searches survive.
	subs := c.Subjects[a.ID]
	if len(subs) != 2 || privacy.Normalize(privacy.FieldPhone, subs[0]["phone"]) != privacy.Normalize(privacy.FieldPhone, subs[1]["phone"]) {
		t.Fatalf("subjects in the copy: %v", subs)
	}
	d, err := privacy.NewSubjects(dv).SearchDigests(ctx, a.ID, schema[2], subs[0]["phone"])
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	if err := dst.View(ctx, func(tx *sqlstore.Tx) (err error) {
		found, err = tx.Subjects(a.ID).Search(ctx, "phone", d, 10)
		return err
	}); err != nil || len(found) != 2 {
		t.Fatalf("searching the copy by its synthetic phone: %v, %v", found, err)
	}
	// Configuration kept; grants follow the new IDs; no credentials.
	if err := dst.View(ctx, func(tx *sqlstore.Tx) error {
		got, err := tx.SubjectSchema(b.ID).Get(ctx)
		if err != nil || len(got) != len(schema) {
			return fmt.Errorf("schema of %s: %v, %v", b.Slug, got, err)
		}
		for _, f := range schema {
			if g, ok := got.Field(f.Name); !ok || !g.Equal(f) {
				return fmt.Errorf("field %s in the copy: %+v", f.Name, g)
			}
		}
		p, err := tx.Consent(a.ID).Purpose(ctx, "aid")
		if err != nil || p.LawfulBasis != purpose.LawfulBasis || p.NoticeID != purpose.NoticeID ||
			p.NoticeVersion != 3 || p.ConsentMinVersion != 2 || p.Description != purpose.Description {
			return fmt.Errorf("register of purposes in the copy: %+v, %v", p, err)
		}
		r, err := tx.Role(ctx, a.ID, "caseworker")
		if err != nil || r.ID != role.ID || len(r.Permissions) != 1 || r.FieldMasks["subjects.phone"] != authz.MaskPartial {
			return fmt.Errorf("custom role: %+v, %v", r, err)
		}
		for _, u := range c.Users {
			hash, _, err := tx.Users(u.TenantID).PasswordHash(ctx, u.ID)
			if err != nil || hash != "" {
				return fmt.Errorf("user %s has a password hash in the copy (%v)", u.ID, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for table, n := range map[string]int{"user_roles": 2, "user_permissions": 1, "sessions": 0, "password_history": 0, "erasures": 0, "signing_keys": 0, "tokens": 0} {
		var got int
		if err := dst.SQL().QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&got); err != nil || got != n {
			t.Errorf("%s in the copy: %d rows (%v), want %d", table, got, err, n)
		}
	}
	// The marker and the two audit events.
	if env, _ := dst.Setting(ctx, sqlstore.SettingEnvironment); env != sqlstore.EnvironmentStaging {
		t.Errorf("environment = %q", env)
	}
	if at, _ := dst.Setting(ctx, sqlstore.SettingAnonymizedAt); at == "" {
		t.Error("no anonymized_at")
	} else if _, err := time.Parse(time.RFC3339, at); err != nil {
		t.Errorf("anonymized_at %q: %v", at, err)
	}
	// The copy's log starts fresh: the run's event, and the copy's own keysets being made.
	evs, _, err := dst.AuditEvents(ctx, sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var runs int
	for _, e := range evs {
		switch e.Event.Action {
		case "export.anonymized":
			runs++
			if e.Event.TargetID != runID || e.Event.TenantID != "" {
				t.Errorf("export.anonymized names %s/%s, want the run %s", e.Event.TenantID, e.Event.TargetID, runID)
			}
		case "key.keyset_create":
		default:
			t.Errorf("copy's audit log holds %s: the production log must not be copied", e.Event.Action)
		}
	}
	if runs != 1 {
		t.Errorf("copy's audit log: %d export.anonymized events, want 1", runs)
	}
	srcEvs, _, err := src.AuditEvents(ctx, sqlstore.AuditFilter{Action: "export.anonymize"})
	if err != nil || len(srcEvs) != 1 || srcEvs[0].Event.TargetID != runID {
		t.Fatalf("source's audit log: %d export.anonymize events (%v), want 1 naming the run", len(srcEvs), err)
	}
	details, _ := json.Marshal(srcEvs[0].Event.Details)
	if !strings.Contains(string(details), `"subjects":2`) {
		t.Errorf("export.anonymize details %s: want the counts", details)
	}
	for _, o := range originals {
		if strings.Contains(strings.ToLower(string(details)), strings.ToLower(o)) {
			t.Errorf("audit details hold an original value")
		}
	}
	// A second run is another mapping; a target that holds data is refused.
	dst2, dv2 := NewAnonymizeTarget(t, filepath.Join(t.TempDir(), "staging2.db"))
	syn2, _ := privacy.NewSynthesizer()
	if _, err := src.AnonymizeInto(ctx, dst2, syn2, tutela.NewID()); err != nil {
		t.Fatal(err)
	}
	c2 := ReadCopy(t, dst2, dv2)
	// Subjects come in random order: the phones are compared as sets.
	phones := func(subs []map[string]string) []string {
		var out []string
		for _, s := range subs {
			out = append(out, s["phone"])
		}
		slices.Sort(out)
		return out
	}
	if slices.Equal(phones(c2.Subjects[a.ID]), phones(subs)) {
		t.Error("two runs gave the same synthetic phone")
	}
	if _, err := src.AnonymizeInto(ctx, dst, syn, tutela.NewID()); err == nil {
		t.Error("a target holding data was accepted")
	}
}

// assertCoarseExpiries checks the copy of testAnonymizeCopy's expiring grants: bob's caseworker
// grant (10 days 3 hours left at the export) lapses 11 whole days after its copy's grant time,
// carol's lapsed permission lapses at its grant time, so it grants nothing in the copy.
func assertCoarseExpiries(t *testing.T, dst *sqlstore.DB) {
	t.Helper()
	var granted, expires sql.NullTime
	var bobID, bobTenant string
	if err := dst.SQL().QueryRowContext(ctx, `SELECT ur.user_id, ur.tenant_id, ur.granted_at, ur.expires_at FROM user_roles ur
		JOIN roles ro ON ro.id = ur.role_id WHERE ro.key = 'caseworker'`).Scan(&bobID, &bobTenant, &granted, &expires); err != nil {
		t.Fatal(err)
	}
	if !expires.Valid || expires.Time.Sub(granted.Time) != 11*24*time.Hour {
		t.Errorf("caseworker grant in the copy: granted %v, expires %v; want 11 whole days after the grant", granted.Time, expires)
	}
	var carolID, carolTenant string
	if err := dst.SQL().QueryRowContext(ctx, `SELECT user_id, tenant_id, granted_at, expires_at FROM user_permissions`).Scan(
		&carolID, &carolTenant, &granted, &expires); err != nil {
		t.Fatal(err)
	}
	if !expires.Valid || !expires.Time.Equal(granted.Time) {
		t.Errorf("lapsed permission grant in the copy: granted %v, expires %v; want expired at the grant", granted.Time, expires)
	}
	if err := dst.View(ctx, func(tx *sqlstore.Tx) error {
		roles, err := tx.Users(bobTenant).Roles(ctx, bobID)
		if err != nil {
			return err
		}
		if !slices.Contains(roles, "caseworker") {
			return fmt.Errorf("the unexpired caseworker grant is not in force in the copy: roles %v", roles)
		}
		p, err := tx.Policy(ctx, carolTenant, carolID)
		if err != nil {
			return err
		}
		if p.Holds(authz.Permission{Resource: authz.ResSubjects, Action: authz.Read, MaxClass: authz.Yellow}, tx.Now()) {
			return fmt.Errorf("a lapsed grant is in force in the copy: %+v", p.Grants)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
