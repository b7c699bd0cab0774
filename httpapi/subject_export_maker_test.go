package httpapi_test

import (
	"bytes"
	"testing"

	"tutela"
	"tutela/sqlstore/sqltest"
)

// Review 2 (HIGH): an export holds its maker's view, so EXPORT alone does not download it. A
// YELLOW-cleared programme administrator holding EXPORT asks for the super-admin's export
// (RED values in clear) and gets 404, as for an export that does not exist, with no value in
// the answer; the super-admin cannot take the administrator's either.
func TestSubjectExports_OnlyTheMakerDownloads(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			id := se.create(t)
			exports := se.base + "/subjects/" + id + "/exports"
			read := se.read(t, id, "case_management", se.admin)
			if read["national_id"] == "AB-947 381" || read["notes"] != nil {
				t.Fatalf("precondition: the YELLOW admin's own read shows RED values: %v", read)
			}
			xr := se.export(t, id, `{"purpose":"case_management","ttl_seconds":3600}`, se.root)
			res, b := se.req(t, "GET", exports+"/"+xr.ID, "", "", se.admin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			for _, v := range append(subjectSecrets, "Ada") {
				if bytes.Contains(b, []byte(v)) {
					t.Fatalf("refused download leaked %q: %s", v, b)
				}
			}
			if got := se.download(t, id, xr.ID, se.root); got["national_id"] != "AB-947 381" || got["notes"] != "Lives near Marylebone" {
				t.Fatalf("the maker's own RED export = %v", got)
			}
			xa := se.export(t, id, `{"purpose":"case_management"}`, se.admin)
			res, b = se.req(t, "GET", exports+"/"+xa.ID, "", "", se.root)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			if got := se.download(t, id, xa.ID, se.admin); !sameValues(got, read) {
				t.Fatalf("the admin's own export %v differs from their read %v", got, read)
			}
			// The listing still shows every export's ID and maker to READ holders: an ID opens
			// nothing for anyone but its maker.
			res, b = se.req(t, "GET", exports, "", "", se.admin)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(xr.ID)) || !bytes.Contains(b, []byte(xa.ID)) {
				t.Fatalf("list exports: %d %s", res.StatusCode, b)
			}
			se.noValueLeaked(t)
		})
	}
}

// The download re-authorizes the read the export holds: READ on subjects at the highest
// classification it released in clear, for its purpose. A maker whose role lost RED clearance
// since cannot download their own RED export, and can again once it is restored.
func TestSubjectExports_DownloadNeedsTheClearanceOfWhatItHolds(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			id := se.create(t)
			exports := se.base + "/subjects/" + id + "/exports"
			perms := `{"resource":"subjects","action":"READ","max_classification":"RED"},{"resource":"subjects","action":"EXPORT","max_classification":"RED"}`
			exporter := se.userWithRole(t, "exporter", perms, "")
			x := se.export(t, id, `{"purpose":"case_management"}`, exporter)
			if got := se.download(t, id, x.ID, exporter); got["national_id"] != "AB-947 381" {
				t.Fatalf("RED export = %v", got)
			}
			setClearance := func(class string) {
				t.Helper()
				res, b := se.req(t, "PUT", se.base+"/roles/exporter", `{"name":"exporter","clearance":"`+class+`","permissions":[`+perms+`]}`, "", se.root)
				if res.StatusCode != 200 {
					t.Fatalf("set clearance %s: %d %s", class, res.StatusCode, b)
				}
			}
			setClearance("YELLOW")
			res, b := se.req(t, "GET", exports+"/"+x.ID, "", "", exporter)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if bytes.Contains(b, []byte("947 381")) { // the value, not its digits: a request ID may hold "947"
				t.Fatalf("refused download leaked a value: %s", b)
			}
			// Their read now masks the RED values; a new export holds what the read shows.
			y := se.export(t, id, `{"purpose":"case_management"}`, exporter)
			if got := se.download(t, id, y.ID, exporter); got["national_id"] == "AB-947 381" || got["notes"] != nil {
				t.Fatalf("YELLOW export = %v", got)
			}
			setClearance("RED")
			if got := se.download(t, id, x.ID, exporter); got["national_id"] != "AB-947 381" {
				t.Fatalf("RED export after clearance restored = %v", got)
			}
		})
	}
}
