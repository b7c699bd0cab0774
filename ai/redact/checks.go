package redact

import "strings"

// callingCodes2 are the two-digit country calling codes (ITU-T E.164 assignments); 1 and 7 are
// the one-digit ones and every other code has three digits (the codes are prefix-free). The same
// table as privacy's CountryCode generalizer.
var callingCodes2 = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58
		60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98`) {
		m[c] = true
	}
	return m
}()

// callingCode returns the country calling code that begins the international digits d.
func callingCode(d string) string {
	switch {
	case len(d) < 3:
		return ""
	case d[0] == '1' || d[0] == '7':
		return d[:1]
	case callingCodes2[d[:2]]:
		return d[:2]
	}
	return d[:3]
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// luhn validates a payment card number (ISO/IEC 7812-1 check digit).
func luhn(d string) bool {
	sum := 0
	for i := range len(d) {
		x := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	return sum%10 == 0
}

// ibanLengths is the length of an IBAN per country (SWIFT IBAN registry).
var ibanLengths = func() map[string]int {
	m := map[string]int{}
	for _, e := range strings.Fields(`ad24 ae23 al28 at20 az28 ba20 be16 bg22 bh22 br29 by28 ch21 cr22 cy28 cz24
		de22 dk18 do28 ee20 eg29 es24 fi18 fo18 fr27 gb22 ge22 gi23 gl18 gr27 gt28 hr21 hu28 ie22 il23
		iq23 is26 it27 jo30 kw30 kz20 lb28 lc32 li21 lt20 lu20 lv21 ly25 mc27 md24 me22 mk19 mr27 mt31
		mu30 nl18 no15 pk24 pl28 ps29 pt25 qa29 ro24 rs22 sa24 sc31 sd18 se24 si19 sk24 sm27 st25 sv28
		tl23 tn24 tr26 ua29 va22 vg24 xk20`) {
		m[e[:2]] = int(e[2]-'0')*10 + int(e[3]-'0')
	}
	return m
}()

// validIBAN checks an IBAN in lower case without spaces (ISO 13616: the country's length where
// the registry lists it, 15–34 otherwise, and mod-97 of the rearranged number equal to 1).
func validIBAN(s string) bool {
	if len(s) < 15 || len(s) > 34 || !isLower(s[0]) || !isLower(s[1]) || !isDigit(s[2]) || !isDigit(s[3]) {
		return false
	}
	if n, ok := ibanLengths[s[:2]]; ok && n != len(s) {
		return false
	}
	rem := 0
	for i := range len(s) {
		c := s[(i+4)%len(s)]
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isLower(c):
			rem = (rem*100 + int(c-'a') + 10) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// validSSN: a US Social Security number's area (not 000, 666 or 900–999), group (not 00) and
// serial (not 0000).
func validSSN(area, group, serial string) bool {
	return len(area) == 3 && len(group) == 2 && len(serial) == 4 && allDigits(area+group+serial) &&
		area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}

// validNINO: a UK National Insurance number, two prefix letters (D, F, I, Q, U, V never; O not
// second; BG, GB, KN, NK, NT, TN, ZZ not allocated), six digits, suffix A–D.
func validNINO(s string) bool {
	if len(s) != 9 || !isLower(s[0]) || !isLower(s[1]) || !allDigits(s[2:8]) || s[8] < 'a' || s[8] > 'd' {
		return false
	}
	if strings.IndexByte("dfiquv", s[0]) >= 0 || strings.IndexByte("dfiquvo", s[1]) >= 0 {
		return false
	}
	switch s[:2] {
	case "bg", "gb", "kn", "nk", "nt", "tn", "zz":
		return false
	}
	return true
}

// validNIR: a French social security number, 13 digits (Corsica's 2A/2B department counted as
// 19/18) and a key equal to 97 − (number mod 97).
func validNIR(s string) bool {
	if len(s) != 15 || (s[0] != '1' && s[0] != '2') {
		return false
	}
	body := s[:13]
	switch s[5:7] {
	case "2a":
		body = s[:5] + "19" + s[7:13]
	case "2b":
		body = s[:5] + "18" + s[7:13]
	}
	if !allDigits(body) || !allDigits(s[13:]) {
		return false
	}
	rem := 0
	for i := range len(body) {
		rem = (rem*10 + int(body[i]-'0')) % 97
	}
	key, _ := atoi(s[13:])
	return key == 97-rem
}

// validDNI: a Spanish DNI (8 digits) or NIE (X, Y or Z and 7 digits) and its check letter, the
// number mod 23 in "TRWAGMYFPDXBNJZSQVHLCKE".
func validDNI(s string) bool {
	if len(s) != 9 {
		return false
	}
	num := s[:8]
	switch s[0] {
	case 'x':
		num = "0" + s[1:8]
	case 'y':
		num = "1" + s[1:8]
	case 'z':
		num = "2" + s[1:8]
	}
	n, ok := atoi(num)
	return ok && "trwagmyfpdxbnjzsqvhlcke"[n%23] == s[8]
}

// validCodiceFiscale: an Italian tax code (6 letters, 2 digits, month letter, 2 digits, letter, 3
// digits, check letter; omocodia letters in digit places accepted) and its check character.
func validCodiceFiscale(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := range 15 {
		c := s[i]
		letter := i < 6 || i == 8 || i == 11
		if letter && !isLower(c) || !letter && !isDigit(c) && strings.IndexByte("lmnpqrstuv", c) < 0 {
			return false
		}
	}
	if strings.IndexByte("abcdehlmprst", s[8]) < 0 {
		return false
	}
	odd := [36]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23}
	sum := 0
	for i := range 15 {
		c := s[i]
		idx := int(c - '0')
		if isLower(c) {
			idx = int(c-'a') + 10
		}
		if i%2 == 0 { // 1-based odd position
			sum += odd[idx]
		} else if isLower(c) {
			sum += int(c - 'a')
		} else {
			sum += int(c - '0')
		}
	}
	return s[15] == byte('a'+sum%26)
}

// validBSN: a Dutch citizen service number, 9 digits passing the 11-proof.
func validBSN(s string) bool {
	if len(s) != 9 || !allDigits(s) {
		return false
	}
	sum := 0
	for i := range 8 {
		sum += (9 - i) * int(s[i]-'0')
	}
	sum -= int(s[8] - '0')
	return sum%11 == 0 && s != "000000000"
}

// validTCKimlik: a Turkish identity number, 11 digits not starting with 0, whose 10th digit is
// (7 × odd-place sum − even-place sum) mod 10 and 11th the sum of the first ten mod 10.
func validTCKimlik(s string) bool {
	if len(s) != 11 || !allDigits(s) || s[0] == '0' {
		return false
	}
	d := func(i int) int { return int(s[i] - '0') }
	odd := d(0) + d(2) + d(4) + d(6) + d(8)
	even := d(1) + d(3) + d(5) + d(7)
	if ((odd*7-even)%10+10)%10 != d(9) {
		return false
	}
	return (odd+even+d(9))%10 == d(10)
}

// validSteuerID: a German tax identification number, 11 digits not starting with 0, in the first
// ten exactly one digit twice or three times and no other repeated, and an ISO 7064 MOD 11,10
// check digit.
func validSteuerID(s string) bool {
	if len(s) != 11 || !allDigits(s) || s[0] == '0' {
		return false
	}
	var count [10]int
	for i := range 10 {
		count[s[i]-'0']++
	}
	repeated := 0
	for _, c := range count {
		switch {
		case c == 2 || c == 3:
			repeated++
		case c > 3:
			return false
		}
	}
	if repeated != 1 {
		return false
	}
	product := 10
	for i := range 10 {
		sum := (int(s[i]-'0') + product) % 10
		if sum == 0 {
			sum = 10
		}
		product = (sum * 2) % 11
	}
	check := 11 - product
	if check == 10 {
		check = 0
	}
	return check == int(s[10]-'0')
}

var verhoeffD = [10][10]int{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
	{3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
	{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
	{9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
}

var verhoeffP = [8][10]int{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
	{8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 8, 7, 0, 6}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
	{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
}

// validAadhaar: an Indian Aadhaar number, 12 digits not starting with 0 or 1, Verhoeff check
// digit.
func validAadhaar(s string) bool {
	if len(s) != 12 || !allDigits(s) || s[0] < '2' {
		return false
	}
	c := 0
	for i := range len(s) {
		c = verhoeffD[c][verhoeffP[i%8][s[len(s)-1-i]-'0']]
	}
	return c == 0
}

// validJONationalNumber: a Jordanian national number, 10 digits, starting 9 (born before 2000)
// or 20 (born since); the format has no check digit.
func validJONationalNumber(s string) bool {
	return len(s) == 10 && allDigits(s) && (s[0] == '9' || strings.HasPrefix(s, "20"))
}
