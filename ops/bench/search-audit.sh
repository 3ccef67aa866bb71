#!/usr/bin/env bash
# Issue 17's search budget, end to end: wrk -t2 -c8 on GET /patients?q=Bench&limit=500 (a
# 500-row page, every record disclosed and audited) against the patient service of `pms all`
# on PostgreSQL (a fresh database, dropped afterwards) seeded with 500 patients. BIN picks the
# binary (default bin/pms), so a build of an older commit runs beside this one in the same
# sitting:
#   git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/pms-old ./cmd/pms)
#   for b in /tmp/pms-old bin/pms /tmp/pms-old bin/pms; do BIN=$b bash ops/bench/search-audit.sh; done
# Prints requests/s, latency, the non-2xx count and the CPU each request cost pms and its
# PostgreSQL backends (steadier than requests/s on a shared machine; pms and PostgreSQL apart): figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/bench/lib.sh
. ops/bench/lib.sh
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
BIN=${BIN:-bin/pms}
PG=${PMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=bench_search_$$
DURATION=${DURATION:-10s}
BASE=${BASE_PORT:-15000}
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
start_pms_all "$BIN" "$URL" "$DATA" "$BASE"
for i in $(seq 1 500); do
	curl -sf -o /dev/null -XPOST "http://$P:$((BASE + 0))/patients" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
		-d '{"name":"Bench Person '"$i"'","email":"bench'"$i"'@example.org","address":"x","dateOfBirth":"1990-01-01"}'
done
# The registrations' work after their answers (billing opening the 500 accounts, the outbox
# relay, analytics) ends before the load starts, so its CPU is not counted as the searches'.
for _ in $(seq 1 300); do
	settled=$(psql "$URL" -Atc "SELECT (SELECT count(*) FROM billing.accounts) >= 500 AND (SELECT count(*) FROM patient.outbox WHERE published_at IS NULL) = 0" 2>/dev/null || echo f)
	[ "$settled" = t ] && break
	sleep 0.1
done
# PRE_SQL (optional): SQL run on the bench database before the load, for experiments.
if [ -n "${PRE_SQL:-}" ]; then psql "$URL" -qc "$PRE_SQL"; fi
# cpu_ticks: the CPU time (clock ticks, user + system) used so far by pms and by the
# PostgreSQL backends serving the bench database. On a shared machine requests/s follows
# whatever else runs; the CPU each request costs does much less. It prints two figures: pms's
# ticks, then its PostgreSQL backends'.
cpu_ticks() {
	local pids
	pids="$PID $(psql "$URL" -Atc "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")"
	for p in $pids; do awk "{print \$14 + \$15}" "/proc/$p/stat" 2>/dev/null || true; done | awk "NR==1{a=\$1} {s += \$1} END {print a+0, s - a}"
}
echo "$BIN: wrk -t2 -c8 -d$DURATION GET /patients?q=Bench&limit=500 (pms all on PostgreSQL, 500 records per page)"
before=$(cpu_ticks)
out=$(wrk -t2 -c8 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://$P:$((BASE + 0))/patients?q=Bench&limit=500")
after=$(cpu_ticks)
echo "$out" | grep -E 'Requests/sec|Latency|50%|99%|Non-2xx|Socket'
requests=$(echo "$out" | awk '/requests in/ {print $1}')
echo "$before $after $requests $(getconf CLK_TCK)" | awk '{printf "CPU per request: %.2f ms: pms %.2f ms, PostgreSQL %.2f ms (%d requests)\n", ($3 + $4 - $1 - $2) * 1000 / $6 / $5, ($3 - $1) * 1000 / $6 / $5, ($4 - $2) * 1000 / $6 / $5, $5}'
