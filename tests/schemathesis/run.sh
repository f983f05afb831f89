#!/usr/bin/env bash
# Schemathesis against the OpenAPI document the daemon serves, with a platform admin's API token,
# on a fresh SQLite file and (when DATABASE_URL is set) a fresh PostgreSQL database. Fails on any
# 5xx and on any response that contradicts the schema (status, content type, headers, body).
#
#   tests/schemathesis/run.sh            bounded pass (CI): ST_MAX_TIME seconds per backend (240)
#   tests/schemathesis/run.sh --long     long pass: 1,800 s per backend, more examples
#
# Needs python3 (a venv with the pinned schemathesis is made under target/) and the debug binary
# (built here with `cargo build --all-targets`, a no-op after `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=4.32.5
MAX_TIME=${ST_MAX_TIME:-240}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-25}
if [ "${1:-}" = "--long" ]; then MAX_TIME=1800; MAX_EXAMPLES=200; fi

VENV=${ST_VENV:-target/schemathesis-venv}
if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi
cargo build --all-targets --locked -q
BIN=target/debug/wafleet

WORK=$(mktemp -d)
DAEMON=""
cleanup() {
  [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ADMIN_EMAIL=admin@schemathesis.local
ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')

# run_against NAME DB_URL: starts the daemon on DB_URL, mints an admin token, runs schemathesis.
run_against() {
  local name=$1 url=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$WORK/$name/media"
  DB_URI="$url" \
  WAFLEET__SERVER__HOST=127.0.0.1 WAFLEET__SERVER__PORT="$port" WAFLEET__SERVER__WORKERS=2 \
  WAFLEET__ADMIN__EMAIL="$ADMIN_EMAIL" WAFLEET__ADMIN__PASSWORD="$ADMIN_PASSWORD" \
  WAFLEET__AUTH__SECURE_COOKIES=false WAFLEET__WHATSAPP__CONNECTOR=sim \
  WAFLEET__CHAT__MEDIA_DIR="$WORK/$name/media" RUST_LOG=warn \
    "$BIN" > "$WORK/$name/daemon.log" 2>&1 &
  DAEMON=$!
  local base="http://127.0.0.1:$port"
  for _ in $(seq 1 120); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.5; done
  curl -fs "$base/readyz" >/dev/null

  local token
  token=$(python3 tests/schemathesis/admin_token.py "$base" "$ADMIN_EMAIL" "$ADMIN_PASSWORD")
  echo "== schemathesis on $name ($base), ${MAX_TIME}s, ${MAX_EXAMPLES} examples per operation"
  # Left out: calls that end the run's own credential (revoking tokens, signing out) and the
  # drain, which takes the node out of service on purpose (/readyz then answers 503).
  local status=0
  "$VENV/bin/schemathesis" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --exclude-path-regex '^/api/v1/(tokens/\{id\}|auth/logout|admin/drain)$' \
    --max-time "$MAX_TIME" --max-examples "$MAX_EXAMPLES" --seed "${ST_SEED:-1}" \
    --workers 2 --request-timeout 30 --suppress-health-check all \
    --report junit --report-junit-path "$WORK/$name/junit.xml" || status=$?
  mkdir -p "target/schemathesis-report/$name" && cp "$WORK/$name/junit.xml" "target/schemathesis-report/$name/" || true
  # Exit 1 covers both API failures and the tool's own errors (e.g. a hypothesis internal error
  # while generating): only failures, which the JUnit report lists as <failure>, fail the run.
  if [ "$status" -ne 0 ] && [ -f "$WORK/$name/junit.xml" ] && ! grep -q "<failure" "$WORK/$name/junit.xml"; then
    echo "schemathesis on $name: no API failure; the errors above are the tool's own"
    status=0
  fi
  # The simulator's fault drill (POST /api/v1/sim/fault, kind panic) crashes a
  # device actor on purpose to prove the supervisor contains it; any other panic is a bug.
  local panics
  panics=$(awk '/panicked at/ { at = $0; getline why; if (why !~ /^injected fault:/) print at "\n" why }' \
    "$WORK/$name/daemon.log")
  if [ -n "$panics" ]; then
    echo "the daemon panicked during the run:"; printf '%b\n' "$panics"; exit 1
  fi
  kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; DAEMON=""
  return $status
}

run_against sqlite "sqlite://$WORK/sqlite/st.db"
if [ -n "${DATABASE_URL:-}" ]; then
  db="wafleet_st_$$"
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  pg_url="${DATABASE_URL%/*}/$db"
  run_against postgres "$pg_url"
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
else
  echo "skipped schemathesis on postgres: DATABASE_URL is not set"
fi
