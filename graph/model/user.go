package model

import "time"

// A person who logs in through a WeChat mini-program. (The schema's User, with what the
// phone number is opened from when a request asks for it.)
type User struct {
	// Stable, opaque identifier of the user.
	ID string `json:"id"`
	// The user's openid in this mini-program.
	Openid string `json:"openid"`
	// The user's unionid across the mini-programs and accounts of one WeChat Open Platform account; null when the mini-program is not bound to one.
	Unionid *string `json:"unionid,omitempty"`
	// When the user first logged in.
	CreatedAt time.Time `json:"createdAt"`
	// When the user last logged in.
	LastLoginAt time.Time `json:"lastLoginAt"`
	// The nickname the person filled in, or null.
	Nickname *string `json:"nickname,omitempty"`
	// The https URL of the avatar the person chose, or null.
	AvatarURL *string `json:"avatarUrl,omitempty"`

	// Phone returns the phone number, when a request asks for it; nil: none.
	Phone func() (*string, error) `json:"-"`
}

// PhoneNumber is the phone number bound with bindPhoneNumber, or nil. A method without a
// context, so that gqlgen resolves it inline rather than in a goroutine of its own.
func (u *User) PhoneNumber() (*string, error) {
	if u.Phone == nil {
		return nil, nil
	}
	return u.Phone()
}
