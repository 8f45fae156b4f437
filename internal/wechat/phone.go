package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

const apiGetPhoneNumber = "getuserphonenumber"

// phoneKinds: for a phone code, 40013 is not this server's appid but the code's.
var phoneKinds = map[int]error{40013: ErrForeignCode}

// PhoneInfo is the phone number a user chose to share, as WeChat gives it. It is
// personal data: String and LogValue show the country code only.
type PhoneInfo struct {
	// PhoneNumber is bare for a mainland China number ("13800000000") and carries
	// the area code for any other ("+85261234567").
	PhoneNumber        string
	PurePhoneNumber    string // without the area code, e.g. "13800000000", "61234567"
	CountryCode        string // digits, e.g. "86", whether WeChat sent a number or a string
	WatermarkAppID     string // the appid WeChat issued the number for
	WatermarkTimestamp int64  // when WeChat issued it, in Unix seconds
}

// LogValue shows the country code and the watermark, never the number.
func (p PhoneInfo) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("country_code", p.CountryCode),
		slog.String("watermark_appid", p.WatermarkAppID),
		slog.Int64("watermark_timestamp", p.WatermarkTimestamp),
	)
}

// String leaves the number out, so that printing a PhoneInfo never reveals it.
func (p PhoneInfo) String() string {
	return "wechat.PhoneInfo{CountryCode:" + p.CountryCode + " PhoneNumber:" + redacted +
		" WatermarkAppID:" + p.WatermarkAppID + " WatermarkTimestamp:" + strconv.FormatInt(p.WatermarkTimestamp, 10) + "}"
}

// GoString is String, for %#v.
func (p PhoneInfo) GoString() string { return p.String() }

// GetPhoneNumber exchanges a phone code (from <button
// open-type="getPhoneNumber">) for the user's phone number. With openid set,
// WeChat also checks that the code belongs to that user; "" leaves that out.
//
// Each success is billed and a code works once, so the code must never be
// exchanged twice: only "system busy" (-1) and failures before the request
// was sent (the connection could not be made) are retried. An attempt that
// timed out or got a broken answer may have spent the code: it ends the call
// with ErrUnavailable. A rejected code (40029) is ErrInvalidCode, a code from
// another mini-program (40013) ErrForeignCode, an exhausted quota (1400001,
// in errcode or errno) ErrQuotaExhausted; a rejected access token (40001,
// 42001) is ErrAccessToken, and the code is still unspent, so the caller
// refreshes the token once and retries once.
func (c *Client) GetPhoneNumber(ctx context.Context, accessToken, code, openid string) (PhoneInfo, error) {
	query, err := tokenQuery(apiGetPhoneNumber, accessToken)
	if err != nil {
		return PhoneInfo{}, err
	}
	if code == "" {
		return PhoneInfo{}, fmt.Errorf("wechat %s: empty code, not sent: %w", apiGetPhoneNumber, ErrInvalidCode)
	}
	body, err := json.Marshal(struct {
		Code   string `json:"code"`
		OpenID string `json:"openid,omitempty"`
	}{code, openid})
	if err != nil {
		return PhoneInfo{}, &unavailableError{api: apiGetPhoneNumber, msg: "cannot build request"}
	}
	k := &call{
		api:     apiGetPhoneNumber,
		method:  http.MethodPost,
		path:    "/wxa/business/getuserphonenumber",
		query:   query,
		body:    body,
		secrets: []string{accessToken, code},
		once:    true,
		kinds:   phoneKinds,
	}
	return do(ctx, c, k, decodePhone(openid))
}

// decodePhone reads getuserphonenumber's success answer; openid, when set, is logged.
func decodePhone(openid string) func(body []byte) (PhoneInfo, []slog.Attr, error) {
	return func(body []byte) (PhoneInfo, []slog.Attr, error) {
		var b struct {
			PhoneInfo *struct {
				PhoneNumber     string      `json:"phoneNumber"`
				PurePhoneNumber string      `json:"purePhoneNumber"`
				CountryCode     countryCode `json:"countryCode"`
				Watermark       struct {
					Timestamp int64  `json:"timestamp"`
					AppID     string `json:"appid"`
				} `json:"watermark"`
			} `json:"phone_info"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return PhoneInfo{}, nil, errNotJSON
		}
		if b.PhoneInfo == nil || b.PhoneInfo.PhoneNumber == "" && b.PhoneInfo.PurePhoneNumber == "" {
			return PhoneInfo{}, nil, errors.New("success answer without phone_info")
		}
		p := PhoneInfo{
			PhoneNumber:        b.PhoneInfo.PhoneNumber,
			PurePhoneNumber:    b.PhoneInfo.PurePhoneNumber,
			CountryCode:        string(b.PhoneInfo.CountryCode),
			WatermarkAppID:     b.PhoneInfo.Watermark.AppID,
			WatermarkTimestamp: b.PhoneInfo.Watermark.Timestamp,
		}
		attrs := []slog.Attr{slog.Any("phone", p)}
		if openid != "" {
			attrs = append(attrs, slog.String("openid", openid))
		}
		return p, attrs, nil
	}
}

// countryCode is getuserphonenumber's countryCode: documented as a string, sent as a
// number in the documentation's example and in real answers. It holds the digits.
type countryCode string

func (c *countryCode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return errors.New("countryCode is neither a number nor a string")
		}
		s = n.String()
	}
	*c = countryCode(strings.TrimPrefix(s, "+"))
	return nil
}
