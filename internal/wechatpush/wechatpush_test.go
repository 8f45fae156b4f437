package wechatpush

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

var testKey, _ = ParseAESKey("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")

// TestDecryptWhatWeChatEncrypts: a sealed message opens to itself for its appid only;
// WeChat's 32-byte padding is required.
func TestDecryptWhatWeChatEncrypts(t *testing.T) {
	for _, msg := range []string{"", "{}", strings.Repeat("x", 31), strings.Repeat("y", 32), `<xml><Event>user_info_modified</Event></xml>`} {
		sealed := Encrypt(testKey, [16]byte{1, 2, 3}, []byte(msg), "wxapp0000000001")
		got, err := Decrypt(testKey, sealed, "wxapp0000000001")
		if err != nil || string(got) != msg {
			t.Errorf("Decrypt(Encrypt(%q)) = %q, %v", msg, got, err)
		}
		if _, err := Decrypt(testKey, sealed, "wxapp0000000002"); err == nil {
			t.Errorf("%q opened for another mini-program", msg)
		}
	}
	raw, _ := base64.StdEncoding.DecodeString(Encrypt(testKey, [16]byte{}, []byte("abc"), "wx1"))
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(raw[:len(raw)-1]), base64.StdEncoding.EncodeToString(make([]byte, 32))} {
		if _, err := Decrypt(testKey, bad, "wx1"); err == nil {
			t.Errorf("Decrypt(%q) took it", bad)
		}
	}
}

// FuzzOpen: whatever the body and query, opening a push never panics, and what it
// takes came sealed under the key for the appid with a valid msg_signature.
func FuzzOpen(f *testing.F) {
	good := Encrypt(testKey, [16]byte{9}, []byte(`{"Event":"user_authorization_revoke","OpenID":"o1","AppID":"wx1"}`), "wx1")
	f.Add([]byte(`{"Encrypt":"`+good+`"}`), "1", "2", Signature("tok", "1", "2", good))
	f.Add([]byte(`<xml><Encrypt><![CDATA[`+good+`]]></Encrypt></xml>`), "1", "2", Signature("tok", "1", "2", good))
	f.Add([]byte(`{"Event":"user_authorization_revoke"}`), "1", "2", "")
	f.Add([]byte(`<xml><Encrypt>`), "", "", "")
	o := Options{Token: "tok", AESKey: testKey}
	f.Fuzz(func(t *testing.T, body []byte, ts, nonce, msgSig string) {
		q := url.Values{"timestamp": {ts}, "nonce": {nonce}, "msg_signature": {msgSig}}
		m, err := o.open(body, q, "wx1")
		if err != nil {
			return
		}
		outer, _ := decode(body)
		if !validSignature(msgSig, "tok", ts, nonce, outer.Encrypt) || m.AppID != "" && m.AppID != "wx1" {
			t.Fatalf("took %q with msg_signature %q", body, msgSig)
		}
		if !bytes.Contains(body, []byte(outer.Encrypt)) {
			t.Fatalf("took a message that is not in the body")
		}
	})
}
