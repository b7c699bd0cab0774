package sqlstore

import (
	"context"
	"errors"

	"tutela/privacy"
)

// sealBatch is how many rows one transaction of SealPersonalData seals.
const sealBatch = 200

// SealPersonalData is the data step of migration 00018: it seals the plaintext users' personal
// data a database written before it still holds (users' e-mail and name, with a person key and
// blind index for each user; IP and user agent of sessions, sign-ins and security events;
// access-review copies) and empties the plaintext columns. It works in batches of sealBatch
// rows, one transaction each, picking only rows whose sealed column is still NULL, so it is
// idempotent and resumes where an interrupted run stopped. Start-up runs it after Migrate. On
// SQLite it ends with VACUUM when it changed anything, so the freed pages that held the
// plaintext leave the file (secure_delete is on for every connection too). It returns how many
// rows it sealed.
func (db *DB) SealPersonalData(ctx context.Context) (int, error) {
	if db.vault == nil {
		return 0, errNoVault
	}
	total := 0
	for _, step := range []func(context.Context, *Tx) (int, error){sealUsersStep, sealHistoryStep} {
		for {
			var n int
			err := db.Update(ctx, func(tx *Tx) (err error) {
				n, err = step(ctx, tx)
				return err
			})
			if err != nil {
				return total, err
			}
			total += n
			if n == 0 {
				break
			}
		}
	}
	if total > 0 && db.dialect == SQLite {
		if _, err := db.write.ExecContext(ctx, `VACUUM`); err != nil {
			return total, err
		}
	}
	return total, nil
}

func sealUsersStep(ctx context.Context, tx *Tx) (int, error) {
	rows, err := tx.query(ctx, `SELECT tenant_id, id, email, display_name FROM users WHERE email_sealed IS NULL
		ORDER BY id LIMIT `+itoa(sealBatch))
	if err != nil {
		return 0, err
	}
	type row struct{ tenant, id, email, name string }
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.tenant, &r.id, &r.email, &r.name); err != nil {
			rows.Close()
			return 0, err
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, r := range todo {
		users := tx.Users(r.tenant)
		if w, err := tx.PersonKeys(r.tenant).Get(ctx, r.id); err != nil {
			return 0, err
		} else if w == nil {
			if _, err := tx.newUserKey(ctx, r.tenant, r.id); err != nil {
				return 0, err
			}
		}
		pk, err := tx.userKey(ctx, r.tenant, r.id)
		if err != nil {
			return 0, err
		}
		email, err := pk.Seal(fieldUserEmail, []byte(r.email))
		if err != nil {
			return 0, err
		}
		name, err := pk.Seal(fieldUserName, []byte(r.name))
		if err != nil {
			return 0, err
		}
		digest, err := tx.emailDigest(ctx, r.tenant, r.email)
		if err != nil {
			return 0, err
		}
		if _, err := tx.exec(ctx, `UPDATE users SET email = '', email_norm = $1, display_name = '', email_digest = $2,
			email_sealed = $3, display_name_sealed = $4 WHERE tenant_id = $5 AND id = $6`,
			r.id, digest, email, name, users.tenantID, r.id); err != nil {
			return 0, err
		}
	}
	return len(todo), nil
}

// sealHistoryStep seals one batch of each history table and of access-review items.
func sealHistoryStep(ctx context.Context, tx *Tx) (int, error) {
	type table struct {
		name    string
		cols    []string // plaintext columns; each has a <col>_sealed twin
		userCol string
	}
	total := 0
	for _, tb := range []table{
		{"sessions", []string{"ip", "user_agent"}, "user_id"},
		{"login_history", []string{"ip", "user_agent"}, "user_id"},
		{"security_events", []string{"ip"}, "user_id"},
		{"access_review_items", []string{"user_email", "user_display_name"}, "user_id"},
	} {
		q := `SELECT id, COALESCE(CAST(tenant_id AS TEXT), ''), COALESCE(CAST(` + tb.userCol + ` AS TEXT), '')`
		for _, c := range tb.cols {
			q += `, ` + c
		}
		rows, err := tx.query(ctx, q+` FROM `+tb.name+` WHERE `+tb.cols[0]+`_sealed IS NULL ORDER BY id LIMIT `+itoa(sealBatch))
		if err != nil {
			return 0, err
		}
		type row struct {
			id, tenant, user string
			vals             []string
		}
		var todo []row
		for rows.Next() {
			r := row{vals: make([]string, len(tb.cols))}
			dest := []any{&r.id, &r.tenant, &r.user}
			for i := range r.vals {
				dest = append(dest, &r.vals[i])
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return 0, err
			}
			todo = append(todo, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		for _, r := range todo {
			set, args := "", []any{}
			for i, c := range tb.cols {
				ct, err := tx.sealFor(ctx, r.tenant, r.user, tb.name+"."+c, r.id, r.vals[i])
				if errors.Is(err, privacy.ErrErased) {
					// The user is gone (deleted before this migration, so they have no key): the
					// copy is dropped, and reads as erased.
					ct, err = []byte{}, nil
				}
				if err != nil {
					return 0, err
				}
				args = append(args, ct)
				set += c + ` = '', ` + c + `_sealed = $` + itoa(len(args)) + `, `
			}
			args = append(args, r.id)
			if _, err := tx.exec(ctx, `UPDATE `+tb.name+` SET `+set[:len(set)-2]+` WHERE id = $`+itoa(len(args)), args...); err != nil {
				return 0, err
			}
		}
		total += len(todo)
	}
	return total, nil
}
