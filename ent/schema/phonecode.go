package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// PhoneCode makes phone-number codes idempotent: WeChat bills each exchange, so a code
// is exchanged at most once, retries and races included. Keyed by a hash of the code,
// it holds whose number the code bound, never the number. Pending: one request is
// asking WeChat; done: the number is bound; failed: WeChat refused the code for good.
type PhoneCode struct {
	ent.Schema
}

// Fields of the PhoneCode.
func (PhoneCode) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
		field.Bytes("code_hash").SchemaType(binary32).MinLen(32).MaxLen(32).Sensitive().Immutable().Unique(),
		field.UUID("user_id", uuid.UUID{}), // moves with a merge
		field.Enum("state").Values("pending", "done", "failed").Default("pending"),
		field.String("failure").MaxLen(32).Optional().Nillable(),
		field.Time("lease_until").SchemaType(datetime6),
		field.Time("expires_at").SchemaType(datetime6),
		field.Time("created_at").SchemaType(datetime6).Default(now).Immutable(),
	}
}

// Indexes of the PhoneCode.
func (PhoneCode) Indexes() []ent.Index {
	return []ent.Index{index.Fields("expires_at")}
}
