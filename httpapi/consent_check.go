package httpapi

import (
	"context"
	"errors"
	"net/http"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
)

// checkProcessing is the consent gate of one processing of subjectID for purpose (a read, an
// export's creation or download, the minimized view, a detokenization): Consent.Check in the
// processing's own transaction, before any of the subject's keys opens, so a withdrawal
// committed on any node refuses it at once. A refusal is noted for auditRequests, whose
// authz.denied event names the subject and the purpose (never a value) and Check's reason.
func checkProcessing(ctx context.Context, r *http.Request, tx *sqlstore.Tx, tenantID, subjectID, purpose string) error {
	return noteRefusal(ctx, r, subjectID, purpose, tx.Consent(tenantID).Check(ctx, subjectID, purpose))
}

// noteRefusal notes err, Check's refusal of processing subjectID for purpose, for the request's
// authz.denied event, and returns it.
func noteRefusal(ctx context.Context, r *http.Request, subjectID, purpose string, err error) error {
	switch tutela.ErrorCode(err) {
	case tutela.ECONSENTREQUIRED, tutela.ERESTRICTED, tutela.EINVALID:
		noteDenial(ctx, denial{action: string(authz.Read), resource: authz.ResSubjects,
			targetTenant: r.PathValue("tenant"), targetID: subjectID, purpose: purpose,
			reason: tutela.ErrorCode(err) + ": " + tutela.ErrorMessage(err)})
	}
	return err
}

// consentHolderCheck is checkProcessing for the holders of detokenized values of subject-schema
// fields: a token of a subject's value is that subject's data, so re-identifying it is
// processing of them for the stated purpose (which must be declared). Fields outside the
// subject schema, values the tenant holds (no person) and values held for a user account
// rather than a subject are not under a subject's consent: they pass once the purpose is
// declared. An erased holder never gets here (its key is gone, its value does not open).
func consentHolderCheck(r *http.Request, tx *sqlstore.Tx, tenantID, purpose string, schema privacy.Schema) sqlstore.HolderCheck {
	return func(ctx context.Context, field, holder string) error {
		if _, ok := schema.Field(field); !ok {
			return nil
		}
		err := tx.Consent(tenantID).Check(ctx, holder, purpose)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND && !errors.Is(err, sqlstore.ErrSubjectErased) && tx.PartnerScope() == "" {
			return nil // a user account's value, not a subject's
		}
		return noteRefusal(ctx, r, holder, purpose, err)
	}
}

// processableSubjects keeps of ids those the tenant may process for purpose now. A search is
// processing of every subject it returns, so a subject whose consent is missing or withdrawn,
// who objected, or whose processing is restricted is left out, as if it did not match: the
// caller learns neither that it matched nor why it was left out. omitted counts them for the
// audit event.
func processableSubjects(ctx context.Context, tx *sqlstore.Tx, tenantID, purpose string, ids []string) (kept []string, omitted int, err error) {
	c := tx.Consent(tenantID)
	kept = make([]string, 0, len(ids))
	for _, id := range ids {
		switch err := c.Check(ctx, id, purpose); tutela.ErrorCode(err) {
		case "":
			kept = append(kept, id)
		case tutela.ECONSENTREQUIRED, tutela.ERESTRICTED, tutela.ENOTFOUND:
			omitted++
		default:
			return nil, 0, err
		}
	}
	return kept, omitted, nil
}
