// Package wechatpush receives WeChat's message pushes (消息推送) about users' consent:
// a user who withdrew their authorization of a mini-program
// (user_authorization_revoke), cancelled their WeChat account
// (user_authorization_cancellation), or changed what they had authorized
// (user_info_modified). WeChat tells developers to delete the personal data obtained
// through the mini-program in the first two cases, and to refresh or drop it in the
// third; this package does it as the push arrives.
//
// What it checks, in this order, before any database work: the signature over the
// token, timestamp and nonce, a timestamp within MaxSkew of now, the msg_signature over
// the encrypted body, the decryption (AES-256-CBC under the EncodingAESKey, 32-byte
// PKCS#7 blocks, the mini-program's appid at the end). A push that fails any check
// changes nothing and answers 401. Pushed twice, a message is harmless: a deletion
// finds nothing the second time, and an identity made after the event (the person
// authorized the mini-program again) is not the one the event was about.
package wechatpush

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The events acted on.
const (
	EventRevoke       = "user_authorization_revoke"
	EventCancellation = "user_authorization_cancellation"
	EventInfoModified = "user_info_modified"
)

// MaxSkew is how far a push's timestamp may be from now: WeChat retries within
// seconds, so anything older is a replay.
const MaxSkew = 5 * time.Minute

// Accounts is what a push changes: auth.Service.
type Accounts interface {
	// DeleteIdentity deletes an identity created before at, and the whole account
	// when it was the last; found is false when there is none such.
	DeleteIdentity(ctx context.Context, appid, openid string, at time.Time) (found, account bool, err error)
	ClearProfile(ctx context.Context, appid, openid string) (found bool, err error)
}

// Options configure the handler.
type Options struct {
	// Token is the token configured in the mini-program's admin console (消息推送).
	Token string
	// AESKey is the 32-byte key of the console's EncodingAESKey (see ParseAESKey).
	AESKey []byte
	// Apps are the appids served; Default is the one /wechat/events speaks for.
	Apps     []string
	Default  string
	Accounts Accounts
	Logger   *slog.Logger
	Now      func() time.Time
}

// ParseAESKey decodes an EncodingAESKey: 43 characters of base64 without its padding.
func ParseAESKey(s string) ([]byte, error) {
	if len(s) != 43 {
		return nil, errors.New("an EncodingAESKey is 43 characters")
	}
	key, err := base64.StdEncoding.DecodeString(s + "=")
	if err != nil || len(key) != 32 {
		return nil, errors.New("an EncodingAESKey is 43 characters of base64")
	}
	return key, nil
}

