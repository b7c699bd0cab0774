package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"tutela/sqlstore"
	"tutela/vault"
)

// kekIdentity names the KEK this node uses, without any secret: the KEK URI for an HSM or KMS
// (pkcs11 by token and key label), and for local: the master key's fingerprint, since every
// local KEK has the same URI and differs only by the master key it is derived from.
func (m *Main) kekIdentity() (string, error) {
	spec, err := vault.ParseKEKURI(m.Config.Vault.KEKURI)
	if err != nil {
		return "", fmt.Errorf("vault.kek_uri: %w", err)
	}
	switch spec.Scheme {
	case vault.SchemeLocal:
		fp, err := masterKeyFingerprint(m.MasterKey)
		if err != nil {
			return "", err
		}
		return "local:" + fp, nil
	case vault.SchemePKCS11:
		return "pkcs11:token=" + spec.Token + ";object=" + spec.Object, nil
	}
	return spec.KeyURI, nil
}

// agreeRegionKEK records, at the first start of a node of this region, the KEK the region uses
// (residency.kek_uri.<region>), and refuses a node whose KEK differs from its region's, or is
// recorded for another region. Each region has its own database (the vault opens a database
// only with the one KEK that wraps all its keysets, vault.Check), so this catches a node started
// with the wrong region's KEK or pointed at the wrong region's database, before it serves; two
// regions sharing a KEK would let either region's operators, or a compromise of either KMS, open
// the other's data. KEKs are compared as text (kekIdentity): the same KMS key written two ways
// (an alias ARN and a key ARN) is not recognised as one. A node bound to no region records
// nothing.
func (m *Main) agreeRegionKEK(ctx context.Context) error {
	region := m.Config.Residency.Region
	if region == "" {
		return nil
	}
	kek, err := m.kekIdentity()
	if err != nil {
		return err
	}
	// Checked before and after recording: before, so a node on another region's KEK records
	// nothing; after, so two regions' first nodes starting at once on one KEK both stop.
	if err := m.kekOfOtherRegion(ctx, region, kek); err != nil {
		return err
	}
	recorded, err := m.DB.AgreeSetting(ctx, sqlstore.SettingRegionKEKPrefix+region, kek)
	if err != nil {
		return err
	}
	if recorded != kek {
		return fmt.Errorf("vault.kek_uri: this node of data region %q uses the KEK %s, but the region's nodes use %s "+
			"(recorded when its first node started; KEK URIs are compared as text): every node of a region needs the "+
			"region's KEK, which wraps the keysets of the region's database; set vault.kek_uri (and, for local:, the "+
			"master key) as on the region's other nodes", region, kek, recorded)
	}
	return m.kekOfOtherRegion(ctx, region, kek)
}

// kekOfOtherRegion refuses kek when another region records it.
func (m *Main) kekOfOtherRegion(ctx context.Context, region, kek string) error {
	all, err := m.DB.SettingsWithPrefix(ctx, sqlstore.SettingRegionKEKPrefix)
	if err != nil {
		return err
	}
	var others []string
	for name, v := range all {
		if r := strings.TrimPrefix(name, sqlstore.SettingRegionKEKPrefix); r != region && v == kek {
			others = append(others, r)
		}
	}
	if len(others) == 0 {
		return nil
	}
	slices.Sort(others)
	return fmt.Errorf("vault.kek_uri: the KEK %s is data region %q's (recorded when its first node started), and this "+
		"node serves region %q: each region has its own database and its own KEK, so that neither region's operators "+
		"nor a compromise of its KMS reach the other's data; point database.url at region %q's database and "+
		"vault.kek_uri at its KEK (or, if this node belongs to region %q, set residency.region to it)",
		kek, strings.Join(others, ", "), region, region, strings.Join(others, ", "))
}
