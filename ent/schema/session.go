package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Session is one login: a bearer token, stored only as its SHA-256.
type Session struct {
	ent.Schema
}

// Fields of the Session.
func (Session) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
		field.Bytes("token_hash").SchemaType(binary32).MinLen(32).MaxLen(32).Sensitive().Immutable().Unique(),
		field.UUID("user_id", uuid.UUID{}), // moves with a merge, as identities do
		field.UUID("identity_id", uuid.UUID{}).Immutable(),
		field.Time("created_at").SchemaType(datetime6).Default(now).Immutable(),
		field.Time("expires_at").SchemaType(datetime6),
		field.Time("last_seen_at").SchemaType(datetime6).Default(now),
		field.Time("revoked_at").SchemaType(datetime6).Optional().Nillable(),
		field.String("ip").MaxLen(64).Optional().Nillable().Immutable(),
		field.String("user_agent").MaxLen(512).Optional().Nillable().Immutable(),
		// web: made by a web login (scanning the mini-program's code), with the web
		// sessions' lifetimes.
		field.Bool("web").Default(false).Immutable(),
	}
}

// Edges of the Session.
func (Session) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("sessions").Field("user_id").Unique().Required(),
		edge.To("identity", Identity.Type).Field("identity_id").Unique().Required().Immutable(),
	}
}

// Indexes of the Session.
func (Session) Indexes() []ent.Index {
	return []ent.Index{
		// A user's live sessions: revoked_at IS NULL sits in the index, so a locking
		// read of them (the eviction at login) locks that user's rows alone. Without it
		// MariaDB may pick the revoked_at index below, which holds every user's live
		// sessions, and concurrent logins of different users deadlock.
		index.Fields("user_id", "revoked_at", "expires_at"),
		// Housekeeping finds ended sessions by each of these.
		index.Fields("expires_at"),
		index.Fields("revoked_at"),
		index.Fields("last_seen_at"),
	}
}
