// Package profile keeps what a person fills in about themselves: since 2022 WeChat no
// longer hands out nicknames and avatars, so the mini-program sends what the person
// chose through its nickname and avatar components.
package profile

import (
	"context"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/input"
)

// Limits on what a person can fill in.
const (
	MaxNicknameRunes = 32
	MaxAvatarURLLen  = 1024
)

// Update is a change to a profile: nil leaves a field as it is, "" clears it.
type Update struct {
	Nickname  *string
	AvatarURL *string
}

// Service stores profiles.
type Service struct{ db *ent.Client }

// New builds a Service.
func New(db *ent.Client) *Service { return &Service{db: db} }

// Apply validates the update and stores it on the user.
func (s *Service) Apply(ctx context.Context, userID uuid.UUID, u Update) (*ent.User, error) {
	upd := s.db.User.UpdateOneID(userID)
	if u.Nickname != nil {
		nick, err := nickname(*u.Nickname)
		if err != nil {
			return nil, err
		}
		if nick == "" {
			upd.ClearNickname()
		} else {
			upd.SetNickname(nick)
		}
	}
	if u.AvatarURL != nil {
		avatar, err := avatarURL(*u.AvatarURL)
		if err != nil {
			return nil, err
		}
		if avatar == "" {
			upd.ClearAvatarURL()
		} else {
			upd.SetAvatarURL(avatar)
		}
	}
	return upd.Save(ctx)
}

// nickname trims the value and checks it; "" means clear.
func nickname(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	if n := utf8.RuneCountInString(v); n > MaxNicknameRunes {
		return "", input.Errorf("nickname is longer than 32 characters.")
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == utf8.RuneError || hidden(r) {
			return "", input.Errorf("nickname must not contain control characters, direction overrides or invisible spaces.")
		}
	}
	return v, nil
}

// hidden reports characters that change how text around them reads without showing
// themselves: direction overrides and isolates, zero-width spaces, the BOM. The
// zero-width joiner and variation selectors stay allowed: emoji sequences need them.
func hidden(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f:
		return true
	case r == 0x200b, r == 0xfeff, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// avatarURL checks that the value is an https URL a client can show; "" means clear.
func avatarURL(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	if len(v) > MaxAvatarURLLen {
		return "", input.Errorf("avatarUrl is longer than 1024 bytes.")
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", input.Errorf("avatarUrl must be an https URL, such as https://cdn.example.com/avatar.png: upload the chosen avatar first, then send its URL.")
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return "", input.Errorf("avatarUrl must not contain spaces or control characters.")
		}
	}
	return v, nil
}
