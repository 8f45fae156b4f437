package fakewechat

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxlogin/wxlogin/internal/wechatpush"
)

// Push is one message push WeChat sends about a user's consent, signed and encrypted
// (safe mode) as WeChat sends it.
type Push struct {
	// URL is the back end's push URL, such as http://127.0.0.1:8080/wechat/events.
	URL string
	// Token and AESKey are the console's message-push settings (the EncodingAESKey's
	// 43 characters).
	Token, AESKey string
	AppID, OpenID string
	// Event is user_authorization_revoke, user_authorization_cancellation or
	// user_info_modified.
	Event string
	// XML sends the XML form (WeChat sends the one the console asks for); else JSON.
	XML bool
	// At is the message's time and the push's timestamp; zero: now.
	At time.Time
}

// Request builds the push's HTTP request.
func (p Push) Request(ctx context.Context) (*http.Request, error) {
	key, err := wechatpush.ParseAESKey(p.AESKey)
	if err != nil {
		return nil, err
	}
	at := p.At
	if at.IsZero() {
		at = time.Now()
	}
	msg := wechatpush.Message{
		ToUserName: "gh_" + strings.TrimPrefix(p.AppID, "wx"), FromUserName: p.OpenID, CreateTime: at.Unix(),
		MsgType: "event", Event: p.Event, OpenID: p.OpenID, AppID: p.AppID,
	}
	if p.Event == wechatpush.EventRevoke {
		msg.RevokeInfo = "1" // what was withdrawn: the user's information
	}
	marshal := json.Marshal
	contentType := "application/json"
	if p.XML {
		marshal = func(v any) ([]byte, error) { return xml.Marshal(v) }
		contentType = "text/xml"
	}
	inner, err := marshal(msg)
	if err != nil {
		return nil, err
	}
	var random [16]byte
	rand.Read(random[:])
	encrypted := wechatpush.Encrypt(key, random, inner, p.AppID)
	body, err := marshal(wechatpush.Message{ToUserName: msg.ToUserName, Encrypt: encrypted})
	if err != nil {
		return nil, err
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	nonce := strconv.FormatInt(time.Now().UnixNano()%1_000_000_000, 10)
	q := url.Values{
		"signature": {wechatpush.Signature(p.Token, ts, nonce)}, "timestamp": {ts}, "nonce": {nonce},
		"openid": {p.OpenID}, "encrypt_type": {"aes"}, "msg_signature": {wechatpush.Signature(p.Token, ts, nonce, encrypted)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"?"+q.Encode(), strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	return req, nil
}

// Send pushes the message and returns the back end's answer: "success" when it took it.
func (p Push) Send(ctx context.Context) (int, string, error) {
	req, err := p.Request(ctx)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(b), fmt.Errorf("the back end answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, string(b), nil
}
