package opendata

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

// WeChat's published sample of encrypted data (the WXBizDataCrypt demo of its open-data
// documentation, also in the common SDKs' tests).
const (
	sampleAppID         = "wx4f4bc4dec97d474b"
	sampleSessionKey    = "tiihtNczf5v6AKRyjwEUhQ=="
	sampleIV            = "r7BXXKkLb8qrSNn05n0qiA=="
	sampleEncryptedData = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
	// sampleTimestamp is the sample's watermark: October 2016.
	sampleTimestamp = 1477314187
)

// TestWeChatSampleDecrypts: the sample decrypts to the documented plaintext, with the
// AES-CBC and padding alone and through the whole service on a clock set to the
// watermark's day; on today's clock the service refuses it as old.
func TestWeChatSampleDecrypts(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString(sampleSessionKey)
	iv, _ := base64.StdEncoding.DecodeString(sampleIV)
	data, _ := base64.StdEncoding.DecodeString(sampleEncryptedData)
	plain, ok := decrypt(key, iv, data)
	if !ok {
		t.Fatal("the sample does not decrypt")
	}
	var got struct {
		OpenID    string `json:"openId"`
		NickName  string `json:"nickName"`
		Gender    int    `json:"gender"`
		City      string `json:"city"`
		UnionID   string `json:"unionId"`
		Watermark struct {
			AppID     string `json:"appid"`
			Timestamp int64  `json:"timestamp"`
		} `json:"watermark"`
	}
	if err := json.Unmarshal(plain, &got); err != nil {
		t.Fatalf("the sample's plaintext is not JSON: %v", err)
	}
	if got.OpenID != "oGZUI0egBJY1zhBYw2KhdUfwVJJE" || got.NickName != "Band" || got.Gender != 1 || got.City != "Guangzhou" ||
		got.UnionID != "ocMvos6NjeKLIBqg5Mr9QjxrP1FA" || got.Watermark.AppID != sampleAppID || got.Watermark.Timestamp != sampleTimestamp {
		t.Errorf("the sample decrypts to %+v, not the documented plaintext", got)
	}

	at := time.Unix(sampleTimestamp, 0).Add(10 * time.Minute)
	out, err := sampleService(t, func() time.Time { return at }).Decrypt(context.Background(), sampleIdentity(t), Request{EncryptedData: sampleEncryptedData, IV: sampleIV})
	if err != nil {
		t.Fatalf("Decrypt of the sample, ten minutes after it was made: %v", err)
	}
	if out["openId"] != "oGZUI0egBJY1zhBYw2KhdUfwVJJE" || out["nickName"] != "Band" {
		t.Errorf("Decrypt gave %v", out)
	}
	wm, _ := out["watermark"].(map[string]any)
	if wm["appid"] != sampleAppID || wm["timestamp"] != json.Number("1477314187") {
		t.Errorf("watermark %v, want the sample's appid and timestamp, to the second", wm)
	}

	_, err = sampleService(t, nil).Decrypt(context.Background(), sampleIdentity(t), Request{EncryptedData: sampleEncryptedData, IV: sampleIV})
	var bad *input.Error
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), "older than") {
		t.Errorf("the 2016 sample on today's clock: %v, want refused as old", err)
	}
}

// TestWeChatSampleSignature is the rawData signature example of WeChat's documentation,
// as the SDKs' tests record it: sha1(rawData + session_key).
func TestWeChatSampleSignature(t *testing.T) {
	const (
		rawData    = `{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}`
		sessionKey = "HyVFkGl5F5OQWJZZaNzBBg=="
		signature  = "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
	)
	if !signedBy(rawData, signature, sessionKey) {
		t.Error("the documented signature does not verify")
	}
	if signedBy(strings.Replace(rawData, "Band", "Bend", 1), signature, sessionKey) || signedBy(rawData, signature, sampleSessionKey) {
		t.Error("the signature verifies for other rawData or another key")
	}
}

// TestTrailingBytesAreRefused: a plaintext with anything but white space after its
// JSON object is refused as bad input, without asking WeChat about the key (it
// evidently fits); white space after it is fine.
func TestTrailingBytesAreRefused(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString(sampleSessionKey)
	iv := bytes.Repeat([]byte{9}, 16)
	at := time.Unix(sampleTimestamp, 0)
	good := `{"openGId":"G1","watermark":{"timestamp":1477314187,"appid":"` + sampleAppID + `"}}`
	for _, tc := range []struct {
		name, plain string
		ok          bool
	}{
		{"nothing after", good, true},
		{"white space after", good + " \n\t", true},
		{"a second object", good + `{"openGId":"G2"}`, false},
		{"text", good + " trailing", false},
		{"a comma", good + ",", false},
	} {
		svc := sampleService(t, func() time.Time { return at })
		req := Request{
			EncryptedData: base64.StdEncoding.EncodeToString(encrypt(key, iv, []byte(tc.plain))),
			IV:            base64.StdEncoding.EncodeToString(iv),
		}
		_, err := svc.Decrypt(context.Background(), sampleIdentity(t), req)
		var bad *input.Error
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v, want it decrypted", tc.name, err)
		case !tc.ok && (!errors.As(err, &bad) || !strings.Contains(err.Error(), "after its JSON")):
			t.Errorf("%s: %v, want bad input naming the bytes after the JSON", tc.name, err)
		}
	}
}

// sampleService decrypts for the sample's app, whose WeChat would call its key current.
func sampleService(t *testing.T, now func() time.Time) *Service {
	t.Helper()
	app := stubApp{appid: sampleAppID}
	return New(Options{Apps: []wxapp.App{{Client: app, Tokens: app}}, Keyring: sampleKeyring(t), Now: now})
}

func sampleIdentity(t *testing.T) *ent.Identity {
	t.Helper()
	const openid = "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
	return &ent.Identity{
		UserID: uuid.New(), Appid: sampleAppID, Openid: openid,
		SessionKey: sampleKeyring(t).Seal([]byte(sampleSessionKey), auth.IdentityBinding(sampleAppID, openid)),
	}
}

func sampleKeyring(t *testing.T) *seal.Keyring {
	t.Helper()
	ring, err := seal.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}
