package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// LoginCode makes wx.login codes idempotent across retries and instances. It is found by
// a hash of the code (never the code itself) and holds only which identity the code
// logged in, never a token. A pending row is a claim: one instance is exchanging the code
// with WeChat and the others wait for it. Done: the code logs that identity in again.
// Failed: WeChat refused the code for good, and for a few seconds the same answer is
// given without asking again. A passing failure (WeChat busy) deletes the claim.
type LoginCode struct {
	ent.Schema
}

// Fields of the LoginCode.
func (LoginCode) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
		field.Bytes("code_hash").SchemaType(binary32).MinLen(32).MaxLen(32).Sensitive().Immutable().Unique(),
		field.Enum("state").Values("pending", "done", "failed").Default("pending"),
		// failure names WeChat's refusal for a failed code: invalid_code, risky_user or
		// rate_limited.
		field.String("failure").MaxLen(32).Optional().Nillable(),
		// lease_until bounds a pending claim, so that a crashed instance does not hold
		// a code for longer than one login can take.
		field.Time("lease_until").SchemaType(datetime6),
		// expires_at ends the row: for a done code, the idempotency window (no longer than
		// the code's own life); for a failed one, a few seconds.
		field.Time("expires_at").SchemaType(datetime6),
		field.UUID("identity_id", uuid.UUID{}).Optional().Nillable(),
		field.UUID("user_id", uuid.UUID{}).Optional().Nillable(),
		field.Bool("new_user").Default(false),
		// logins counts the sessions a done code has opened: a code is a retry, not a
		// credential, so it logs in at most a few times (auth.MaxLoginsPerCode).
		field.Int("logins").NonNegative().Default(0),
		field.Time("created_at").SchemaType(datetime6).Default(now).Immutable(),
	}
}

// Indexes of the LoginCode.
func (LoginCode) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("expires_at"),
	}
}
