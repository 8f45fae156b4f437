#!/usr/bin/env bash
# make test-tidb: wxlogin's MySQL suite and reliability suite on TiDB (v8.5.6, its SQL
# layer in one process on unistore). With "bench" and make bench's flags (make
# bench-tidb): the load harness on MariaDB, then on this TiDB. The pinned tidb-server
# is built once per machine and go.sum into $WXLOGIN_TIDB_CACHE (~/.cache/wxlogin-tidb):
# the first build takes about 10 minutes and 3.4 GB of memory, later runs start it in
# seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${WXLOGIN_TIDB_CACHE:-$HOME/.cache/wxlogin-tidb}"
# TiDB checks at start that the runtime reports go1.25 (its map layout is the same in the
# Go this project builds with), and its module leaves the version to the release build.
ldflags="-X runtime.buildVersion=go1.25.8 -X github.com/pingcap/tidb/pkg/parser/mysql.TiDBReleaseVersion=v8.5.6"
bin="$cache/tidb-server-$( (cat tools/tidb/go.sum; echo "$ldflags") | sha256sum | cut -c1-16)"
mkdir -p "$cache"
if [ ! -x "$bin" ]; then
  echo "building tidb-server into $bin (once per machine: about 10 minutes)"
  (cd tools/tidb && go build -ldflags "$ldflags" -o "$bin.tmp" github.com/pingcap/tidb/cmd/tidb-server)
  mv "$bin.tmp" "$bin"
  find "$cache" -maxdepth 1 -name 'tidb-server-*' ! -name "$(basename "$bin")" -delete # earlier pins
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
status=$(free_port)
work=$(mktemp -d)
"$bin" -store=unistore -path "$work/data" -host 127.0.0.1 -P "$port" -status "$status" -status-host 127.0.0.1 \
  -log-file "$work/tidb.log" -log-slow-query "$work/slow.log" >"$work/stdout.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do
  mysql -h127.0.0.1 -P"$port" -uroot --connect-timeout=2 -e 'SELECT 1' >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "tidb-server exited:"; tail -20 "$work/stdout.log" "$work/tidb.log"; exit 1; }
  sleep 0.5
done
mysql -h127.0.0.1 -P"$port" -uroot -N -e 'SELECT VERSION()'
# The constraint the audit test injects a failure with (TiDB has no triggers).
mysql -h127.0.0.1 -P"$port" -uroot -e 'SET GLOBAL tidb_enable_check_constraint = ON'

if [ "${1:-}" = bench ]; then # make bench-tidb: the load harness on MariaDB, then on this TiDB
  shift
  go run ./tools/bench -tidb "root@tcp(127.0.0.1:$port)" -tidb-pid "$pid" "$@"
  exit
fi

export WXLOGIN_TEST_MYSQL_URL="mysql://root@127.0.0.1:$port/"
failed=0
echo "== the MySQL suite on TiDB"
go test -count=1 -p 2 ./... || failed=1
echo "== the reliability suite on TiDB"
go test -tags reliability -count=1 -timeout 20m -skip TestSoak ./internal/reliability/... || failed=1
exit $failed
