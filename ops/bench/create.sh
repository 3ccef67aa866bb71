#!/usr/bin/env bash
# Issue 20 item 4, "writes at the speed of their SQL", in one sitting:
#  1. pgbench -c CLIENTS -j2 -M prepared for DURATION running ops/bench/create.pgbench (the
#     statements one POST /patients runs, in its transaction) on a fresh database migrated by
#     `pms migrate` (its patient schema);
#  2. `pms all` (BIN, default bin/pms) on another fresh database, and wrk -t2 -c CLIENTS for
#     DURATION on POST /patients straight to the patient service, then on POST /api/patients
#     through the gateway (ops/bench/create.lua: a new email per request, so every create is a
#     new patient). Then it waits (up to 60 s) for billing to have opened an account for every
#     patient (they are opened off the request's path: docs/billing.md).
# Prints tx/s, req/s, p50/p99, non-2xx, the CPU per create (pms and its PostgreSQL backends;
# for pgbench its backends only; steadier than req/s on a shared machine) and create/pgbench
# ratios: figures, not assertions.
# BASELINE=<another pms binary> runs step 2 with it too, after this one (same sitting):
#   git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/pms-old ./cmd/pms)
#   BASELINE=/tmp/pms-old bash ops/bench/create.sh
# PPROF=<file> saves a 10 s CPU profile of the patient service's process under the direct load.
# TABLES=1 also prints, per build, the row writes per create of every table that had any
# (schema.table: inserts+updates+deletes per patient registered): where the writes go.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/bench/lib.sh
. ops/bench/lib.sh
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)
[ -x "$PGBENCH" ] || { echo "pgbench missing: apt-get install -y postgresql-contrib" >&2; exit 1; }
BIN=${BIN:-bin/pms}
PG=${PMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-32}
BASE=${BASE_PORT:-14800}
P=127.0.0.1
DB= PID= DATA=
cleanup() {
	if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	if [ -n "$DB" ]; then psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true; fi
	if [ -n "$DATA" ]; then rm -rf "$DATA"; fi
	PID= DB= DATA=
}
trap cleanup EXIT
url_of() { echo "$PG" | sed -E "s#/[^/?]+(\?|$)#/$1\1#"; }
# cpu_ticks URL [PID]: CPU clock ticks (user + system) used so far by PID and by the
# PostgreSQL backends serving URL's database (lib.sh's cpu_split, summed).
cpu_ticks() { cpu_split "$1" "${2:-0}" | awk '{s = $1; for (i = 2; i <= NF; i++) { split($i, kv, ":"); s += kv[2] } print s}'; }
# reaped_ticks: CPU clock ticks of the PostgreSQL backends that have exited so far (the
# postmaster's children's times): pgbench's backends end with it, so the difference over its
# run is what its transactions cost PostgreSQL.
reaped_ticks() { awk '{print $16 + $17}' "/proc/$(pgrep -o -x postgres)/stat" 2>/dev/null || echo 0; }
# db_writes URL: the database's commits so far and its rows inserted, updated and deleted.
db_writes() {
	psql "$1" -Atc "SELECT xact_commit, (SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_all_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) FROM pg_stat_database WHERE datname = current_database()" | tr '|' ' '
}
# table_writes URL: "schema.table writes" for every user table (inserts+updates+deletes so far).
table_writes() {
	psql "$1" -Atc "SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_all_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')" | tr '|' ' '
}
rows=()
row() { rows+=("$(printf '| %-44s | %9s | %8s | %8s | %7s | %12s |' "$@")"); }

# 1. pgbench on the create's statements.
DB=bench_create_pg_$$
DATA=$(mktemp -d)
psql "$PG" -qc "CREATE DATABASE $DB"
URL=$(url_of "$DB")
"$BIN" migrate --database-url="$URL" --data-dir="$DATA" --log-level=error >/dev/null
psql "$URL" -qc "ANALYZE"
ticks0=$(reaped_ticks)
out=$(PGOPTIONS='-c search_path=patient' "$PGBENCH" -n -M prepared -c "$CLIENTS" -j 2 -T "${DURATION%s}" -r \
	-f "${SCRIPT:-ops/bench/create.pgbench}" "$URL" 2>&1)
tps=$(echo "$out" | awk '/^tps/ {printf "%.0f", $3}')
txs=$(echo "$out" | awk '/actually processed/ {print $NF}' | cut -d/ -f1)
failed=$(echo "$out" | awk '/failed transactions/ {print $5}')
lat=$(echo "$out" | awk '/latency average/ {print $4 "ms"}')
[ -n "$tps" ] || { echo "pgbench failed: $out" >&2; exit 1; }
for _ in $(seq 1 100); do # until the postmaster has reaped pgbench's backends
	[ "$(psql "$URL" -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")" = 0 ] && break
	sleep 0.1
