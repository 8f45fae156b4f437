// Fuzz targets for the open data a mini-program sends (encryptedData, iv, rawData,
// signature). Run one with:
//
//	go test -run '^$' -fuzz '^FuzzDecrypt$' -fuzztime 10m -parallel 1 ./internal/opendata
//
// The seeds (f.Add and testdata/fuzz) run with the ordinary tests.
package opendata

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

const (
	fuzzAppID  = "wx0123456789abcdef"
	fuzzOpenID = "oFuzz-0123456789abcdefghijkl"
	// fuzzSessionKey is a session_key as WeChat sends it: base64 of 16 bytes.
	fuzzSessionKey = "tiihtNczf5v6AKRyjwEUhQ=="
	fuzzNow        = 1700000000
)

// encrypt is what WeChat does: AES-128-CBC with PKCS#7 padding.
func encrypt(key, iv, plain []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(n)}, n)...)
	out := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, padded)
	return out
}

// sized returns b cut or zero-padded to n bytes.
func sized(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, b)
	return out
}

// FuzzDecrypt: decrypt never panics, whatever the key, iv and ciphertext; what it
// accepts was properly padded (encrypting it again gives the ciphertext back); and
// what WeChat encrypts decrypts to the plaintext.
func FuzzDecrypt(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 16)
	iv := bytes.Repeat([]byte{9}, 16)
	plain := []byte(`{"openGId":"GfakeGroup","watermark":{"timestamp":1700000000,"appid":"` + fuzzAppID + `"}}`)
	f.Add(key, iv, encrypt(key, iv, plain))
	f.Add(key, iv, encrypt(key, iv, nil))
	f.Add(key, iv, encrypt(key, iv, bytes.Repeat([]byte{16}, 16)))
	f.Add(key, iv, []byte(nil))
	f.Add(key, iv, make([]byte, 15))
	f.Add(key, iv, make([]byte, 17))
	f.Add(key, iv[:8], make([]byte, 16))
	f.Add(key[:5], iv, make([]byte, 16))
	f.Add(bytes.Repeat([]byte{1}, 32), iv, make([]byte, 32))

	f.Fuzz(func(t *testing.T, key, iv, data []byte) {
		if out, ok := decrypt(key, iv, data); ok {
			if len(key) != 16 && len(key) != 24 && len(key) != 32 {
				t.Fatalf("decrypt accepted a %d-byte key", len(key))
			}
			if again := encrypt(key, iv, out); !bytes.Equal(again, data) {
				t.Fatalf("decrypt accepted %x as %q, which does not encrypt back to it", data, out)
			}
		}

		// data as a plaintext, under a valid key and iv made of the fuzzed ones.
		k, v := sized(key, 16), sized(iv, aes.BlockSize)
		out, ok := decrypt(k, v, encrypt(k, v, data))
		if !ok || !bytes.Equal(out, data) {
			t.Fatalf("%q encrypted as WeChat does decrypts to %q, %v", data, out, ok)
		}
	})
}

// stubApp answers CheckSessionKey with err, without a network, for the mini-program
// appid (fuzzAppID when empty).
type stubApp struct {
	err   error
	appid string
}

func (a stubApp) AppID() string {
	if a.appid == "" {
		return fuzzAppID
	}
	return a.appid
}
func (stubApp) Code2Session(context.Context, string) (wechat.Session, error) {
	return wechat.Session{}, errors.New("not used")
}
func (stubApp) GetPhoneNumber(context.Context, string, string, string) (wechat.PhoneInfo, error) {
	return wechat.PhoneInfo{}, errors.New("not used")
}
func (stubApp) GetWxaCodeUnlimit(context.Context, string, wechat.WxaCodeRequest) ([]byte, string, error) {
	return nil, "", errors.New("not used")
}
func (a stubApp) CheckSessionKey(context.Context, string, string, string) error { return a.err }
func (stubApp) Do(_ context.Context, fn func(token string) error) error         { return fn("access-token") }

