package compliance_test

import (
	"fmt"
	"testing"

	"tutela/audit"
	"tutela/compliance"
	"tutela/config"
)

// BenchmarkReportHTML builds, renders and signs a platform report over 50 tenants.
func BenchmarkReportHTML(b *testing.B) {
	signer, vkey, st := benchSetup(b)
	cfg := config.Default()
	b.ReportAllocs()
	var size int
	for b.Loop() {
		r := compliance.Build(cfg, compliance.Runtime{AuditVerifierKey: vkey}, st, true, now)
		page, err := compliance.RenderHTML(r)
		if err != nil {
			b.Fatal(err)
		}
		out, err := compliance.SignHTML(page, signer, now)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "bytes/report")
}

func benchSetup(b *testing.B) (*audit.Signer, string, compliance.State) {
	b.Helper()
	signer, vkey := newSigner(b)
	st := state()
	base := st.Tenants[0]
	st.Tenants = nil
	for i := range 50 {
		tn := base
		tn.Slug, tn.ID = fmt.Sprintf("tenant-%02d", i), fmt.Sprintf("t%02d", i)
		st.Tenants = append(st.Tenants, tn)
	}
	return signer, vkey, st
}
