package sqlstore

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"tutela"
	"tutela/audit"
	"tutela/privacy"
	"tutela/vault"
)

// An audit event's source IP and user agent are a person's data, and the log is append-only:
// written in plaintext they could never be erased. They are sealed before the event is encoded,
// so the canonical encoding and the Merkle leaf hash the ciphertext; shredding the key later
// leaves every leaf, checkpoint and proof as it was, and `audit verify` passing.
//
// The person is the acting user (the principal of the request), or, for an anonymous call, the
// user the request identified with a successful outcome (tutela.SetAuditPerson: a sign-in, MFA
// completion, refresh or reset; for every event of that request, its api.request included) or
// the session a sign-in creates names (withAuditPerson): their person key seals the value,
// bound to the field and the event ID. Anything else (a service account, a failed attempt on
// a user, an unknown address, a user without a key) is sealed under the event tenant's
// personal_data keyset (the platform's for tenant ""), bound to table, column and event ID.
// The sealed form names which, so a reader knows what to open:
//
//	sealed:v1:u:<tenant>:<person>:<base64url ciphertext>   person key
//	sealed:v1:t:<base64url ciphertext>                     tenant keyset of the event's tenant
const (
	sealedAuditPrefix = "sealed:v1:"
	fieldAuditIP      = "audit_events.source_ip"
	fieldAuditUA      = "audit_events.user_agent"
)

// UnreadablePlaceholder stands for a sealed audit value that does not open although its key
// exists: the stored bytes were altered (audit verify reports the event as tampered).
const UnreadablePlaceholder = "[unreadable]"

// sealAuditMeta replaces e's source IP and user agent by their sealed forms. e is normalized
// (its user agent already shortened) and has its ID.
func (tx *Tx) sealAuditMeta(ctx context.Context, e *audit.Event) error {
	if e.SourceIP == "" && e.UserAgent == "" {
		return nil
	}
	tenantID, personID, pk, err := tx.auditPerson(ctx, e)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		field, column string
		v             *string
	}{{fieldAuditIP, "source_ip", &e.SourceIP}, {fieldAuditUA, "user_agent", &e.UserAgent}} {
		// Always sealed, even a value that looks sealed already: the user agent is the
		// client's to choose, and one starting "sealed:v1:" must not pass in plaintext.
		if *f.v == "" {
			continue
		}
		if pk != nil {
			ct, err := pk.Seal(f.field+"/"+e.ID, []byte(*f.v))
			if err != nil {
				return err
			}
			*f.v = sealedAuditPrefix + "u:" + tenantID + ":" + personID + ":" + base64.RawURLEncoding.EncodeToString(ct)
			continue
		}
		vctx, v, err := tx.vaultCtx(ctx)
		if err != nil {
			return err
		}
		ct, err := v.Encrypt(vctx, e.TenantID, vault.PurposePersonalData, []byte(*f.v), vault.AAD("audit_events", f.column, e.ID))
		if err != nil {
			return err
		}
		*f.v = sealedAuditPrefix + "t:" + base64.RawURLEncoding.EncodeToString(ct)
	}
	return nil
}

// auditPerson is the person whose key seals e's request data, with that key, or no key when
// the tenant's keyset must. Opening the key costs one vault decrypt per transaction (tx.keys).
func (tx *Tx) auditPerson(ctx context.Context, e *audit.Event) (tenantID, personID string, _ *privacy.PersonKey, _ error) {
	tenantID, personID = auditPersonIDs(ctx, e)
	if personID == "" {
		return "", "", nil, nil
	}
	pk, err := tx.userKey(ctx, tenantID, personID)
	if errors.Is(err, privacy.ErrErased) {
		return "", "", nil, nil // no key (yet, or any more): the tenant's keyset seals it
	}
	if err != nil {
		return "", "", nil, err
	}
	return tenantID, personID, pk, nil
}

