package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

func ledgerSigner(t *testing.T) (*audit.Signer, string) {
	t.Helper()
	skey, vkey, err := audit.GenerateKey("tutela/audit")
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// ledgerFixture is a store with a tenant whose persons have keys, some erased, and their
// ledger published into dir.
type ledgerFixture struct {
	db     *sqlstore.DB
	tenant string
	dir    string
	pub    *sqlstore.ErasurePublisher
	signer *audit.Signer
	vkey   string
}

func newLedgerFixture(t *testing.T, db *sqlstore.DB) *ledgerFixture {
	t.Helper()
	ctx := context.Background()
	tn := &tutela.Tenant{Slug: "ledger", Name: "Ledger", Region: "eu-west"}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
		t.Fatal(err)
	}
	s, vkey := ledgerSigner(t)
	dir := filepath.Join(t.TempDir(), "erasures")
	return &ledgerFixture{db: db, tenant: tn.ID, dir: dir, pub: sqlstore.NewErasurePublisher(db, dir, s, vkey), signer: s, vkey: vkey}
}

func (f *ledgerFixture) person(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	id := tutela.NewID()
	if err := f.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.PersonKeys(f.tenant).Create(ctx, id, sqlstore.PersonSubject, []byte("wrapped-"+id))
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *ledgerFixture) erase(t *testing.T, person string) {
	t.Helper()
	ctx := context.Background()
	if err := f.db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.ErasePerson(ctx, &sqlstore.Erasure{TenantID: f.tenant, PersonID: person, Kind: sqlstore.PersonSubject,
			Trigger: sqlstore.ErasureRequest, Reason: "asked", LegalBasis: "GDPR Art. 17"})
	}); err != nil {
		t.Fatal(err)
	}
}

func (f *ledgerFixture) publish(t *testing.T, full bool) int {
	t.Helper()
	n, err := f.pub.Publish(context.Background(), full)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// copyDir copies the ledger so each attack starts from the good one.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	return to
}

func TestErasureLedger_PublishesEveryErasureOnceAndVerifies(t *testing.T) {
	t.Parallel()
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		f := newLedgerFixture(t, db)
		if n := f.publish(t, true); n != 0 {
			t.Fatalf("empty table published %d", n)
		}
		got, err := sqlstore.ReadErasureLedger(f.dir, f.vkey)
		if err != nil || len(got) != 0 {
			t.Fatalf("empty ledger = %v, %v (a first round must sign a head for zero entries)", got, err)
		}
		a, b, c := f.person(t), f.person(t), f.person(t)
		f.erase(t, a)
		f.erase(t, b)
		if n := f.publish(t, false); n != 2 {
			t.Fatalf("incremental round published %d, want 2", n)
		}
		if n := f.publish(t, true); n != 0 {
			t.Fatalf("a second full round published %d again", n)
		}
		// A new publisher (a restarted node) reloads the file and appends only what is new.
		f.erase(t, c)
		f.pub = sqlstore.NewErasurePublisher(db, f.dir, f.signer, f.vkey)
		if n := f.publish(t, false); n != 1 {
			t.Fatalf("after restart published %d, want 1", n)
		}
		got, err = sqlstore.ReadErasureLedger(f.dir, f.vkey)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].PersonID != a || got[1].PersonID != b || got[2].PersonID != c {
			t.Fatalf("ledger = %+v", got)
		}
		raw, _ := os.ReadFile(filepath.Join(f.dir, "ledger.jsonl"))
		for _, secret := range []string{"asked", "GDPR", "wrapped-"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Fatalf("published ledger holds %q: only IDs and times belong there", secret)
			}
		}
	})
}

