package notify_test

import (
	"bytes"
	"testing"

	"tutela/notify"
	"tutela/sqlstore"
	"tutela/webhooks"
)

// BenchmarkVerifySignature: what a receiver spends checking one 1 KiB delivery.
func BenchmarkVerifySignature(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	sig := notify.Sign(testSecret, "1772366400", body)
	b.ReportAllocs()
	for b.Loop() {
		if err := notify.VerifySignature(testSecret, "1772366400", body, sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueue: one event to two users and three subscribed endpoints, in a SQLite
// transaction of its own (what a change's transaction pays for its notifications, commit
// included).
func BenchmarkEnqueue(b *testing.B) {
	e := newEnv(b, sqlstore.SQLite, loopback)
	for _, p := range []string{"/a", "/b", "/c"} {
		e.webhook(b, p, webhooks.All)
	}
	ev := requested
	ev.TenantID = e.tenant
	ev.UserIDs = []string{e.user(b, "a@example.org").ID, e.user(b, "b@example.org").ID}
	b.ReportAllocs()
	for b.Loop() {
		if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error { return notify.Enqueue(ctx, tx, ev) }); err != nil {
			b.Fatal(err)
		}
	}
}
