package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// AuditEvent records one change to who is logged in: a login (or a failed one), a
// logout, a revoked or evicted session, a logout-all, and the end of an account or of
// one of its identities, a block and an unblock. It is written in the same transaction
// as the change it records. It holds no token and no code. It has no foreign keys: it
// outlives the sessions and users it mentions. When a user's account is deleted its
// rows keep the user's id and the event, and lose their IP and User-Agent.
type AuditEvent struct {
	ent.Schema
}

// Fields of the AuditEvent.
func (AuditEvent) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
		field.Time("at").SchemaType(datetime6).Default(now).Immutable(),
		field.Enum("event").Values(
			"login_succeeded", "login_failed", "logout", "session_revoked", "logout_all", "session_evicted",
			// deleted: the account ended (deleteAccount, wxlogin admin delete, or WeChat's
			// push for its last identity); identity_deleted: one identity of it did (a
			// push); profile_cleared: WeChat said the user changed what they had
			// authorized, and the nickname and avatar went.
			"deleted", "identity_deleted", "profile_cleared", "blocked", "unblocked",
			// A web login's steps: the browser started it (no user yet), the user
			// scanned, confirmed or cancelled it, and the browser took its session.
			"web_login_started", "web_login_scanned", "web_login_confirmed", "web_login_cancelled", "web_login_succeeded",
		).Immutable(),
		field.UUID("user_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		field.UUID("session_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		// ip and user_agent are cleared when the user's account is deleted.
		field.String("ip").MaxLen(64).Optional().Nillable(),
		field.String("user_agent").MaxLen(512).Optional().Nillable(),
		// error_code is the error code a failed login answered with.
		field.String("error_code").MaxLen(32).Optional().Nillable().Immutable(),
		// sessions is how many sessions a logout-all ended.
		field.Int("sessions").Optional().Nillable().Immutable(),
		// reason is an operator's reason for a block, or where an event came from
		// (deleteAccount, admin, wechat_push).
		field.String("reason").MaxLen(256).Optional().Nillable().Immutable(),
	}
}

// Indexes of the AuditEvent.
func (AuditEvent) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("at"),
		index.Fields("user_id", "at"),
	}
}
