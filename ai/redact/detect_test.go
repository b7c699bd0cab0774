package redact

import (
	"strings"
	"testing"
)

var allCountries = []string{"US", "GB", "FR", "ES", "IT", "NL", "TR", "DE", "IN", "JO"}

// flagsOf returns "kind:text" for each detection in s.
func flagsOf(countries []string, s string) []string {
	var out []string
	for _, f := range New(nil, Options{Countries: countries}).Flags(s) {
		out = append(out, f.Kind+":"+f.Text)
	}
	return out
}

func TestDetectors_Positive(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ kind, text string }{
		{KindEmail, "ada.lovelace+x@mail.example.co.uk"},
		{KindEmail, "O'Hara_1@EXAMPLE.ORG"[2:]},
		{KindPhone, "+44 20 7946 0958"},
		{KindPhone, "+41(0)79 123 45 67"},
		{KindPhone, "0044 20 7946 0958"},
		{KindPhone, "020 7946 0958"},
		{KindPhone, "06 12 34 56 78"},
		{KindPhone, "079.123.45.67"},
		{KindPhone, "079-123-4567"},
		{KindPhone, "+12125550100"},
		{KindPhone, "+٩٦٢ ٧٩ ١٢٣ ٤٥٦٧"},
		{KindCard, "4111 1111 1111 1111"},
		{KindCard, "5555-5555-5555-4444"},
		{KindCard, "378282246310005"},
		{KindIBAN, "DE89 3704 0044 0532 0130 00"},
		{KindIBAN, "GB82WEST12345698765432"},
		{KindIBAN, "FR14 2004 1010 0505 0001 3M02 606"},
		{KindIBAN, "jo94cbjo0010000000000131000302"},
		{KindNationalID, "123-45-6789"},           // US SSN
		{KindNationalID, "AB 12 34 56 C"},         // GB NINO
		{KindNationalID, "AB123456C"},             // GB NINO
		{KindNationalID, "2 55 08 14 168 025 38"}, // FR NIR
		{KindNationalID, "185052A00608435"},       // FR NIR, Corsica
		{KindNationalID, "12345678Z"},             // ES DNI
		{KindNationalID, "12345678-Z"},            // ES DNI
		{KindNationalID, "X1234567L"},             // ES NIE
		{KindNationalID, "RSSMRA85T10A562S"},      // IT codice fiscale
		{KindNationalID, "111222333"},             // NL BSN
		{KindNationalID, "10000000146"},           // TR Kimlik
		{KindNationalID, "86095742719"},           // DE Steuer-ID
		{KindNationalID, "2345 6789 0127"},        // IN Aadhaar
		{KindNationalID, "9861012345"},            // JO national number
	} {
		for _, s := range []string{c.text, "see " + c.text + ".", "(" + c.text + ")", "x: " + c.text + ", y"} {
			got := flagsOf(allCountries, s)
			if len(got) != 1 || got[0] != c.kind+":"+c.text {
				t.Errorf("Flags(%q) = %q, want %s:%s", s, got, c.kind, c.text)
			}
		}
	}
}

func TestDetectors_Negative(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		// dates, times, years, amounts, versions, model names
		"2024-08-06", "06/08/2024", "06.08.2024 12:30", "01/02/2024 12", "2024-08-06T10:15:30Z",
		"2024-08-06 10:15:30.123456", "1990", "in 2023 and 2024", "$1,234,567.00", "€ 1 234,56",
		"0,000012345", "v1.2.3", "0.12.345.6789", "go1.26.0", "gpt-4o-2024-08-06",
		"claude-3-5-sonnet-20241022", "gemini-1.5-pro-002",
		// UUIDs, hashes, keys, addresses
		"123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"sha1 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", "0x1234567890abcdef", "192.168.100.200",
		"10.0.0.1", "file_0791234567.txt", "ISBN 978-3-16-148410-0", "1733535055", "order 0012345",
		// invalid checksums and formats
		"4111 1111 1111 1112", "4111-1111 1111-1111", "1234 5678 9012 3456", "DE89 3704 0044 0532 0130 01",
		"DE89 3704 0044 0532 013", "666-12-3456", "900-12-3456", "000-12-3456", "123-00-6789",
		"123456789", "BG123456C", "AB123456E", "DA123456C", "255081416802539", "12345678A",
		"RSSMRA85T10A562T", "111222334", "10000000147", "86095742718", "2345 6789 0128",
		"1861012345", "+0 12 34 56 78", "0012 34", "user@localhost", "a@b.c", "@example.com",
	} {
		if got := flagsOf(allCountries, s); len(got) != 0 {
			t.Errorf("Flags(%q) = %q, want none", s, got)
		}
	}
}

