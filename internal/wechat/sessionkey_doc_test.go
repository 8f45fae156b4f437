package wechat_test

import (
	"testing"

	"github.com/wxlogin/wxlogin/internal/wechat"
)

// TestDocumentedSignatureExample is the example in WeChat's documentation of the
// user-state signature: hmac_sha256('{"foo":"bar"}', 'o0q0otL8aEzpcZL/FT9WsQ=='). It
// comes out right only when the key is the session_key's base64 text, not its bytes.
func TestDocumentedSignatureExample(t *testing.T) {
	const want = "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
	if got := wechat.SignWithSessionKey(`{"foo":"bar"}`, "o0q0otL8aEzpcZL/FT9WsQ=="); got != want {
		t.Errorf("signature = %s, want the documented %s", got, want)
	}
	if wechat.SessionKeySignature("o0q0otL8aEzpcZL/FT9WsQ==") != wechat.SignWithSessionKey("", "o0q0otL8aEzpcZL/FT9WsQ==") {
		t.Error("the session-key check does not sign the empty string")
	}
}
