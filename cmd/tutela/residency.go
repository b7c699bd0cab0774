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
// recorded for another region. A tenant's keysets are wrapped by its region's KEK: a node on
// another KEK could not open them, and two regions sharing one would let either region's
// operators, or a compromise of either KMS, open the other's data. A node bound to no region
// records nothing.
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
			"(recorded when its first node started): every node of a region needs the region's KEK, which wraps its "+
			"tenants' keysets; set vault.kek_uri (and, for local:, the master key) as on the region's other nodes",
			region, kek, recorded)
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
		"node serves region %q: no two regions share a KEK, so that neither region's operators nor a compromise of "+
		"its KMS reach the other's data; give region %q a KEK of its own (with local:, a region of its own needs a "+
		"database of its own, since all its nodes share one master key)", kek, strings.Join(others, ", "), region, region)
}
