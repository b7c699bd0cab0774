package sqlstore

import (
	"context"

	"tutela"
	"tutela/audit"
)

// Record writes the audit event of a change in the change's own transaction, so a committed
// change always has its event and a rolled-back one never does. The actor, source IP, user
// agent and request ID come from the request metadata in ctx; without any (CLI, background
// work) the actor is the system.
func (tx *Tx) Record(ctx context.Context, action, tenantID, targetType, targetID, outcome string, details map[string]any) error {
	return tx.Audit(ctx, EventFromContext(ctx, action, tenantID, targetType, targetID, outcome, details))
}

// EventFromContext builds an audit event attributed to the request in ctx.
func EventFromContext(ctx context.Context, action, tenantID, targetType, targetID, outcome string, details map[string]any) audit.Event {
	e := audit.Event{Action: action, TenantID: tenantID, TargetType: targetType, TargetID: targetID, Outcome: outcome,
		ActorType: audit.ActorSystem, Details: details}
	if outcome == "" {
		e.Outcome = audit.OutcomeSuccess
	}
	if m := tutela.RequestMetaFrom(ctx); m != nil {
		e.RequestID, e.SourceIP, e.UserAgent = m.RequestID, m.IP, m.UserAgent
		e.ActorType = audit.ActorAnonymous
		if p := m.Principal; p != nil {
			e.ActorType, e.ActorID = audit.ActorUser, p.UserID
			if p.Kind == tutela.PrincipalServiceAccount {
				e.ActorType = audit.ActorServiceAccount
			}
		}
	}
	return e
}
