package incidents

import "context"

// Store is what Open needs of a store transaction; *sqlstore.Tx is one. (An interface because
// the store imports this package for its types.)
type Store interface {
	CreateIncident(ctx context.Context, req OpenRequest) (*Incident, error)
}

// Open opens an incident inside the caller's transaction: the alerting engine (package
// monitor) calls it with the events that tripped a rule, the HTTP API with what a person typed.
// The incident, its timeline (one entry per linked event, at the event's time, scoped to the
// event's tenant) and its incident.opened audit event commit or roll back with tx.
//
//	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
//		_, err := incidents.Open(ctx, tx, incidents.OpenRequest{Title: "10 lockouts in 5 minutes",
//			Description: "…", Severity: incidents.High, Actor: "monitor",
//			Events: []incidents.EventRef{{Kind: incidents.SecurityEvent, ID: id}}})
//		return err
//	})
func Open(ctx context.Context, tx Store, req OpenRequest) (*Incident, error) {
	return tx.CreateIncident(ctx, req)
}
