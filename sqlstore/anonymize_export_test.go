package sqlstore

// AnonymizeInventory exposes the anonymized copy's table inventory to the external tests.
func AnonymizeInventory() (written map[string]map[string]string, notCopied map[string]string) {
	return anonymizedTables, notAnonymizedTables
}