// auditPersonIDs names the person whose key seals e's request data ("" for none: the tenant's
// keyset seals it).
func auditPersonIDs(ctx context.Context, e *audit.Event) (tenantID, personID string) {
	ap, _ := ctx.Value(auditPersonKey{}).(auditPersonOf)
	switch {
	case ap.personID != "":
		tenantID, personID = ap.tenantID, ap.personID
	case e.ActorType == audit.ActorUser:
		// The acting user's tenant is the principal's, which may differ from the event's (a
		// platform administrator acting on a tenant).
		m := tutela.RequestMetaFrom(ctx)
		if m == nil || m.Principal == nil || m.Principal.Kind != tutela.PrincipalUser || m.Principal.UserID != e.ActorID {
			return "", ""
		}
		tenantID, personID = m.Principal.TenantID, e.ActorID
	case e.ActorType == audit.ActorAnonymous:
		// Only a request that identified its user with a successful outcome names them
		// (tutela.SetAuditPerson: sign-in, MFA completion, refresh, reset). An anonymous event
		// that merely targets a user (a wrong password for their address, a refused code)
		// carries the caller's address, likely an attacker's: the tenant's keyset seals it, so
		// erasing the targeted user keeps the evidence of attacks on them.
		m := tutela.RequestMetaFrom(ctx)
		if m == nil || m.AuditPerson.UserID == "" {
			return "", ""
		}
		tenantID, personID = m.AuditPerson.TenantID, m.AuditPerson.UserID
	default:
		return "", ""
	}
	if !tutela.ValidID(tenantID) || !tutela.ValidID(personID) {
		return "", ""
	}
	return tenantID, personID
}

