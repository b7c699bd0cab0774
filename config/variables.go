package config

import (
	"slices"
	"strings"
)

// SecretVariables lists the environment variables that carry a secret, each also read from the
// file named by NAME_FILE, sorted; a secret reached by the settings' rule under another name
// (TUTELA_VAULT_HSM_PIN) is listed too. The audit ship secrets, ShipSecretPrefix + NAME, are not:
// their names depend on audit.ship. Packaging checks use it (deploy/): a secret must never be a
// literal value in a manifest.
func SecretVariables() []string {
	var names []string
	for _, s := range secretVars {
		names = append(names, s.name)
		if rule := "TUTELA_" + strings.ToUpper(strings.ReplaceAll(s.fileKey, ".", "_")); rule != s.name {
			names = append(names, rule)
		}
	}
	slices.Sort(names)
	return names
}

// SettingVariables lists the environment variables of the non-secret settings, sorted.
func SettingVariables() []string {
	names := make([]string, 0, len(envVars))
	for _, v := range envVars {
		names = append(names, v.name)
	}
	slices.Sort(names)
	return names
}
