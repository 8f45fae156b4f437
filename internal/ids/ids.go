// Package ids makes the ids of every table wxlogin writes: UUIDs, time-ordered by
// default and random on an engine that splits tables by key (Random).
package ids

import (
	"sync/atomic"

	"github.com/google/uuid"
)

var random atomic.Bool

// New makes an id. Time-ordered UUIDs (v7) are appended in order to the clustered
// index of InnoDB (MariaDB, MySQL), which keeps its pages full and the recent ones in
// memory. After Random(true) they are random (v4): TiDB splits a table into regions by
// its key, and time-ordered keys would send every insert to the table's last region,
// one machine's write hot spot at exactly the peak. Nothing orders by id alone: lists
// order by a time first and ids only break its ties, so on TiDB the rows one
// transaction wrote at the same time (a login's audit events) come in no set order.
func New() uuid.UUID {
	if random.Load() {
		return uuid.New()
	}
	return uuid.Must(uuid.NewV7())
}

// Random makes New's ids random (on) or time-ordered (off). The database package sets
// it once it knows the engine: a process talks to one database.
func Random(on bool) { random.Store(on) }
