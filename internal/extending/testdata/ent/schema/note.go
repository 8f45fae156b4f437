package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Note is a note a user keeps: a type of the team's own, stored beside wxlogin's.
type Note struct {
	ent.Schema
}

func (Note) Fields() []ent.Field {
	return []ent.Field{
		// wxlogin's conventions (mixin.go): time-ordered ids, times to the microsecond
		// on MySQL.
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
		// The owner: the id of wxlogin's user, as auth.CurrentFrom gives it.
		field.UUID("user_id", uuid.UUID{}).Immutable(),
		field.String("text").MaxLen(1000),
		field.Time("created_at").SchemaType(datetime6).Default(now).Immutable(),
	}
}

func (Note) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("user_id", "created_at"), // a user's notes, newest first
	}
}
