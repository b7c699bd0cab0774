package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/sqlstore/storetest"
)

// orderN users and orderN subjects: a copy that keeps the creation order passes for a shuffled
// one with probability 1/30! (about 4e-33).
const orderN = 30

// rankName is the name of the user or subject created k-th: its length (which the synthetic
// value keeps) tells the rank back in the copy, where nothing else does.
func rankName(k int) string { return "Xname" + strings.Repeat("y", k) }

func nameRank(name string) int { return len(name) - len(rankName(0)) }

// Issue 14 (review): the copy is read in ID order, which is creation order (UUIDv7). Minting the
// copy's IDs (UUIDv7 again) and inserting rows in that order would make staging user #k
// production user #k, whose creation time and creator are in the production audit log. Every
// order the copy exposes (IDs, SQLite rowids of users, subjects, grants, person keys, values)
// must be neither the creation order nor its reverse, and must differ between two runs (a fixed
// permutation would be as linkable).
func TestAnonymize_CopyOrderIsNotCreationOrder(t *testing.T) {
	ctx := context.Background()
	src := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{})
	seal := privacy.NewSubjects(sqltest.AttachVault(t, src))
	schema := privacy.Schema{{Name: "full_name", Type: privacy.FieldName, Classification: authz.Yellow, Purposes: []string{"aid"},
		RetentionDays: 30, Mask: authz.MaskPartial}}
	tn := &tutela.Tenant{Slug: "order", Name: "Order", Region: "eu"}
	if err := src.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		if err := tx.SubjectSchema(tn.ID).Put(ctx, schema); err != nil {
			return err
		}
		for k := range orderN {
			u := &tutela.User{Email: fmt.Sprintf("person%02d.order@example.org", k), DisplayName: rankName(k)}
			if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
				return err
			}
			if err := tx.Users(tn.ID).Grant(ctx, u.ID, authz.RoleOperator, "", nil); err != nil {
				return err
			}
			if err := tx.Users(tn.ID).GrantPermission(ctx, u.ID, &sqlstore.UserPermission{Effect: authz.Allow,
				Permission: authz.Permission{Resource: authz.ResSubjects, Action: authz.Read, MaxClass: authz.Yellow}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for k := range orderN {
		sealed, err := seal.SealNew(ctx, tn.ID, schema, map[string]string{"full_name": rankName(k)})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(tn.ID).Create(ctx, sealed); return err }); err != nil {
			t.Fatal(err)
		}
	}

	export := func() map[string][]int {
		dst, dv := storetest.NewAnonymizeTarget(t, filepath.Join(t.TempDir(), "copy.db"))
		syn, err := privacy.NewSynthesizer()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.AnonymizeInto(ctx, dst, syn, tutela.NewID()); err != nil {
			t.Fatal(err)
		}
		c := storetest.ReadCopy(t, dst, dv)
		users, subjects := map[string]int{}, map[string]int{} // copy ID → creation rank in the source
		for _, u := range c.Users {
			users[u.ID] = nameRank(u.DisplayName)
		}
		for i, id := range c.SubjectIDs[tn.ID] {
			subjects[id] = nameRank(c.Subjects[tn.ID][i]["full_name"])
		}
		orders := map[string][]int{}
		for name, q := range map[string]struct {
			query string
			ranks map[string]int
		}{
			"users by ID":                    {`SELECT id FROM users ORDER BY id`, users},
			"users by rowid":                 {`SELECT id FROM users ORDER BY rowid`, users},
			"user_roles by rowid":            {`SELECT user_id FROM user_roles ORDER BY rowid`, users},
			"user_permissions by ID":         {`SELECT user_id FROM user_permissions ORDER BY id`, users},
			"user_permissions by rowid":      {`SELECT user_id FROM user_permissions ORDER BY rowid`, users},
			"users' person keys by rowid":    {`SELECT person_id FROM person_keys ORDER BY rowid`, users},
			"subjects by ID":                 {`SELECT id FROM subjects ORDER BY id`, subjects},
			"subjects by rowid":              {`SELECT id FROM subjects ORDER BY rowid`, subjects},
			"subject_values by rowid":        {`SELECT subject_id FROM subject_values ORDER BY rowid`, subjects},
			"subjects' person keys by rowid": {`SELECT person_id FROM person_keys ORDER BY rowid`, subjects},
		} {
			orders[name] = copyOrder(t, dst.SQL(), q.query, q.ranks)
		}
		return orders
	}
	first, second := export(), export()
	for name, ranks := range first {
		if len(ranks) != orderN || !slices.Equal(slices.Sorted(slices.Values(ranks)), rankSeq()) {
			t.Errorf("%s: ranks %v, want each of 0..%d once", name, ranks, orderN-1)
			continue
		}
		switch {
		case slices.IsSorted(ranks):
			t.Errorf("%s is the production creation order: staging row #k is production's #k", name)
		case slices.IsSortedFunc(ranks, func(a, b int) int { return b - a }):
			t.Errorf("%s is the production creation order reversed", name)
		case slices.Equal(ranks, second[name]):
			t.Errorf("%s is the same permutation of the creation order in two runs: %v", name, ranks)
		}
	}
}

func rankSeq() []int {
	s := make([]int, orderN)
	for i := range s {
		s[i] = i
	}
	return s
}

// copyOrder runs q (one ID per row) on the copy and returns the creation ranks of the IDs it
// knows, in the order q gives them.
func copyOrder(t *testing.T, db *sql.DB, q string, ranks map[string]int) []int {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if r, ok := ranks[id]; ok {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
