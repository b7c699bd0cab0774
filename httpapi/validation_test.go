package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// ASVS 5.0 2.2.1 over HTTP: each input rule answers 400 invalid naming the field, on both
// dialects. On PostgreSQL a NUL byte reaching a text column would be a 500.

// jsonString quotes s as a JSON string, so control characters travel as \u escapes.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func wantInvalidField(t *testing.T, e *env, method, path, body string, auth any, field string) {
	t.Helper()
	res, b := e.req(t, method, path, body, "", auth)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != field {
		t.Fatalf("%s %s %s: field %q (%s), want %q", method, path, body, eb.Error.Field, eb.Error.Message, field)
	}
}

func wantStatus(t *testing.T, e *env, method, path, body string, auth any, status int) {
	t.Helper()
	if res, b := e.req(t, method, path, body, "", auth); res.StatusCode != status {
		t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, res.StatusCode, b, status)
	}
}

func TestUsers_LookalikeAndLiteralAddressesRefused(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, ana := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			admin := e.login(t, "acme", "admin@example.org", pw, "")
			users := "/v1/tenants/" + tn.ID + "/users"
			for _, email := range []string{
				"ad\u200bmin@example.org", "\u0430dmin@example.org", "x@[127.0.0.1]", `"admin"@example.org`,
				"admin\x00@example.org", strings.Repeat("a", 65) + "@example.org",
			} {
				wantInvalidField(t, e, "POST", users, `{"email":`+jsonString(email)+`}`, admin.AccessToken, "email")
				wantInvalidField(t, e, "PATCH", users+"/"+ana.ID, `{"email":`+jsonString(email)+`}`, admin.AccessToken, "email")
			}
			wantStatus(t, e, "POST", users, `{"email":"Jean-Luc.Picard+work@mail.starfleet.org"}`, admin.AccessToken, 201)
		})
	}
}

func TestNames_ControlAndFormatCharactersRefused(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, ana := e.seed(t, "acme", "ana@example.org", pw, "program_admin")
			e.seed(t, "root", "root@example.org", pw, "super_admin")
			admin := e.login(t, "acme", "ana@example.org", pw, "")
			root := e.login(t, "root", "root@example.org", pw, "")
			users, roles := "/v1/tenants/"+tn.ID+"/users", "/v1/tenants/"+tn.ID+"/roles"
			role := func(key, name string) string {
				return `{"key":"` + key + `","name":` + jsonString(name) + `,"clearance":"GREEN","permissions":[]}`
			}
			for _, name := range []string{"Ana\x00", "Ana\r\nLópez", "\x1b[31mAna", "Ana\u202eexe.txt", "Ad\u200bmin"} {
				wantInvalidField(t, e, "POST", users, `{"email":"new@example.org","display_name":`+jsonString(name)+`}`, admin.AccessToken, "display_name")
				wantInvalidField(t, e, "PATCH", users+"/"+ana.ID, `{"display_name":`+jsonString(name)+`}`, admin.AccessToken, "display_name")
				wantInvalidField(t, e, "POST", "/v1/tenants", `{"slug":"new","name":`+jsonString(name)+`,"data_region":"eu"}`, root.AccessToken, "name")
				wantInvalidField(t, e, "PATCH", "/v1/tenants/"+tn.ID, `{"name":`+jsonString(name)+`}`, root.AccessToken, "name")
				wantInvalidField(t, e, "POST", roles, role("new_role", name), admin.AccessToken, "name")
			}
			for i, name := range []string{"محمد عبد الله", "王秀英", "Оксана Коваленко", "José María Núñez-O'Brien"} {
				wantStatus(t, e, "POST", users, `{"email":"u`+string(rune('a'+i))+`@example.org","display_name":`+jsonString(name)+`}`, admin.AccessToken, 201)
				wantStatus(t, e, "POST", "/v1/tenants", `{"slug":"t`+string(rune('a'+i))+`","name":`+jsonString(name)+`,"data_region":"eu"}`, root.AccessToken, 201)
				wantStatus(t, e, "POST", roles, role("role_"+string(rune('a'+i)), name), admin.AccessToken, 201)
			}
		})
	}
}

func TestTenants_DataRegionIsRegionCode(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			e.seed(t, "root", "root@example.org", pw, "super_admin")
			root := e.login(t, "root", "root@example.org", pw, "")
			for _, region := range []string{"Europe (Frankfurt)", "EU", "eu_west", "eu-west-1-a", "eu\x00", ""} {
				wantInvalidField(t, e, "POST", "/v1/tenants", `{"slug":"acme","name":"Acme","data_region":`+jsonString(region)+`}`, root.AccessToken, "data_region")
			}
			res, b := e.req(t, "POST", "/v1/tenants", `{"slug":"acme","name":"Acme","data_region":"ch-geneva-1"}`, "", root.AccessToken)
			if res.StatusCode != 201 {
				t.Fatalf("create: %d %s", res.StatusCode, b)
			}
			var tn tutela.Tenant
			_ = json.Unmarshal(b, &tn)
			wantInvalidField(t, e, "PATCH", "/v1/tenants/"+tn.ID, `{"data_region":"eu west"}`, root.AccessToken, "data_region")
			wantStatus(t, e, "PATCH", "/v1/tenants/"+tn.ID, `{"data_region":"eu-west"}`, root.AccessToken, 200)
		})
	}
}

// The reviewer's request: {"slug":"t7",…,"SLUG":"t8"} created t8, because encoding/json keeps
// the last of two keys that match a field ignoring case.
func TestJSON_DuplicateAndCaseVariantKeysRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	root := e.login(t, "root", "root@example.org", pw, "")
	for body, field := range map[string]string{
		`{"slug":"t7","name":"T","data_region":"eu","SLUG":"t8"}`: "SLUG",
		`{"slug":"t7","name":"T","data_region":"eu","slug":"t8"}`: "slug",
		`{"Slug":"t8","name":"T","data_region":"eu"}`:             "Slug",
		`{"slug":"t8","name":"T","data_region":"eu","Name":"U"}`:  "Name",
	} {
		wantInvalidField(t, e, "POST", "/v1/tenants", body, root.AccessToken, field)
	}
	deep := `{"slug":"t8","name":"T","data_region":"eu","password_composition":` + strings.Repeat(`{"x":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`
	res, b := e.req(t, "POST", "/v1/tenants", deep, "", root.AccessToken)
	if eb := wantError(t, res, b, 400, tutela.EINVALID); !strings.Contains(eb.Error.Message, "deep") {
		t.Fatalf("deep nesting: %s", eb.Error.Message)
	}
	for _, slug := range []string{"t7", "t8"} {
		err := e.db.View(context.Background(), func(tx *sqlstore.Tx) error {
			_, err := tx.TenantBySlug(context.Background(), slug)
			return err
		})
		if tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("tenant %s exists after refused requests (%v)", slug, err)
		}
	}
	wantStatus(t, e, "POST", "/v1/tenants", `{"slug":"t7","name":"T","data_region":"eu"}`, root.AccessToken, 201)
}
