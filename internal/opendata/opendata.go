// Package opendata decrypts the data a mini-program hands over from WeChat's open APIs
// (share tickets, run data, the legacy user profile) with the user's stored session
// key, and checks it is for this app and recent. When decryption fails it asks WeChat
// whether the stored key is still current, to tell the client "log in again" from
// "this data is bad"; those questions are rate-limited per user.
package opendata

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/ratelimit"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

// DefaultMaxAge is how old a watermark may be.
const DefaultMaxAge = time.Hour

// futureSkew tolerates clocks a little ahead of ours.
const futureSkew = 5 * time.Minute

// ErrSessionKeyStale means the data was made with a session key the server does not
// have: the client should log in again (wx.login, then login), then fetch the data again.
var ErrSessionKeyStale = errors.New("opendata: the session key has changed since this login")

// Each failed decryption asks WeChat whether the user's key is current (checksession):
// a user gets KeyCheckBurst such questions at once, then KeyChecksPerMinute, on each
// instance. Decryptions that succeed ask nothing and spend nothing.
const (
	KeyCheckBurst      = 5
	KeyChecksPerMinute = 5
)

// ErrTooManyChecks refuses a failed decryption over the user's limit of key checks,
// without asking WeChat; it comes with the *ratelimit.Error that says when to retry.
var ErrTooManyChecks = errors.New("opendata: too many failed decryptions for this user")

// Options are the Service's dependencies.
type Options struct {
	Apps    []wxapp.App
	Keyring *seal.Keyring
	MaxAge  time.Duration // default DefaultMaxAge
	Now     func() time.Time
	Logger  *slog.Logger
}

// Service decrypts open data.
type Service struct {
	apps    wxapp.Set
	keyring *seal.Keyring
	maxAge  time.Duration
	checks  *ratelimit.Limiter // key checks per user
	now     func() time.Time
	log     *slog.Logger
}

// New builds a Service.
func New(o Options) *Service {
	s := &Service{
		apps: wxapp.NewSet(o.Apps), keyring: o.Keyring, maxAge: o.MaxAge, now: o.Now, log: o.Logger,
		checks: ratelimit.New(KeyChecksPerMinute, time.Minute, KeyCheckBurst),
	}
	if s.maxAge <= 0 {
		s.maxAge = DefaultMaxAge
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Request is what the mini-program sent. RawData and Signature are optional; when sent,
// the signature is checked first.
type Request struct {
	EncryptedData, IV  string
	RawData, Signature *string
}

// Decrypt opens the identity's data and returns its JSON object, watermark included.
func (s *Service) Decrypt(ctx context.Context, ident *ent.Identity, req Request) (map[string]any, error) {
	ciphertext, err := base64.StdEncoding.DecodeString(req.EncryptedData)
	if err != nil || len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, input.Errorf("encryptedData must be the base64 text WeChat gave, a whole number of 16-byte blocks: pass it unchanged.")
	}
	iv, err := base64.StdEncoding.DecodeString(req.IV)
	if err != nil || len(iv) != aes.BlockSize {
		return nil, input.Errorf("iv must be base64 of 16 bytes: pass the iv WeChat gave with encryptedData, unchanged.")
	}
	if (req.RawData == nil) != (req.Signature == nil) {
		return nil, input.Errorf("rawData and signature go together: send both or neither.")
	}
	sessionKey, err := s.keyring.Open(ident.SessionKey, auth.IdentityBinding(ident.Appid, ident.Openid))
	if err != nil {
		// Sealed under a key this server no longer has: only a new login helps.
		return nil, ErrSessionKeyStale
	}
	key, err := base64.StdEncoding.DecodeString(string(sessionKey))
	if err != nil || len(key) != 16 {
		return nil, ErrSessionKeyStale
	}

	if req.RawData != nil && !signedBy(*req.RawData, *req.Signature, string(sessionKey)) {
		return nil, s.blame(ctx, ident, string(sessionKey), "signature does not match rawData")
	}
	plain, ok := decrypt(key, iv, ciphertext)
	var data map[string]any
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.UseNumber() // numbers keep their precision, such as step counts and timestamps
	if !ok || dec.Decode(&data) != nil {
		return nil, s.blame(ctx, ident, string(sessionKey), "encryptedData does not decrypt")
	}
	// The key evidently fits (the padding and a JSON value came out right): anything
	// after the value is not WeChat's.
	if _, err := dec.Token(); err != io.EOF {
		return nil, input.Errorf("the decrypted data has bytes after its JSON object: it is not data WeChat produced, pass encryptedData unchanged.")
	}
	if err := s.checkWatermark(data, ident.Appid); err != nil {
		return nil, err
	}
	return data, nil
}

// blame asks WeChat whether the stored key is still current: if not, the data was made
// with a newer key and the client must log in again; if it is, the data itself is bad.
// When WeChat cannot say, the error says that (WECHAT_UNAVAILABLE).
func (s *Service) blame(ctx context.Context, ident *ent.Identity, sessionKey, what string) error {
	app, err := s.apps.Get(ident.Appid)
	if err != nil {
		return err
	}
	if refused := s.checks.Take(ident.UserID.String(), s.now()); refused != nil {
		return fmt.Errorf("%w (%s): %w", ErrTooManyChecks, what, refused)
	}
	err = app.Tokens.Do(ctx, func(token string) error {
		return app.Client.CheckSessionKey(ctx, token, ident.Openid, sessionKey)
	})
	switch {
	case err == nil:
		return input.Errorf(what + " with this user's current session key: the data is corrupt, or not for this user.")
	case errors.Is(err, wechat.ErrSessionKeyStale):
		return ErrSessionKeyStale
	default:
		// WeChat could not say: neither "log in again" nor "bad data" would be honest.
		return fmt.Errorf("opendata: checking the session key after %s: %w", what, err)
	}
}

func (s *Service) checkWatermark(data map[string]any, appid string) error {
	wm, _ := data["watermark"].(map[string]any)
	if wm == nil {
		return input.Errorf("the decrypted data has no watermark: it is not data WeChat produced for a mini-program.")
	}
	if got, _ := wm["appid"].(string); got != appid {
		return input.Errorf("the data is for another mini-program (its watermark appid differs).")
	}
	num, _ := wm["timestamp"].(json.Number)
	ts, err := num.Int64()
	if err != nil {
		return input.Errorf("the data's watermark has no timestamp.")
	}
	at := time.Unix(ts, 0)
	now := s.now()
	if at.Before(now.Add(-s.maxAge)) {
		return input.Errorf(fmt.Sprintf("the data is older than %s: get it from WeChat again and send it at once.", s.maxAge))
	}
	if at.After(now.Add(futureSkew)) {
		return input.Errorf("the data's watermark is in the future.")
	}
	return nil
}

// decrypt is AES-128-CBC with strict PKCS#7 padding. It checks its own inputs, as the
// cipher package panics on an iv of the wrong size or a partial block.
func decrypt(key, iv, ciphertext []byte) ([]byte, bool) {
	if len(iv) != aes.BlockSize || len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, false
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, false
	}
	plain := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ciphertext)
	n := int(plain[len(plain)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, false
	}
	if !bytes.Equal(plain[len(plain)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, false
	}
	return plain[:len(plain)-n], true
}

// signedBy checks WeChat's rawData signature: hex sha1(rawData + session_key).
func signedBy(rawData, signature, sessionKey string) bool {
	sum := sha1.Sum([]byte(rawData + sessionKey))
	return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(signature)) == 1
}