// Handler serves /wechat/events and /wechat/events/{appid}.
func Handler(o Options) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	apps := map[string]bool{}
	for _, a := range o.Apps {
		apps[a] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appid := r.PathValue("appid")
		if appid == "" {
			appid = o.Default
		}
		if !apps[appid] {
			http.Error(w, "not one of this server's mini-programs", http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		ts, nonce := q.Get("timestamp"), q.Get("nonce")
		if !validSignature(q.Get("signature"), o.Token, ts, nonce) {
			http.Error(w, "the signature does not verify", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet { // the URL check of the admin console
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, q.Get("echostr"))
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "WeChat pushes with POST", http.StatusMethodNotAllowed)
			return
		}
		at, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || o.Now().Sub(time.Unix(at, 0)).Abs() > MaxSkew {
			http.Error(w, "the timestamp is not within 5 minutes of now", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "the body could not be read", http.StatusBadRequest)
			return
		}
		msg, err := o.open(body, q, appid)
		if err != nil {
			o.Logger.WarnContext(r.Context(), "wechat push refused", "appid", appid, "error", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if err := o.act(r.Context(), appid, msg); err != nil {
			o.Logger.ErrorContext(r.Context(), "wechat push: the change failed; WeChat will push it again", "appid", appid, "event", msg.Event, "error", err)
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "success")
	})
}

// Message is a push's body, in JSON or XML: the envelope of safe mode (ToUserName and
// Encrypt) and the event inside it. Empty fields are left out when it is written.
type Message struct {
	XMLName      xml.Name `json:"-" xml:"xml"`
	ToUserName   string   `json:"ToUserName,omitempty" xml:"ToUserName,omitempty"`
	FromUserName string   `json:"FromUserName,omitempty" xml:"FromUserName,omitempty"`
	CreateTime   int64    `json:"CreateTime,omitempty" xml:"CreateTime,omitempty"`
	MsgType      string   `json:"MsgType,omitempty" xml:"MsgType,omitempty"`
	Event        string   `json:"Event,omitempty" xml:"Event,omitempty"`
	OpenID       string   `json:"OpenID,omitempty" xml:"OpenID,omitempty"`
	AppID        string   `json:"AppID,omitempty" xml:"AppID,omitempty"`
	RevokeInfo   string   `json:"RevokeInfo,omitempty" xml:"RevokeInfo,omitempty"`
	Encrypt      string   `json:"Encrypt,omitempty" xml:"Encrypt,omitempty"`
}

// open checks and decodes a push's body: its msg_signature and its encryption, then
// the message inside. Only safe mode is taken: in plaintext mode WeChat's signature
// covers the timestamp and nonce but not the message, so whoever saw one push's URL
// could send any event under it for minutes.
func (o Options) open(body []byte, q url.Values, appid string) (*Message, error) {
	outer, err := decode(body)
	if err != nil {
		return nil, err
	}
	if outer.Encrypt == "" {
		return nil, errors.New("a plaintext push: wxlogin takes safe-mode pushes only (set the console's 消息加密方式 to 安全模式)")
	}
	if !validSignature(q.Get("msg_signature"), o.Token, q.Get("timestamp"), q.Get("nonce"), outer.Encrypt) {
		return nil, errors.New("msg_signature does not verify")
	}
	plain, err := Decrypt(o.AESKey, outer.Encrypt, appid)
	if err != nil {
		return nil, err
	}
	inner, err := decode(plain)
	if err != nil {
		return nil, err
	}
	return checked(inner, appid)
}

func decode(b []byte) (*Message, error) {
	var m Message
	var err error
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '<' {
		err = xml.Unmarshal(t, &m)
	} else {
		err = json.Unmarshal(t, &m)
	}
	if err != nil {
		return nil, errors.New("the body is neither WeChat's JSON nor its XML")
	}
	return &m, nil
}

// checked is a message whose appid, when it names one, is the endpoint's.
func checked(m *Message, appid string) (*Message, error) {
	if m.AppID != "" && m.AppID != appid {
		return nil, fmt.Errorf("the message is for the mini-program %q", m.AppID)
	}
	if m.OpenID == "" {
		m.OpenID = m.FromUserName
	}
	return m, nil
}

// act does what the event asks. An event of no interest, or about a user wxlogin does
// not know, is taken and does nothing.
func (o Options) act(ctx context.Context, appid string, m *Message) error {
	log := o.Logger.With("appid", appid, "event", m.Event)
	switch m.Event {
	case EventRevoke, EventCancellation:
		if m.OpenID == "" {
			return nil
		}
		found, account, err := o.Accounts.DeleteIdentity(ctx, appid, m.OpenID, time.Unix(m.CreateTime, 0))
		if err == nil {
			log.InfoContext(ctx, "wechat push: identity deleted", "found", found, "whole_account", account)
		}
		return err
	case EventInfoModified:
		if m.OpenID == "" {
			return nil
		}
		found, err := o.Accounts.ClearProfile(ctx, appid, m.OpenID)
		if err == nil {
			log.InfoContext(ctx, "wechat push: profile cleared", "found", found)
		}
		return err
	}
	log.DebugContext(ctx, "wechat push: an event of no interest")
	return nil
}

// Signature is WeChat's: the hex SHA-1 of the parts, sorted and concatenated.
func Signature(parts ...string) string {
	sorted := append([]string(nil), parts...)
	sort.Strings(sorted)
	sum := sha1.Sum([]byte(strings.Join(sorted, "")))
	return hex.EncodeToString(sum[:])
}

func validSignature(got string, parts ...string) bool {
	want := Signature(parts...)
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) == 1
}

// blockSize is WeChat's PKCS#7 block: 32 bytes, not AES's 16.
const blockSize = 32

// Decrypt opens a safe-mode message: base64 AES-256-CBC with the key's first 16 bytes
// as iv; the plaintext is 16 random bytes, the message's length (4 bytes, big-endian),
// the message, and the appid, which must be appid.
func Decrypt(key []byte, encrypted, appid string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil || len(raw) == 0 || len(raw)%aes.BlockSize != 0 {
		return nil, errors.New("Encrypt is not base64 of whole AES blocks")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(raw))
	cipher.NewCBCDecrypter(block, key[:aes.BlockSize]).CryptBlocks(plain, raw)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > blockSize || pad > len(plain) {
		return nil, errors.New("the decrypted message is not padded")
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, errors.New("the decrypted message is not padded")
		}
	}
	plain = plain[:len(plain)-pad]
	if len(plain) < 20 {
		return nil, errors.New("the decrypted message is too short")
	}
	n := binary.BigEndian.Uint32(plain[16:20])
	if uint64(n) > uint64(len(plain)-20) {
		return nil, errors.New("the decrypted message's length is wrong")
	}
	msg, tail := plain[20:20+n], plain[20+n:]
	if string(tail) != appid {
		return nil, errors.New("the decrypted message is for another mini-program")
	}
	return msg, nil
}

// Encrypt seals a message as WeChat does in safe mode (the fake WeChat pushes with it).
func Encrypt(key []byte, random [16]byte, msg []byte, appid string) string {
	plain := append([]byte(nil), random[:]...)
	plain = binary.BigEndian.AppendUint32(plain, uint32(len(msg)))
	plain = append(plain, msg...)
	plain = append(plain, appid...)
	pad := blockSize - len(plain)%blockSize
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	block, _ := aes.NewCipher(key)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, key[:aes.BlockSize]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out)
}
