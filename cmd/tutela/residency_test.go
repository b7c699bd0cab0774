package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"tutela"
	"tutela/config"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// regionNode is a Main of the given region and KEK over db, enough for agreeRegionKEK.
func regionNode(t *testing.T, db *sqlstore.DB, region, kekURI, masterKey string) *Main {
	t.Helper()
	k, err := vault.ParseMasterKey(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Residency.Region, cfg.Vault.KEKURI = region, kekURI
	return &Main{Config: cfg, DB: db, MasterKey: k, Logger: newLogger(cfg, &syncBuffer{})}
}

const (
	keyA    = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
	keyB    = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	kmsEU   = "aws-kms://arn:aws:kms:eu-central-1:111122223333:key/eu"
	kmsUS   = "aws-kms://arn:aws:kms:us-east-1:111122223333:key/us"
	kmsEU2  = "aws-kms://arn:aws:kms:eu-central-1:111122223333:key/eu-other"
	hsmEU   = "pkcs11:token=eu;object=kek"
	hsmEUv2 = "pkcs11:object=kek;token=eu"
)

func TestAgreeRegionKEK_EachRegionItsOwnKEKOnBothStores(t *testing.T) {
	t.Parallel()
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		// A node bound to no region records nothing.
		if err := regionNode(t, db, "", kmsEU, keyA).agreeRegionKEK(ctx); err != nil {
			t.Fatal(err)
		}
		if all, _ := db.SettingsWithPrefix(ctx, sqlstore.SettingRegionKEKPrefix); len(all) != 0 {
			t.Fatalf("unbound node recorded %v", all)
		}
		if err := regionNode(t, db, "eu", kmsEU, keyA).agreeRegionKEK(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Setting(ctx, "residency.kek_uri.eu"); got != kmsEU {
			t.Fatalf("recorded %q", got)
		}
		// Another node of eu on the same KEK starts; on another KEK it is refused.
		if err := regionNode(t, db, "eu", kmsEU, keyB).agreeRegionKEK(ctx); err != nil {
			t.Fatalf("second eu node: %v", err)
		}
		err := regionNode(t, db, "eu", kmsEU2, keyA).agreeRegionKEK(ctx)
		if err == nil || !strings.Contains(err.Error(), `data region "eu" uses the KEK `+kmsEU2) ||
			!strings.Contains(err.Error(), "the region's nodes use "+kmsEU) {
			t.Fatalf("eu node on another KEK: %v", err)
		}
		// A us node on eu's KEK is refused, and records nothing.
		err = regionNode(t, db, "us", kmsEU, keyA).agreeRegionKEK(ctx)
		if err == nil || !strings.Contains(err.Error(), `is data region "eu"'s`) || !strings.Contains(err.Error(), `serves region "us"`) {
			t.Fatalf("us node on eu's KEK: %v", err)
		}
		if got, _ := db.Setting(ctx, "residency.kek_uri.us"); got != "" {
			t.Fatalf("a refused node recorded %q", got)
		}
		if err := regionNode(t, db, "us", kmsUS, keyA).agreeRegionKEK(ctx); err != nil {
			t.Fatalf("us node on its own KEK: %v", err)
		}
		// local: KEKs are told apart by the master key; one master key cannot serve two regions.
		if err := regionNode(t, db, "ch", "local:", keyA).agreeRegionKEK(ctx); err != nil {
			t.Fatal(err)
		}
		rec, _ := db.Setting(ctx, "residency.kek_uri.ch")
		if !strings.HasPrefix(rec, "local:hkdf-sha256:") || strings.Contains(rec, keyA[:16]) {
			t.Fatalf("local KEK recorded as %q", rec)
		}
		if err := regionNode(t, db, "jp", "", keyA).agreeRegionKEK(ctx); err == nil {
			t.Fatal("a second region on the same local master key started")
		}
		if err := regionNode(t, db, "ch", "local:", keyB).agreeRegionKEK(ctx); err == nil {
			t.Fatal("a ch node with another master key started")
		}
		// An HSM key is named by token and label, whatever the attribute order.
		if err := regionNode(t, db, "de", hsmEU, keyA).agreeRegionKEK(ctx); err != nil {
			t.Fatal(err)
		}
		if err := regionNode(t, db, "de", hsmEUv2, keyA).agreeRegionKEK(ctx); err != nil {
			t.Fatalf("the same HSM key written otherwise: %v", err)
		}
	})
}

