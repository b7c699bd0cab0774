package httpapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela/ai"
	"tutela/ai/redact"
	"tutela/privacy"
)

// BenchmarkAIPipeline measures what the gateway adds to a call on the CPU, besides the
// authentication and store transactions every API call has: decoding the request, building the
// redactor for a subject's values, redacting every message, encoding what goes to the provider,
// then decoding the provider's answer, restoring its placeholders, flagging invented
// identifiers and encoding the caller's answer. It reports p50 and p99 in microseconds.
// BenchmarkAIGateway measures the whole round trip, store included.
func BenchmarkAIPipeline(b *testing.B) {
	subject := []redact.Field{
		{Name: "full_name", Type: privacy.FieldName, Value: "Layla Mansour"},
		{Name: "date_of_birth", Type: privacy.FieldDate, Value: "1990-04-02"},
		{Name: "address", Type: privacy.FieldAddress, Value: "12 Rainbow St, Jabal Amman, Amman, Jordan"},
		{Name: "phone", Type: privacy.FieldPhone, Value: "+962 79 123 4567"},
		{Name: "email", Type: privacy.FieldEmail, Value: "layla.mansour@example.org"},
		{Name: "national_id", Type: privacy.FieldNationalID, Value: "JO-99812"},
		{Name: "notes", Type: privacy.FieldText, Value: "Fled Homs in 2013 with two children"},
	}
	para := "Caseworker note: LAYLA MANSOUR (born 2 April 1990) called from 0791234567 about the rent; her e-mail is " +
		"layla.mansour@example.org and her ID jo 99812. Her brother omar.m@example.net sent money from GB82 WEST 1234 5698 7654 32. " +
		"The family lives in Jabal Amman; the children attend school and the landlord asked for two months in advance. "
	answer := `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant",` +
		`"content":"[S1_FULL_NAME] (born [S1_DATE_OF_BIRTH]) can be reached on [S1_PHONE] or [S1_EMAIL]. Her brother [EMAIL_1] should be told."},` +
		`"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}`
	for _, size := range []int{1 << 10, 8 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			msg, _ := json.Marshal(strings.Repeat(para, size/len(para)+1)[:size])
			body := []byte(`{"model":"chat-small","messages":[{"role":"system","content":"You help caseworkers."},{"role":"user","content":` +
				string(msg) + `}],"temperature":0.2}`)
			var lat []time.Duration
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				start := time.Now()
				var req chatRequest
				if err := json.Unmarshal(body, &req); err != nil {
					b.Fatal(err)
				}
				call := &aiCall{opts: aiOptions{Purpose: "ai_triage"}, model: &ai.Model{Name: "chat-small", Upstream: "m"},
					purpose: &ai.Purpose{}, readable: map[string]bool{"0/full_name": true, "0/phone": true, "0/email": true,
						"0/date_of_birth": true, "0/address": true}}
				call.red = redact.New([]redact.Subject{{ID: "s1", Fields: subject}}, redact.Options{Countries: []string{"JO"}})
				out, err := req.outbound(call, nil)
				if err != nil {
					b.Fatal(err)
				}
				if strings.Contains(string(out), "Mansour") {
					b.Fatal("a name left")
				}
				got, res := call.restoreCompletion([]byte(answer), aiResult{})
				if res.err != nil {
					b.Fatal(res.err)
				}
				if _, err := json.Marshal(got); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			at := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) }
			b.ReportMetric(at(0.50), "p50-µs")
			b.ReportMetric(at(0.99), "p99-µs")
		})
	}
}
