#!/usr/bin/env bash
# wrk -t2 -c64 on GET /patients/{id} against the patient service of `pms all` on PostgreSQL
# (a fresh database, dropped afterwards), with a real access token from its auth service.
# Every request is verified (JWT) and audited (hash-chained, group-committed). Prints
# requests/s, latency and the CPU per read of pms and of PostgreSQL: figures, not assertions.
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
start_pms_all "${BIN:-./bin/pms}" "$URL" "$DATA" "$BASE"
ID=$(curl -sf -XPOST "http://$P:$((BASE + 0))/patients" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
	-d '{"name":"Bench","email":"bench@example.org","address":"x","dateOfBirth":"1990-01-01"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
echo "wrk -t2 -c64 -d$DURATION GET /patients/$ID (pms all on PostgreSQL: JWT check + audit row per read)"
before=$(cpu_split "$URL" "$PID")
wal0=$(psql "$URL" -Atc "SELECT pg_current_wal_lsn()")
out=$(wrk -t2 -c64 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://$P:$((BASE + 0))/patients/$ID")
wal=$(psql "$URL" -Atc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal0')")
after=$(cpu_split "$URL" "$PID")
echo "$out" | grep -E 'Requests/sec|Latency|50%|99%|Non-2xx|Socket' | tee "$DATA/read.out"
# The read's whole cost, what item 2's ratio is made of: pms (the service, its audit batch,
# relay, embedded broker and analytics, all in one process) and PostgreSQL's backends.
read -r own pg < <(per_request "$before" "$after" "$(echo "$out" | awk '/requests in/ {print $1}')")
echo "CPU per read: pms $own us, PostgreSQL $pg us"
# The write-ahead log a read costs (the audit entry, its disclosure, analytics' fold: every
# database on the server, so run it alone), what replication and the backups' WAL archive carry.
echo "$out" | awk -v w="$wal" '/requests in/ {printf "WAL per read: %.0f bytes\n", w / $1}'
# Issue 20 item 2's yardstick, same sitting: a bare net/http hello world (ops/bench/hello).
go build -o "$DATA/hello" ./ops/bench/hello
"$DATA/hello" -addr="$P:$((BASE + 99))" &
HELLO=$!
trap 'kill $HELLO 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://$P:$((BASE + 99))/" && break; sleep 0.05; done
echo "wrk -t2 -c64 -d$DURATION GET / (a bare net/http hello world)"
before=$(cpu_split "$URL" "$HELLO")
out=$(wrk -t2 -c64 -d"$DURATION" --latency "http://$P:$((BASE + 99))/")
after=$(cpu_split "$URL" "$HELLO")
echo "$out" | grep -E 'Requests/sec|Latency|99%|Non-2xx|Socket' | tee "$DATA/hello.out"
read -r own _ < <(per_request "$before" "$after" "$(echo "$out" | awk '/requests in/ {print $1}')")
echo "CPU per request: hello world $own us"
awk '/Requests\/sec/ {r[FILENAME] = $2} END {for (f in r) if (f ~ /read/) a = r[f]; else b = r[f]; printf "GET /patients/{id} / hello world: %.1f%%\n", 100 * a / b}' "$DATA/read.out" "$DATA/hello.out"