func TestDetectors_NationalIDsOnlyForTheTenantsCountries(t *testing.T) {
	t.Parallel()
	text := "123-45-6789 AB123456C 12345678Z RSSMRA85T10A562S 111222333 10000000146 86095742719 2345 6789 0127 9861012345 185052A00608435"
	if got := flagsOf(nil, text); len(got) != 0 {
		t.Errorf("no countries: %q", got)
	}
	if got := flagsOf([]string{"XX", "us"}, text); len(got) != 0 {
		t.Errorf("unknown or lower-case codes: %q", got)
	}
	if got := flagsOf(nil, "DE89 3704 0044 0532 0130 01 then 0791234567"); strings.Join(got, ",") != "phone:0791234567" {
		t.Errorf("after a broken IBAN: %q", got)
	}
	if got := flagsOf([]string{"TR"}, text); strings.Join(got, ",") != "national_id:10000000146" {
		t.Errorf("TR only: %q", got)
	}
}

func TestDetect_SameValueOtherFormatSamePlaceholder(t *testing.T) {
	t.Parallel()
	r := New(nil, Options{})
	got := r.Redact("+44 20 7946 0958 / +442079460958 / 0044 20 7946 0958; 4111 1111 1111 1111 = 4111-1111-1111-1111; A@X.ORG a@x.org")
	want := "[PHONE_1] / [PHONE_1] / [PHONE_1]; [CARD_1] = [CARD_1]; [EMAIL_1] [EMAIL_1]"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	// The placeholder keeps the text as first written.
	if p := r.Placeholders()[0]; p.Value != "+44 20 7946 0958" || p.Uses != 3 {
		t.Errorf("%+v", p)
	}
}

func TestChecksums(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		f    func(string) bool
		ok   []string
		bad  []string
	}{
		{"luhn", luhn, []string{"79927398713", "4111111111111111"}, []string{"79927398710", "4111111111111112"}},
		{"iban", validIBAN, []string{"gb82west12345698765432", "no9386011117947"}, []string{"gb82west12345698765433", "gb82west1234569876543", "xx"}},
		{"nino", validNINO, []string{"ab123456c", "ce123456d"}, []string{"gb123456a", "ao123456a", "ab12345c"}},
		{"nir", validNIR, []string{"255081416802538", "185052a00608435"}, []string{"255081416802537", "355081416802538"}},
		{"dni", validDNI, []string{"12345678z", "x1234567l", "y1234567x"}, []string{"12345678a", "x1234567z"}},
		{"cf", validCodiceFiscale, []string{"rssmra85t10a562s"}, []string{"rssmra85t10a562t", "rssmra85z10a562s"}},
		{"bsn", validBSN, []string{"111222333", "123456782"}, []string{"111222334", "000000000"}},
		{"tc", validTCKimlik, []string{"10000000146"}, []string{"10000000156", "00000000000"}},
		{"steuer", validSteuerID, []string{"86095742719", "47036892816"}, []string{"86095742710", "12345678903", "11111111116"}},
		{"aadhaar", validAadhaar, []string{"234567890127"}, []string{"234567890128", "123456789012"}},
	} {
		for _, s := range c.ok {
			if !c.f(s) {
				t.Errorf("%s(%q) = false", c.name, s)
			}
		}
		for _, s := range c.bad {
			if c.f(s) {
				t.Errorf("%s(%q) = true", c.name, s)
			}
		}
	}
}

func TestFlags_PlaceholdersAreNotIdentifiers(t *testing.T) {
	t.Parallel()
	r := New(nil, Options{Countries: []string{"GB"}})
	r.Redact("mail a@b.org")
	raw := "Dear [S1_FULL_NAME], write to [EMAIL_1] or [PHONE_2]; I made up bob@invented.example and +33 6 12 34 56 78 and AB123456C."
	var got []string
	for _, f := range r.Flags(raw) {
		got = append(got, f.Kind+":"+f.Text)
	}
	if strings.Join(got, ",") != "email:bob@invented.example,phone:+33 6 12 34 56 78,national_id:AB123456C" {
		t.Errorf("Flags = %q", got)
	}
	if f := r.Flags("Nothing here, [S1_PHONE] 2024-08-06."); f != nil {
		t.Errorf("Flags = %v", f)
	}
}

// Hostile input: invalid UTF-8 is kept byte for byte, and long runs of digits and separators
// or of "[" do not blow up.
func TestRedact_HostileInput(t *testing.T) {
	t.Parallel()
	r := New([]Subject{{Fields: []Field{{Name: "n", Type: "name", Value: "Ada Lovelace"}, {Name: "d", Type: "date", Value: "1990-03-15"}}}}, Options{Countries: allCountries})
	in := "\xff\xfeAda\xc3 x@y.org\x80 Lovelace\xe2\x82"
	if got := r.Redact(in); got != "\xff\xfe[S1_N]\xc3 [EMAIL_1]\x80 [S1_N]\xe2\x82" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("1 2-3.4/5(6)7 ", 20000) + strings.Repeat("[", 10000) + strings.Repeat("15 March ", 5000)
	out := r.Redact(long)
	if len(out) != len(long) {
		t.Errorf("changed %d bytes", len(out)-len(long))
	}
	s := r.Restorer(allowAll).Stream(nil)
	var b strings.Builder
	for i := 0; i < len(long); i += 5 {
		b.WriteString(s.Write(long[i:min(i+5, len(long))]))
	}
	b.WriteString(s.Flush())
	if b.String() != long {
		t.Error("stream changed the text")
	}
}
