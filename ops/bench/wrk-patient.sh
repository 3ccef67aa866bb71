#!/usr/bin/env bash
# wrk -t2 -c64 on GET /patients/{id} against `pms patient` on PostgreSQL (a fresh database,
# dropped afterwards). Prints requests/s and latency; figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
PG=${PMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=bench_$$
DURATION=${DURATION:-10s}
psql "$PG" -qc "CREATE DATABASE $DB"
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
}
trap cleanup EXIT
URL=$(echo "$PG" | sed -E "s#/[^/?]+(\?|$)#/$DB\1#")
HTTP=127.0.0.1:${PORT:-14000}
./bin/pms patient --database-url="$URL" --http-addr=$HTTP --grpc-addr=127.0.0.1:0 --admin-addr=127.0.0.1:0 \
	--rate-limit=0 --log-level=error --data-dir="$(mktemp -d)" &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://$HTTP/patients?limit=1" >/dev/null && break; sleep 0.1; done
ID=$(curl -sf -XPOST "http://$HTTP/patients" -H 'Content-Type: application/json' \
	-d '{"name":"Bench","email":"bench@example.org","address":"x","dateOfBirth":"1990-01-01"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
echo "wrk -t2 -c64 -d$DURATION GET /patients/$ID (pms patient on PostgreSQL, audit write per read)"
wrk -t2 -c64 -d"$DURATION" --latency "http://$HTTP/patients/$ID" | grep -E 'Requests/sec|Latency|50%|99%|Non-2xx'
