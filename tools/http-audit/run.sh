#!/usr/bin/env bash
# Builds wxlogin, starts it in dev mode in a scratch folder on a free port, and runs
# graphql-http's audit against it. Used by `make audit-http`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

(cd "$here" && npm ci --silent --no-audit --no-fund)
(cd "$root" && go build -o "$work/wxlogin" .)
(cd "$work" && WXLOGIN_ADDR=127.0.0.1:0 exec ./wxlogin 2>"$work/log") &
pid=$!
addr=""
for _ in $(seq 1 100); do
  addr="$(grep -o 'listen=[0-9.:]*' "$work/log" | head -1 | cut -d= -f2 || true)"
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "the server did not start:"; cat "$work/log"; exit 1
fi
node "$here/audit.mjs" "http://$addr/graphql"
