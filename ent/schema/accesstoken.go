package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// AccessToken is a mini-program's WeChat access token, shared by every instance, so
// that a fleet asks WeChat for about one per period however many instances run. The
// token is stored sealed. A short lease names the one instance refreshing it.
type AccessToken struct {
	ent.Schema
}

// Fields of the AccessToken.
func (AccessToken) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(64).NotEmpty().Immutable().Comment("the appid"),
		field.Bytes("token").Optional().Sensitive(),
		field.Time("expires_at").SchemaType(datetime6).Optional().Nillable(),
		field.Time("lease_until").SchemaType(datetime6).Optional().Nillable(),
		field.String("lease_holder").MaxLen(64).Optional().Nillable(),
		field.Time("updated_at").SchemaType(datetime6).Default(now),
		// forced_at is when an instance last asked WeChat to force a refresh: WeChat
		// allows one per 30 s and 20 a day, so the fleet asks at most once per 30 s.
		field.Time("forced_at").SchemaType(datetime6).Optional().Nillable(),
		// version grows with every write: a lease is taken only on the version read, so
		// an instance that read the row before another stored a fresh token cannot
		// start a second refresh.
		field.Int64("version").Default(0),
	}
}
