// Package schema is wxlogin's data model: users, the WeChat identities they log in with,
// their sessions and the short-lived records that make login codes idempotent.
package schema

import (
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
)

// datetime6 keeps microseconds on MySQL (ent's default there is TIMESTAMP, which drops
// them and ends in 2038).
var datetime6 = map[string]string{dialect.MySQL: "datetime(6)"}

// binary32 stores a SHA-256 or HMAC-SHA256 digest in a column MySQL can index.
var binary32 = map[string]string{dialect.MySQL: "binary(32)"}

// newID makes time-ordered UUIDs (v7): opaque to clients, and appended in order to
// InnoDB's clustered index.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// now is the default for times that callers do not set from their own clock.
func now() time.Time { return time.Now().UTC() }
