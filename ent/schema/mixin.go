// Package schema is wxlogin's data model: users, the WeChat identities they log in with,
// their sessions and the short-lived records that make login codes idempotent.
package schema

import (
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/internal/ids"
)

// datetime6 keeps microseconds on MySQL (ent's default there is TIMESTAMP, which drops
// them and ends in 2038).
var datetime6 = map[string]string{dialect.MySQL: "datetime(6)"}

// binary32 stores a SHA-256 or HMAC-SHA256 digest in a column MySQL can index.
var binary32 = map[string]string{dialect.MySQL: "binary(32)"}

// newID makes every table's ids (ids.New): opaque to clients, time-ordered on
// InnoDB and random on TiDB.
func newID() uuid.UUID { return ids.New() }

// now is the default for times that callers do not set from their own clock.
func now() time.Time { return time.Now().UTC() }
