package auth

import "github.com/wxlogin/wxlogin/internal/input"

// MaxCodeLen is the longest wx.login code accepted, in bytes.
const MaxCodeLen = 128

// ValidateCode rejects a code that cannot be a wx.login code, before any call to WeChat.
func ValidateCode(code string) error {
	switch {
	case code == "":
		return input.Errorf("code must not be empty: pass the code that wx.login returned.")
	case len(code) > MaxCodeLen:
		return input.Errorf("code is longer than 128 bytes: pass the code that wx.login returned, unchanged.")
	}
	for i := 0; i < len(code); i++ {
		if code[i] < 0x20 || code[i] > 0x7e {
			return input.Errorf("code must contain only printable ASCII characters: pass the code that wx.login returned, unchanged.")
		}
	}
	return nil
}
