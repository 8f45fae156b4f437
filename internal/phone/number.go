package phone

import "strings"

// mainland is mainland China's country code: WeChat gives its numbers bare.
const mainland = "86"

// e164 writes a number as WeChat gives it in E.164, the one form wxlogin stores and
// shows: a plus sign, the country code and the number, such as +8613800000000. WeChat
// gives a mainland China number bare ("13800000000") and any other with its area code
// ("+85261234567"). countryCode is the one WeChat sent with the number, "" when none:
// a bare number is then mainland China's. ok is false for anything else.
func e164(number, countryCode string) (_ string, ok bool) {
	digits, international := strings.CutPrefix(number, "+")
	if !international {
		if countryCode == "" {
			countryCode = mainland
		}
		if len(countryCode) > 3 || !allDigits(countryCode) || countryCode[0] == '0' {
			return "", false
		}
		digits = countryCode + digits
	}
	// E.164 allows 15 digits; the shortest numbers in use have 7.
	if len(digits) < 7 || len(digits) > 15 || !allDigits(digits) || digits[0] == '0' {
		return "", false
	}
	return "+" + digits, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
