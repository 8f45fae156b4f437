package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Identity is a WeChat account as one mini-program (appid) sees it. It is kept apart from
// the user so that one user can hold identities from several mini-programs, linked by
// unionid.
type Identity struct {
	ent.Schema
}

// Fields of the Identity.
func (Identity) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
		field.String("appid").MaxLen(64).NotEmpty().Immutable(),
		field.String("openid").MaxLen(128).NotEmpty().Immutable(),
		field.String("unionid").MaxLen(128).Optional().Nillable(),
		// session_key sealed with AES-256-GCM under WXLOGIN_SECRET_KEY; the sealed form
		// carries the key id, and appid+openid are bound in as additional data.
		field.Bytes("session_key").Sensitive(),
		// user_id changes only when two users merge: a unionid showed they are one person.
		field.UUID("user_id", uuid.UUID{}),
		field.Time("created_at").SchemaType(datetime6).Default(now).Immutable(),
		field.Time("updated_at").SchemaType(datetime6).Default(now),
	}
}

// Edges of the Identity.
func (Identity) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("identities").Field("user_id").Unique().Required(),
	}
}

// Indexes of the Identity.
func (Identity) Indexes() []ent.Index {
	return []ent.Index{
		// One identity (and so one user) per openid of a mini-program, however many
		// first logins race.
		index.Fields("appid", "openid").Unique(),
		index.Fields("unionid"),
	}
}