// Modes of FuzzServiceDecrypt, bits of its mode argument.
const (
	modeRawInput   = 1 << iota // send encryptedData and iv as fuzzed, not the plaintext encrypted
	modeSigned                 // send rawData and a signature
	modeGoodSig                // the signature is the right one for rawData
	modeKeyStale               // WeChat says the stored key is not current
	modeKeyUnknown             // the stored key was sealed under a key this server lacks
	modeWeChatDown             // WeChat cannot be asked
)

// FuzzServiceDecrypt drives the whole decryptOpenData path without a network: never a
// panic; a result is the plaintext's JSON object, with a watermark for this app from the
// last hour, that marshals as JSON again; every refusal is an input error (BAD_USER_INPUT),
// ErrSessionKeyStale or WeChat's unavailability, and never shows the session key.
func FuzzServiceDecrypt(f *testing.F) {
	good := func(extra string) string {
		return `{` + extra + `"watermark":{"timestamp":1699999000,"appid":"` + fuzzAppID + `"}}`
	}
	for _, c := range []struct {
		plain, encData, iv, raw, sig string
		mode                         uint8
	}{
		{good(`"openGId":"GfakeGroup",`), "", "", "", "", 0},
		{good(`"stepInfoList":[{"timestamp":1699920000,"step":12345}],`), "", "", "", "", 0},
		{good(`"nickName":"Band","gender":1,`), "", "", `{"nickName":"Band","gender":1}`, "", modeSigned | modeGoodSig},
		{good(`"nickName":"Band",`), "", "", `{"nickName":"Band"}`, "0000", modeSigned},
		{good(""), "", "", "", "", modeKeyUnknown},
		{`{"watermark":{"timestamp":1699999000,"appid":"wxother"}}`, "", "", "", "", 0},
		{`{"watermark":{"timestamp":1600000000,"appid":"` + fuzzAppID + `"}}`, "", "", "", "", 0},
		{`{"watermark":{"timestamp":1800000000,"appid":"` + fuzzAppID + `"}}`, "", "", "", "", 0},
		{`{"watermark":{"timestamp":1e9,"appid":"` + fuzzAppID + `"}}`, "", "", "", "", 0},
		{`{"watermark":{"timestamp":99999999999999999999,"appid":"` + fuzzAppID + `"}}`, "", "", "", "", 0},
		{`{"watermark":{"timestamp":"1699999000","appid":"` + fuzzAppID + `"}}`, "", "", "", "", 0},
		{`{"watermark":null}`, "", "", "", "", 0},
		{`null`, "", "", "", "", 0},
		{`[1,2]`, "", "", "", "", 0},
		{good("") + ` trailing`, "", "", "", "", 0},
		{"not json", "", "", "", "", modeKeyStale},
		{"not json", "", "", "", "", modeWeChatDown},
		{"", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAA==", "", "", modeRawInput},
		{"", "", "", "", "", modeRawInput},
		{"", "AAAA", "AAAAAAAAAAAAAAAAAAAAAA==", "", "", modeRawInput},
		{"", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAA", "", "", modeRawInput},
		{"", "!!!", "AAAAAAAAAAAAAAAAAAAAAA==", "", "", modeRawInput},
	} {
		f.Add([]byte(c.plain), c.encData, c.iv, c.raw, c.sig, c.mode)
	}
	ring, err := seal.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	otherRing, err := seal.NewKeyring(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		f.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(fuzzSessionKey)
	services := map[error]*Service{}
	for _, answer := range []error{nil, wechat.ErrSessionKeyStale, wechat.ErrUnavailable} {
		app := stubApp{err: answer}
		services[answer] = New(Options{
			Apps:    []wxapp.App{{Client: app, Tokens: app}},
			Keyring: ring,
			Now:     func() time.Time { return time.Unix(fuzzNow, 0) },
		})
	}

	f.Fuzz(func(t *testing.T, plain []byte, encData, iv, rawData, signature string, mode uint8) {
		sealWith, answer := ring, error(nil)
		if mode&modeKeyUnknown != 0 {
			sealWith = otherRing
		}
		switch {
		case mode&modeWeChatDown != 0:
			answer = wechat.ErrUnavailable
		case mode&modeKeyStale != 0:
			answer = wechat.ErrSessionKeyStale
		}
		ident := &ent.Identity{
			UserID:     uuid.New(), // a user of its own: the per-user limit on key checks never bites
			Appid:      fuzzAppID,
			Openid:     fuzzOpenID,
			SessionKey: sealWith.Seal([]byte(fuzzSessionKey), auth.IdentityBinding(fuzzAppID, fuzzOpenID)),
		}
		req := Request{EncryptedData: encData, IV: iv}
		if mode&modeRawInput == 0 {
			ivBytes := sized([]byte(iv), aes.BlockSize)
			req.EncryptedData = base64.StdEncoding.EncodeToString(encrypt(key, ivBytes, plain))
			req.IV = base64.StdEncoding.EncodeToString(ivBytes)
		}
		if mode&modeSigned != 0 {
			if mode&modeGoodSig != 0 {
				sum := sha1.Sum([]byte(rawData + fuzzSessionKey))
				signature = hex.EncodeToString(sum[:])
			}
			req.RawData, req.Signature = &rawData, &signature
		}

		data, err := services[answer].Decrypt(context.Background(), ident, req)

		// What the client sent in the clear, as Decrypt reads it; nil for fuzzed bytes.
		var want map[string]any
		wantOK := false
		if mode&modeRawInput == 0 {
			dec := json.NewDecoder(bytes.NewReader(plain))
			dec.UseNumber()
			decoded := dec.Decode(&want) == nil
			_, after := dec.Token() // only white space may follow the JSON
			wantOK = decoded && after == io.EOF && validWatermark(want) &&
				mode&modeKeyUnknown == 0 && (mode&modeSigned == 0 || mode&modeGoodSig != 0)
		}

		if err != nil {
			if wantOK {
				t.Fatalf("Decrypt refused %q, encrypted as WeChat does: %v", plain, err)
			}
			var ie *input.Error
			switch {
			case errors.As(err, &ie), errors.Is(err, ErrSessionKeyStale), errors.Is(err, wechat.ErrUnavailable):
			default:
				t.Fatalf("Decrypt: %v (%T) is none of the errors the API maps", err, err)
			}
			if err.Error() == "" || strings.Contains(err.Error(), fuzzSessionKey) {
				t.Fatalf("Decrypt's error %q is empty or shows the session key", err)
			}
			return
		}
		if mode&modeKeyUnknown != 0 {
			t.Fatal("Decrypt opened data with a session key the server cannot unseal")
		}
		if mode&modeSigned != 0 && !signedBy(rawData, signature, fuzzSessionKey) {
			t.Fatalf("Decrypt took rawData %q with the wrong signature %q", rawData, signature)
		}
		if _, err := json.Marshal(data); err != nil {
			t.Fatalf("Decrypt's result does not marshal: %v", err)
		}
		if !validWatermark(data) {
			t.Fatalf("Decrypt took the watermark %v", data["watermark"])
		}
		if mode&modeRawInput == 0 && !reflect.DeepEqual(data, want) {
			t.Fatalf("Decrypt of %q gave %v, want %v", plain, data, want)
		}
	})
}

// validWatermark says whether data carries a watermark for the app from the last hour
// (a few minutes ahead allowed) on the fuzz clock.
func validWatermark(data map[string]any) bool {
	wm, _ := data["watermark"].(map[string]any)
	ts, _ := wm["timestamp"].(json.Number)
	at, err := ts.Int64()
	return err == nil && wm["appid"] == fuzzAppID &&
		at >= fuzzNow-int64(DefaultMaxAge/time.Second) && at <= fuzzNow+int64(futureSkew/time.Second)
}
