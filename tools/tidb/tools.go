//go:build tools

// Package tidb pins the TiDB server that `make test-tidb` builds: TiDB v8.5.6's
// release commit, with its own module's replace lines (they are not inherited).
package tidb

import _ "github.com/pingcap/tidb/cmd/tidb-server"