func TestErasureLedger_TamperingIsRefused(t *testing.T) {
	t.Parallel()
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		f := newLedgerFixture(t, db)
		f.publish(t, true) // head 0
		for range 3 {
			f.erase(t, f.person(t))
		}
		f.publish(t, false) // head 3
		if _, err := sqlstore.ReadErasureLedger(f.dir, f.vkey); err != nil {
			t.Fatal(err)
		}
		file := func(dir string) string { return filepath.Join(dir, "ledger.jsonl") }
		good, _ := os.ReadFile(file(f.dir))
		attacks := map[string]func(dir string){
			"truncated tail": func(dir string) {
				os.WriteFile(file(dir), good[:bytes.LastIndexByte(good[:len(good)-1], '\n')+1], 0o600)
			},
			"emptied": func(dir string) { os.WriteFile(file(dir), nil, 0o600) },
			"entry altered": func(dir string) {
				b := bytes.Clone(good)
				i := bytes.Index(b, []byte(`"person_id":"`)) + len(`"person_id":"`)
				b[i] ^= 0x01
				os.WriteFile(file(dir), b, 0o600)
			},
			"entry removed from the middle": func(dir string) {
				lines := bytes.SplitAfter(good, []byte("\n"))
				os.WriteFile(file(dir), bytes.Join([][]byte{lines[0], lines[2]}, nil), 0o600)
			},
			"head forged with another key": func(dir string) {
				other, _ := ledgerSigner(t)
				signed, _ := other.Sign(audit.Checkpoint{Origin: sqlstore.ErasureLedgerOrigin, Size: 1, Root: [32]byte{1}})
				os.WriteFile(filepath.Join(dir, "heads", "1.head"), signed, 0o600)
			},
			"head of the audit log passed off": func(dir string) {
				signed, _ := f.signer.Sign(audit.Checkpoint{Origin: "tutela/audit", Size: 3, Root: [32]byte{2}})
				os.WriteFile(filepath.Join(dir, "heads", "3.head"), signed, 0o600)
			},
		}
		for name, attack := range attacks {
			dir := copyDir(t, f.dir)
			attack(dir)
			if _, err := sqlstore.ReadErasureLedger(dir, f.vkey); !errors.Is(err, sqlstore.ErrLedgerTampered) {
				t.Errorf("%s: err = %v, want ErrLedgerTampered", name, err)
			}
		}
		// No directory, or one with no signed head, is no ledger at all.
		if _, err := sqlstore.ReadErasureLedger(filepath.Join(t.TempDir(), "absent"), f.vkey); !errors.Is(err, sqlstore.ErrLedgerMissing) {
			t.Errorf("missing dir: %v", err)
		}
		dir := copyDir(t, f.dir)
		os.RemoveAll(filepath.Join(dir, "heads"))
		if _, err := sqlstore.ReadErasureLedger(dir, f.vkey); !errors.Is(err, sqlstore.ErrLedgerMissing) {
			t.Errorf("no heads: %v", err)
		}
		// A crash mid-append leaves a partial line past the newest head: ignored, not an attack;
		// the next round truncates it and appends after it.
		dir = copyDir(t, f.dir)
		os.WriteFile(file(dir), append(bytes.Clone(good), []byte(`{"id":"0199`)...), 0o600)
		got, err := sqlstore.ReadErasureLedger(dir, f.vkey)
		if err != nil || len(got) != 3 {
			t.Fatalf("partial last line: %d entries, %v", len(got), err)
		}
	})
}

func TestErasureLedger_ApplyReshredsAndRefusesALedgerBehindTheBackup(t *testing.T) {
	t.Parallel()
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		f := newLedgerFixture(t, db)
		kept, early := f.person(t), f.person(t)
		f.erase(t, early)
		f.publish(t, true)
		before, err := sqlstore.ReadErasureLedger(f.dir, f.vkey)
		if err != nil {
			t.Fatal(err)
		}
		late := f.person(t)
		f.erase(t, late)
		f.publish(t, false)
		entries, err := sqlstore.ReadErasureLedger(f.dir, f.vkey)
		if err != nil || len(entries) != 2 {
			t.Fatalf("ledger: %v %v", entries, err)
		}
		// The ledger from before the late erasure lacks a row the database holds: refused.
		err = db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.ApplyErasureLedger(ctx, before); return err })
		if !errors.Is(err, sqlstore.ErrLedgerBehind) {
			t.Fatalf("ledger behind the database: %v", err)
		}
		// The full ledger over a database that already holds both erasures changes nothing.
		var n int
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { n, err = tx.ApplyErasureLedger(ctx, entries); return err }); err != nil || n != 0 {
			t.Fatalf("apply to an up-to-date database: %d, %v", n, err)
		}
		// An entry for a tenant the database does not hold (created after the backup) is skipped.
		stranger := entries[0]
		stranger.ID, stranger.TenantID = tutela.NewID(), tutela.NewID()
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			done, err := tx.ReapplyErasure(ctx, stranger)
			if done {
				t.Error("re-applied an erasure of an unknown tenant")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Re-applying to a person the database still holds shreds them and records the erasure
		// under its original ID.
		e := entries[1]
		e.ID, e.PersonID = tutela.NewID(), kept
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			done, err := tx.ReapplyErasure(ctx, e)
			if !done {
				t.Error("not re-applied")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.View(ctx, func(tx *sqlstore.Tx) error {
			w, err := tx.PersonKeys(f.tenant).Get(ctx, kept)
			if w != nil {
				t.Error("key survived the re-applied erasure")
			}
			list, err2 := tx.Erasures(ctx, f.tenant, "", 10)
			found := false
			for _, x := range list {
				found = found || (x.ID == e.ID && x.PersonID == kept)
			}
			if !found {
				t.Error("re-applied erasure not in the ledger table")
			}
			return errors.Join(err, err2)
		}); err != nil {
			t.Fatal(err)
		}
		// And a new key for that person is refused, as for any erased person.
		err = db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.PersonKeys(f.tenant).Create(ctx, kept, sqlstore.PersonSubject, []byte("again"))
		})
		if tutela.ErrorCode(err) != tutela.ECONFLICT {
			t.Fatalf("key for a re-erased person: %v", err)
		}
	})
}
