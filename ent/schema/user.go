package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"github.com/google/uuid"
)

// User is a person. It logs in through one or more WeChat identities.
type User struct {
	ent.Schema
}

// Fields of the User.
func (User) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
		field.Time("created_at").SchemaType(datetime6).Default(now).Immutable(),
		field.Time("last_login_at").SchemaType(datetime6).Default(now),
		// unionid links the identities a person has in several mini-programs of one
		// Open Platform account: one user per unionid, kept by a unique index.
		field.String("unionid").MaxLen(128).Optional().Nillable().Unique(),
		// What the person filled in through the mini-program's nickname and avatar
		// components (WeChat itself no longer gives them out).
		field.String("nickname").MaxLen(128).Optional().Nillable(),
		field.String("avatar_url").MaxLen(1024).Optional().Nillable(),
		// phone_number from WeChat's getuserphonenumber, sealed with AES-256-GCM under
		// WXLOGIN_SECRET_KEY and bound to the user's id.
		field.Bytes("phone_number").Optional().Nillable().Sensitive(),
		// blocked_at is when an operator blocked the user (wxlogin admin block): their
		// sessions ended then, and their logins answer FORBIDDEN until unblocked.
		field.Time("blocked_at").SchemaType(datetime6).Optional().Nillable(),
		field.String("blocked_reason").MaxLen(256).Optional().Nillable(),
	}
}

// Edges of the User.
func (User) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("identities", Identity.Type),
		edge.To("sessions", Session.Type),
	}
}
