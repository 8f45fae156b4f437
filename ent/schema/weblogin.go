package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// WebLogin is an attempt to log a web page in by scanning the mini-program's code: the
// browser that started it holds a secret (stored only as its SHA-256), the code carries
// the id, and the mini-program's user scans it and confirms or cancels. The session is
// made when the browser takes it, once, so that no token is ever stored.
type WebLogin struct {
	ent.Schema
}

// Fields of the WebLogin.
func (WebLogin) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
		field.Bytes("secret_hash").SchemaType(binary32).MinLen(32).MaxLen(32).Sensitive().Immutable(),
		// taken: confirmed, and the browser has its session.
		field.Enum("state").Values("waiting", "scanned", "confirmed", "cancelled", "taken").Default("waiting"),
		// The browser that started the attempt, shown to the person confirming.
		field.String("ip").MaxLen(64).Optional().Nillable().Immutable(),
		field.String("user_agent").MaxLen(512).Optional().Nillable().Immutable(),
		field.Time("created_at").SchemaType(datetime6).Default(now).Immutable(),
		field.Time("expires_at").SchemaType(datetime6).Immutable(),
		// The user who scanned it, and the identity they confirm with: the web session's.
		field.UUID("user_id", uuid.UUID{}).Optional().Nillable(),
		field.UUID("identity_id", uuid.UUID{}).Optional().Nillable(),
		field.UUID("session_id", uuid.UUID{}).Optional().Nillable(),
	}
}

// Indexes of the WebLogin.
func (WebLogin) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("expires_at"), // housekeeping
	}
}
