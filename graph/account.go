package graph

import (
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/internal/auth"
)

// exported is a user's data as myData and `wxlogin admin user` show it: the fields
// the schema's description of myData lists, in that order of ideas.
func (r *Resolver) exported(x *auth.Export) (map[string]any, error) {
	return Exported(x, r.Phone.Open)
}

// Exported is the JSON of a user's data; openPhone opens the sealed phone number (nil
// leaves it out, as an operator's view does).
func Exported(x *auth.Export, openPhone func(userID uuid.UUID, sealed []byte) (*string, error)) (map[string]any, error) {
	u := x.User
	user := map[string]any{
		"id": u.ID.String(), "unionid": u.Unionid, "nickname": u.Nickname, "avatarUrl": u.AvatarURL,
		"createdAt": stamp(u.CreatedAt), "lastLoginAt": stamp(u.LastLoginAt), "blockedAt": stampOrNil(u.BlockedAt),
	}
	if openPhone != nil {
		user["phoneNumber"] = nil
		if u.PhoneNumber != nil {
			phone, err := openPhone(u.ID, *u.PhoneNumber)
			if err != nil {
				return nil, err
			}
			user["phoneNumber"] = phone
		}
	}
	identities := make([]any, len(x.Identities))
	for i, id := range x.Identities {
		identities[i] = map[string]any{
			"appid": id.Appid, "openid": id.Openid, "unionid": id.Unionid,
			"createdAt": stamp(id.CreatedAt), "updatedAt": stamp(id.UpdatedAt),
		}
	}
	sessions := make([]any, len(x.Sessions))
	for i, v := range x.Sessions {
		s := v.Session
		sessions[i] = map[string]any{
			"id": s.ID.String(), "createdAt": stamp(s.CreatedAt), "lastSeenAt": stamp(s.LastSeenAt),
			"expiresAt": stamp(v.ExpiresAt), "ip": s.IP, "userAgent": s.UserAgent, "current": v.Current,
		}
	}
	events := make([]any, len(x.AuditEvents))
	for i, e := range x.AuditEvents {
		var sid *string
		if e.SessionID != nil {
			id := e.SessionID.String()
			sid = &id
		}
		events[i] = map[string]any{
			"at": stamp(e.At), "event": string(e.Event), "sessionId": sid, "ip": e.IP, "userAgent": e.UserAgent,
			"sessions": e.Sessions, "reason": e.Reason,
		}
	}
	return map[string]any{
		"user": user, "identities": identities, "sessions": sessions, "auditEvents": events,
		"exportedAt": stamp(time.Now()),
	}, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func stampOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return stamp(*t)
}