// prefetchAuditKeys opens, reading them in one statement, the person keys that sealing events
// will need and the transaction has not opened yet. A group-commit batch carries many users'
// records, and on PostgreSQL a lookup each was a round trip each inside the writer's
// transaction. SQLite has no round trip to save; a person without a key is left to the lookup
// that finds them erased.
func (tx *Tx) prefetchAuditKeys(ctx context.Context, sealCtx func(int) context.Context, events []audit.Event) error {
	if tx.db.dialect != Postgres || len(events) < 2 {
		return nil
	}
	var args []any
	ctxs := map[string]context.Context{} // the caller's values each key is opened with, as sealing would
	for i := range events {
		e := &events[i]
		if e.SourceIP == "" && e.UserAgent == "" {
			continue
		}
		ectx := ctx
		if sealCtx != nil {
			ectx = sealCtx(i)
		}
		tenantID, personID := auditPersonIDs(ectx, e)
		k := tenantID + "/" + personID
		if personID == "" || ctxs[k] != nil || tx.keys[k] != nil {
			continue
		}
		ctxs[k] = ectx
		args = append(args, tenantID, personID)
	}
	if len(args) < 4 {
		return nil // one lookup is one round trip either way
	}
	var q strings.Builder
	q.WriteString(`SELECT tenant_id, person_id, wrapped FROM person_keys WHERE (tenant_id, person_id) IN (`)
	for i := 0; i < len(args); i += 2 {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("($" + strconv.Itoa(i+1) + ", $" + strconv.Itoa(i+2) + ")")
	}
	q.WriteByte(')')
	rows, err := tx.query(ctx, q.String(), args...)
	if err != nil {
		return err
	}
	type found struct {
		tenantID, personID string
		wrapped            []byte
	}
	var keys []found
	for rows.Next() {
		var f found
		if err := rows.Scan(&f.tenantID, &f.personID, &f.wrapped); err != nil {
			rows.Close()
			return err
		}
		keys = append(keys, f)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range keys {
		ectx := ctxs[f.tenantID+"/"+f.personID]
		if ectx == nil {
			continue // IDs spelled otherwise than the database returns them: sealing looks the key up itself
		}
		if _, err := tx.openUserKey(ectx, f.tenantID, f.personID, f.wrapped); err != nil {
			return err
		}
	}
	return nil
}

type auditPersonKey struct{}

type auditPersonOf struct{ tenantID, personID string }

// withAuditPerson names, for the events recorded with ctx, the user whose request data they
// carry when neither actor nor target says so (a session created by a sign-in).
func withAuditPerson(ctx context.Context, tenantID, userID string) context.Context {
	return context.WithValue(ctx, auditPersonKey{}, auditPersonOf{tenantID, userID})
}

// openAuditMeta opens e's sealed source IP and user agent in place: ErasedPlaceholder when the
// person's key was shredded, UnreadablePlaceholder when the value does not open. A value
// recorded before sealing (no prefix) is left as it is.
func (tx *Tx) openAuditMeta(ctx context.Context, e *audit.Event) error {
	for _, f := range []struct {
		field, column string
		v             *string
	}{{fieldAuditIP, "source_ip", &e.SourceIP}, {fieldAuditUA, "user_agent", &e.UserAgent}} {
		rest, ok := strings.CutPrefix(*f.v, sealedAuditPrefix)
		if !ok {
			continue
		}
		pt, err := tx.openAuditValue(ctx, e, f.field, f.column, rest)
		switch {
		case errors.Is(err, privacy.ErrErased):
			*f.v = ErasedPlaceholder
		case errors.Is(err, privacy.ErrDecrypt), errors.Is(err, vault.ErrDecrypt), errors.Is(err, errSealedForm):
			*f.v = UnreadablePlaceholder
		case err != nil:
			return err
		default:
			*f.v = pt
		}
	}
	return nil
}

var errSealedForm = errors.New("sqlstore: malformed sealed audit value")

func (tx *Tx) openAuditValue(ctx context.Context, e *audit.Event, field, column, rest string) (string, error) {
	mode, rest, _ := strings.Cut(rest, ":")
	switch mode {
	case "u":
		parts := strings.SplitN(rest, ":", 3)
		if len(parts) != 3 || !tutela.ValidID(parts[0]) || !tutela.ValidID(parts[1]) {
			return "", errSealedForm
		}
		ct, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			return "", errSealedForm
		}
		pk, err := tx.userKey(ctx, parts[0], parts[1])
		if err != nil {
			return "", err
		}
		pt, err := pk.Open(field+"/"+e.ID, ct)
		return string(pt), err
	case "t":
		ct, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil {
			return "", errSealedForm
		}
		vctx, v, err := tx.vaultCtx(ctx)
		if err != nil {
			return "", err
		}
		pt, err := v.Decrypt(vctx, e.TenantID, vault.PurposePersonalData, ct, vault.AAD("audit_events", column, e.ID))
		return string(pt), err
	}
	return "", errSealedForm
}

// openAuditEvents opens the sealed source IP and user agent of recs in place (see
// openAuditMeta). The caller has already decided that its reader may see these events; the
// keys are read without tenant scoping, since an event's actor may belong to another tenant.
func (db *DB) openAuditEvents(ctx context.Context, recs []AuditRecord) error {
	sealed := false
	for i := range recs {
		if strings.HasPrefix(recs[i].Event.SourceIP, sealedAuditPrefix) || strings.HasPrefix(recs[i].Event.UserAgent, sealedAuditPrefix) {
			sealed = true
			break
		}
	}
	if !sealed {
		return nil
	}
	ctx = withoutPrincipal(ctx)
	return db.View(ctx, func(tx *Tx) error {
		for i := range recs {
			if err := tx.openAuditMeta(ctx, &recs[i].Event); err != nil {
				return err
			}
		}
		return nil
	})
}

// withoutPrincipal is ctx for store work the caller scoped itself (row-level security "*").
func withoutPrincipal(ctx context.Context) context.Context {
	m := tutela.RequestMetaFrom(ctx)
	if m == nil || m.Principal == nil {
		return ctx
	}
	c := *m
	c.Principal = nil
	return tutela.WithRequestMeta(ctx, &c)
}