// The whole serve command: a node whose KEK disagrees with its region's stops before serving.
func TestServe_RegionKEKDisagreementRefusesStart(t *testing.T) {
	t.Parallel()
	env := append(baseEnv(t), "TUTELA_RESIDENCY_REGION=eu")
	servedOnce(t, env)
	// The same data directory (one master key) as a node of another region: refused.
	us := append(append([]string{}, env[:len(env)-1]...), "TUTELA_RESIDENCY_REGION=us")
	mustRefuse(t, us, `is data region "eu"'s`, `serves region "us"`)
	// The region's record changed behind its back (another KEK recorded): refused too.
	db, err := sqlstore.Open(context.Background(), dataDirOf(env)+"/tutela.db", sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.ReplaceSetting(context.Background(), "residency.kek_uri.eu", kmsEU)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	mustRefuse(t, env, `data region "eu" uses the KEK local:`, "the region's nodes use "+kmsEU)
}

// On a node bound to a region, bootstrap creates the first tenant in that region (not the
// legacy "default", which the node would then refuse to serve); a region given must be the node's.
func TestBootstrap_RegionBoundNodeCreatesTenantInItsRegion(t *testing.T) {
	t.Parallel()
	env := append(baseEnv(t), "TUTELA_RESIDENCY_REGION=eu-west")
	code, _, errOut := runCmd(t, env, "bootstrap", "--tenant", "other", "--email", "ana@example.org", "--region", "us")
	if code != 1 || !strings.Contains(errOut, `this node serves data region "eu-west"`) {
		t.Fatalf("bootstrap into another region: %d %s", code, errOut)
	}
	code, out, errOut := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "ana@example.org")
	if code != 0 {
		t.Fatalf("bootstrap: %d %s %s", code, out, errOut)
	}
	db, err := sqlstore.Open(context.Background(), dataDirOf(env)+"/tutela.db", sqlstore.Options{Region: "eu-west"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(context.Background(), func(tx *sqlstore.Tx) error {
		tn, err := tx.TenantBySlug(context.Background(), "acme")
		if err == nil && tn.Region != "eu-west" {
			t.Errorf("region %q, want eu-west", tn.Region)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// One database holds the keysets of one KEK: the vault refuses a node of another region, on its
// own KEK, over a database whose keysets another region's KEK wraps (the supported topology is
// a database per region, docs/residency.md), and the refusal says so instead of only "wrong KEK".
func TestWrongKEK_RegionBoundNodeIsToldEachRegionHasItsOwnDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{})
	eu := &tutela.Tenant{Slug: "eu-t", Name: "EU", Region: "eu"}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, eu) }); err != nil {
		t.Fatal(err)
	}
	kekEU, err := vault.NewLocalKEK(tutela.NewSecretBytes(bytes.Repeat([]byte{1}, vault.MasterKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	kekUS, err := vault.NewLocalKEK(tutela.NewSecretBytes(bytes.Repeat([]byte{2}, vault.MasterKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	vEU, err := vault.New(ctx, kekEU, sqlstore.KeysetStore{DB: db}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vEU.Encrypt(ctx, eu.ID, vault.PurposePersonKeys, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	_, err = vault.New(ctx, kekUS, sqlstore.KeysetStore{DB: db}, vault.Options{})
	if !errors.Is(err, vault.ErrWrongKEK) {
		t.Fatalf("a second KEK over the database: %v, want ErrWrongKEK", err)
	}
	for _, uri := range []string{"local:", kmsUS} {
		msg := regionNode(t, db, "us", uri, keyB).wrongKEK(err)
		if !errors.Is(msg, vault.ErrWrongKEK) || !strings.Contains(msg.Error(), `each region has its own database`) ||
			!strings.Contains(msg.Error(), `database.url is region "us"'s database`) {
			t.Fatalf("%s: %v", uri, msg)
		}
		if msg := regionNode(t, db, "", uri, keyB).wrongKEK(err); strings.Contains(msg.Error(), "region") {
			t.Fatalf("an unbound node is told about regions: %v", msg)
		}
	}
}
