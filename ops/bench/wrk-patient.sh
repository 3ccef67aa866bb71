#!/usr/bin/env bash
# wrk -t2 -c64 on GET /patients/{id} against the patient service of `pms all` on PostgreSQL
# (a fresh database, dropped afterwards), with a real access token from its auth service.
# Every request is verified (JWT) and audited (hash-chained, group-committed). Prints
# requests/s and latency: figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/bench/lib.sh
. ops/bench/lib.sh
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
PG=${PMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=bench_$$
DURATION=${DURATION:-10s}
BASE=${BASE_PORT:-14000}
DATA=$(mktemp -d)
psql "$PG" -qc "CREATE DATABASE $DB"
PID=
cleanup() {
	if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
	rm -rf "$DATA"
}
trap cleanup EXIT
URL=$(echo "$PG" | sed -E "s#/[^/?]+(\?|$)#/$DB\1#")
P=127.0.0.1
start_pms_all ./bin/pms "$URL" "$DATA" "$BASE"
ID=$(curl -sf -XPOST "http://$P:$((BASE + 0))/patients" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
	-d '{"name":"Bench","email":"bench@example.org","address":"x","dateOfBirth":"1990-01-01"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
echo "wrk -t2 -c64 -d$DURATION GET /patients/$ID (pms all on PostgreSQL: JWT check + audit row per read)"
wrk -t2 -c64 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://$P:$((BASE + 0))/patients/$ID" |
	grep -E 'Requests/sec|Latency|50%|99%|Non-2xx|Socket'