done
sleep 0.2
pgcpu=$(echo "$ticks0 $(reaped_ticks) $txs $HZ" | awk '{printf "%.2f ms", ($2 - $1) * 1000 / $4 / ($3 > 0 ? $3 : 1)}')
row "pgbench ${SCRIPT:-create.pgbench} ($txs tx)" "$tps" "avg $lat" "" "${failed:-?}" "$pgcpu"
cleanup

# 2. POST /patients through pms, direct and through the gateway.
run_pms() {
	local bin=$1 label=$2
	DB=bench_create_$$
	DATA=$(mktemp -d)
	psql "$PG" -qc "CREATE DATABASE $DB"
	URL=$(url_of "$DB")
	PMS_EXTRA="--gateway-client-rate=0 ${PPROF:+--pprof} ${PMS_EXTRA:-}" start_pms_all "$bin" "$URL" "$DATA" "$BASE"
	[ -n "$TOKEN" ] || { echo "pms did not start: $(tail -5 "$DATA/pms.log")" >&2; exit 1; }
	local where path port c0 w0 t0
	read -r c0 w0 < <(db_writes "$URL")
	t0=$(table_writes "$URL")
	for where in direct gateway; do
		if [ "$where" = direct ]; then path=/patients port=$BASE; else path=/api/patients port=$((BASE + 4)); fi
		local prof=
		if [ -n "${PPROF:-}" ] && [ "$where" = direct ]; then
			(sleep 2; curl -sf -o "$PPROF.$label" "http://$P:$((BASE + 200))/debug/pprof/profile?seconds=10") &
			prof=$!
		fi
		local before after out rps p50 p99 bad reqs cpu
		before=$(cpu_ticks "$URL" "$PID")
		out=$(wrk -t2 -c"$CLIENTS" -d"$DURATION" --latency -s ops/bench/create.lua \
			-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "http://$P:$port$path" -- "$label$where$$")
		after=$(cpu_ticks "$URL" "$PID")
		if [ -n "$prof" ]; then wait "$prof" || true; fi
		rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
		p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
		p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
		bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
		bad=$((${bad:-0} + $(echo "$out" | awk '/Socket errors/ {gsub(",", ""); s = $4 + $6 + $8 + $10} END {print s + 0}')))
		reqs=$(echo "$out" | awk '/requests in/ {print $1}')
		cpu=$(echo "$before $after $reqs $HZ" | awk '{printf "%.2f ms", ($2 - $1) * 1000 / $4 / ($3 > 0 ? $3 : 1)}')
		row "$label POST $path ($where)" "$rps" "$p50" "$p99" "$bad" "$cpu"
		ratio+=("$label $where: $(echo "$rps $tps" | awk '{printf "%.2f", $1 / $2}')x pgbench")
	done
	# Every registered patient gets its billing account (off the request's path): poll.
	local patients accounts
	patients=$(psql "$URL" -Atc "SELECT count(*) FROM patient.patients")
	for _ in $(seq 1 600); do
		accounts=$(psql "$URL" -Atc "SELECT count(*) FROM billing.accounts")
		[ "$accounts" -ge "$patients" ] && break
		sleep 0.1
	done
	ratio+=("$label: billing accounts $accounts of $patients patients")
	# What a create costs PostgreSQL once everything it causes has run (outboxes drained,
	# events consumed): commits and row writes, every service's, per patient registered.
	for _ in $(seq 1 600); do
		[ "$(psql "$URL" -Atc "SELECT (SELECT count(*) FROM patient.outbox WHERE published_at IS NULL) + (SELECT count(*) FROM billing.outbox WHERE published_at IS NULL)")" = 0 ] && break
		sleep 0.1
	done
	sleep 2 # statistics reach pg_stat_* within a second of a transaction's end
	local c1 w1
	read -r c1 w1 < <(db_writes "$URL")
	ratio+=("$label: per create, all services: $(echo "$c0 $c1 $w0 $w1 $patients" | awk '{printf "%.1f commits, %.1f row writes (inserts, updates, deletes)", ($2 - $1) / $5, ($4 - $3) / $5}')")
	if [ -n "${TABLES:-}" ]; then
		ratio+=("$label: row writes per create by table: $( (echo "$t0" | sed 's/^/- /'; table_writes "$URL" | sed 's/^/+ /') |
			awk -v n="$patients" '{d[$2] += ($1 == "+" ? $3 : -$3)} END {for (t in d) if (d[t] > 0) printf "%s %.2f\n", t, d[t] / n}' |
			sort -k2 -nr | awk '{printf "%s%s=%s", (NR > 1 ? ", " : ""), $1, $2}')")
	fi
	cleanup
}
ratio=()
run_pms "$BIN" "${LABEL:-new}"
if [ -n "${BASELINE:-}" ]; then run_pms "$BASELINE" baseline; fi

echo "create: $CLIENTS clients, $DURATION each, PostgreSQL $(psql "$PG" -Atc 'SHOW server_version'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-44s | %9s | %8s | %8s | %7s | %12s |\n' "run" "tx|req/s" "p50" "p99" "non-2xx" "CPU/create"
printf '%s\n' "${rows[@]}"
printf '%s\n' "${ratio[@]}"
