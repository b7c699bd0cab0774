package main

import (
	"context"
	"fmt"
	"strings"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
)

// The production marker (docs/residency.md, "Production marker"): a database marked production
// is served only by a configuration without test-only settings (config.TestOnly), so a test or
// development configuration cannot be pointed at real people's data by mistake.

type deploymentCmd struct {
	MarkProduction markProductionCmd `cmd:"" name:"mark-production" help:"Mark the database as production (once, audited, no undo here): serve then refuses test-only settings."`
}

// refuseTestOnly stops a command that opens the server on a database marked production while
// the configuration has test-only settings, naming all of them; on such a database it also logs
// the configured deviations from the defaults.
func (m *Main) refuseTestOnly(ctx context.Context) error {
	env, err := m.DB.Setting(ctx, sqlstore.SettingEnvironment)
	if err != nil {
		return fmt.Errorf("reading the deployment's environment marker: %w", err)
	}
	if env != sqlstore.EnvironmentProduction {
		return nil
	}
	if list := m.Config.TestOnly(); len(list) > 0 {
		return fmt.Errorf("this database is marked production (`tutela deployment mark-production`) and the "+
			"configuration has test-only settings, which a production deployment must not run with:\n  - %s",
			strings.Join(list, "\n  - "))
	}
	for _, d := range m.Config.Deviations() {
		m.Logger.Warn("production deployment deviates from a default protection: " + d)
	}
	return nil
}

type markProductionCmd struct{}

func (markProductionCmd) Run(e *env) error {
	m, err := open(e, true)
	if err != nil {
		return err
	}
	defer m.Close()
	if list := m.Config.TestOnly(); len(list) > 0 {
		return fmt.Errorf("the configuration has test-only settings, which a production database refuses to serve "+
			"with; change them first:\n  - %s", strings.Join(list, "\n  - "))
	}
	already := false
	err = m.DB.Update(e.ctx, func(tx *sqlstore.Tx) error {
		already = false
		cur, err := tx.Setting(e.ctx, sqlstore.SettingEnvironment)
		if err != nil {
			return err
		}
		switch cur {
		case sqlstore.EnvironmentProduction:
			already = true
			return nil
		case sqlstore.EnvironmentStaging:
			return tutela.Errorf(tutela.ECONFLICT, "this database is marked staging: it is an anonymized copy "+
				"(`tutela export --anonymize`) and can never be marked production; mark the production database itself")
		case "":
		default:
			return tutela.Errorf(tutela.ECONFLICT, "this database is marked %q, not production; it is not marked again", cur)
		}
		if err := tx.ReplaceSetting(e.ctx, sqlstore.SettingEnvironment, sqlstore.EnvironmentProduction); err != nil {
			return err
		}
		return tx.Audit(e.ctx, audit.Event{ActorType: audit.ActorSystem, Action: "deployment.mark_production",
			Outcome: audit.OutcomeSuccess, TargetType: "deployment", Reason: "tutela deployment mark-production",
			Details: map[string]any{"environment": sqlstore.EnvironmentProduction}})
	})
	if err != nil {
		return err
	}
	if already {
		fmt.Fprintln(e.stdout, "this database is already marked production")
		return nil
	}
	fmt.Fprintln(e.stdout, "marked this database production: every node now refuses to serve it with test-only settings")
	return nil
}
