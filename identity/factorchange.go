package identity

import (
	"context"

	"tutela"
	"tutela/sqlstore"
)

// RecordFactorChange records a change to the user's second factors as a security event and
// queues the e-mail telling them (ASVS 5.0 6.3.7), in one transaction, right after the mfa
// service committed the change. The JSON API and the hosted pages both call it.
func (s *Service) RecordFactorChange(ctx context.Context, u *tutela.User, kind Change, ip string) error {
	notice, err := s.PrepareChange(u, kind) // sealed before the transaction
	if err != nil {
		return err
	}
	return s.db.Update(ctx, func(tx *sqlstore.Tx) error {
		err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: u.TenantID, UserID: u.ID, Kind: string(kind), IP: ip})
		if err != nil {
			return err
		}
		return notice.Enqueue(ctx, tx)
	})
}
