#!/usr/bin/env bash
# GET /api/patients/{id} through the gateway, the same request straight to the patient
# service, and through nginx proxying the patient service's HTTP port: `pms all` on a fresh
# PostgreSQL database (dropped afterwards), wrk -t2 -c64 each, on loopback. Prints
# requests/s, p50, p99, the CPU per request (pms, with SEPARATE=1 the gateway's process apart;
# nginx; PostgreSQL's backends) and the ratios, and each proxy's hop as CPU per request over
# the direct path; figures, not assertions. Rate limits are raised for
# the run; the token check and the audit write per read stay. IN_PROCESS=1 runs the gateway
# with --gateway-in-process (it wraps the services' endpoint sets: no gRPC hop). SEPARATE=1
# runs every service as its own `pms <service>` process (broker, auth, billing, patient,
# analytics, gateway; plain text, as ops/cluster with Plain), the gateway reaching the patient
# service over gRPC. BIN picks the build (default ./bin/pms); KEEP=1 keeps the logs' folder.
# PPROF=<file> saves a CPU profile of `pms all` (with SEPARATE=1: of the gateway's process)
# under each load of the first round, as <file>.gateway, .direct and .nginx, and what it
# allocated meanwhile as <file>.<run>.allocs.
#
# Fairness: every path is first warmed up (WARMUP, default 3s each, not counted: the first
# load on a fresh process opens its database connections, grows its heap and prepares its
# statements, and whichever path ran first used to carry that in its p99), then measured
# ROUNDS times (default 3), the order rotating each round so that no path always runs first
# or last. The summary is each path's median requests/s and median p99, and issue 20 item 3's
# two conditions on them: gateway >= 1.0x nginx (1.2x in process) and gateway p99 <= nginx's.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/bench/lib.sh
. ops/bench/lib.sh
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
PG=${PMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=benchgw_$$
DURATION=${DURATION:-10s}
TMP=$(mktemp -d)
PID= NPID=
PIDS=()
cleanup() {
	[ -n "$NPID" ] && kill "$NPID" 2>/dev/null || true
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	# The separate processes, the gateway first and the broker last.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null && wait "${PIDS[i]}" 2>/dev/null || true; done
	psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
	[ -n "${KEEP:-}" ] && echo "kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
psql "$PG" -qc "CREATE DATABASE $DB"
URL=$(echo "$PG" | sed -E "s#/[^/?]+(\?|$)#/$DB\1#")
B=${BASE_PORT:-15000}
GW=127.0.0.1:$((B + 4)) PAT=127.0.0.1:$((B + 0)) NG=127.0.0.1:$((B + 80))
BIN=${BIN:-./bin/pms}
if [ -n "${SEPARATE:-}" ]; then
	# Every service its own process, as ops/cluster runs them (plain text, as `pms all` here):
	# the broker first, then auth, billing, patient, analytics and the gateway, each one
	# started once the one before it is ready.
	PIDS=()
	K=127.0.0.1:$((B + 92))
	common() {
		echo "$1 --data-dir=$TMP/$1 --database-url=$URL --log-level=error --rate-limit=0 --kafka-brokers=$K --kafka-addr=$K" \
			"--kafka-credentials=$TMP/kafka-credentials --auth-jwks-url=http://127.0.0.1:$((B + 5))/.well-known/jwks.json" \
			"--auth-revocations-addr=127.0.0.1:$((B + 15)) --database-max-conns=${CONNS:-16}"
	}
	# start NAME ADMIN ARGS...: starts one process and waits for its /readyz (the broker: its port).
	start() {
		local name=$1 admin=$2
		shift 2
		# shellcheck disable=SC2068
		PMS_BOOTSTRAP_ADMIN_PASSWORD=operator-passphrase-0123 "$BIN" $@ 2>"$TMP/$name.log" &
		PIDS+=($!)
		for _ in $(seq 1 300); do
			if [ "$name" = broker ]; then (exec 3<>"/dev/tcp/${K%:*}/${K#*:}") 2>/dev/null && break
			else curl -sf "http://$admin/readyz" >/dev/null && break; fi
			sleep 0.1
		done
	}
	start broker "" broker --data-dir="$TMP/broker" --kafka-addr="$K" --kafka-credentials="$TMP/kafka-credentials" --log-level=error
	start auth 127.0.0.1:$((B + 25)) $(common auth) --http-addr=127.0.0.1:$((B + 5)) --grpc-addr=127.0.0.1:$((B + 15)) \
		--admin-addr=127.0.0.1:$((B + 25)) --bootstrap-admin-email=admin@bench.local
	start billing 127.0.0.1:$((B + 21)) $(common billing) --http-addr=127.0.0.1:$((B + 1)) --grpc-addr=127.0.0.1:$((B + 11)) --admin-addr=127.0.0.1:$((B + 21))
	start patient 127.0.0.1:$((B + 20)) $(common patient) --http-addr=$PAT --grpc-addr=127.0.0.1:$((B + 10)) --admin-addr=127.0.0.1:$((B + 20)) \
		--billing-addr=127.0.0.1:$((B + 11))
	start analytics 127.0.0.1:$((B + 22)) $(common analytics) --http-addr=127.0.0.1:$((B + 2)) --grpc-addr=127.0.0.1:$((B + 12)) --admin-addr=127.0.0.1:$((B + 22))
	start gateway 127.0.0.1:$((B + 24)) $(common gateway) --http-addr=$GW --admin-addr=127.0.0.1:$((B + 24)) --gateway-client-rate=0 ${PPROF:+--pprof} \
		--patient-addr=127.0.0.1:$((B + 10)) --billing-addr=127.0.0.1:$((B + 11)) --auth-addr=127.0.0.1:$((B + 15)) --analytics-addr=127.0.0.1:$((B + 12))
else
PMS_BOOTSTRAP_ADMIN_PASSWORD=operator-passphrase-0123 "$BIN" all --database-url="$URL" --data-dir="$TMP/data" \
	--bootstrap-admin-email=admin@bench.local --log-level=error --rate-limit=0 --gateway-client-rate=0 \
	--kafka-addr=127.0.0.1:$((B + 92)) \
	--patient-http-addr=$PAT --patient-grpc-addr=127.0.0.1:$((B + 10)) --patient-admin-addr=127.0.0.1:$((B + 20)) \
	--billing-http-addr=127.0.0.1:$((B + 1)) --billing-grpc-addr=127.0.0.1:$((B + 11)) --billing-admin-addr=127.0.0.1:$((B + 21)) \
	--auth-http-addr=127.0.0.1:$((B + 5)) --auth-grpc-addr=127.0.0.1:$((B + 15)) --auth-admin-addr=127.0.0.1:$((B + 25)) \
	--analytics-http-addr=127.0.0.1:$((B + 2)) --analytics-grpc-addr=127.0.0.1:$((B + 12)) --analytics-admin-addr=127.0.0.1:$((B + 22)) \
	--gateway-http-addr=$GW --gateway-admin-addr=127.0.0.1:$((B + 24)) ${IN_PROCESS:+--gateway-in-process} \
	${PPROF:+--pprof} 2>"$TMP/pms.log" &
PID=$!
fi
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$((B + 24))/readyz" >/dev/null && curl -sf "http://127.0.0.1:$((B + 20))/readyz" >/dev/null && break; sleep 0.05; done
TOKEN=$(curl -sf -XPOST "http://$GW/auth/login" -H 'Content-Type: application/json' \
	-d '{"email":"admin@bench.local","password":"operator-passphrase-0123"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
ID=$(curl -sf -XPOST "http://$GW/api/patients" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
	-d '{"name":"Bench","email":"bench@example.org","address":"x","dateOfBirth":"1990-01-01"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')

start_nginx "$NG" "$PAT" "$TMP"
for _ in $(seq 1 100); do curl -s -o /dev/null "http://$NG/api/patients/$ID" && break; sleep 0.05; done

# cpu_sample: "pms gateway nginx | backends" ticks so far: every pms process (PID, or PIDS with
# SEPARATE=1), the gateway's own process (SEPARATE=1 only), nginx's master and workers, and
# the PostgreSQL backends of the bench's database (cpu_split, of no process: pid 0).
cpu_sample() {
	local gw=0
	[ -n "${SEPARATE:-}" ] && gw=$(proc_ticks "${PIDS[-1]}")
	# shellcheck disable=SC2046
	echo "$(proc_ticks ${PID:-} "${PIDS[@]}") $gw $(proc_ticks "$NPID" $(pgrep -P "$NPID")) | $(cpu_split "$URL" 0)"
}
# cpu_per_request BEFORE AFTER REQUESTS sets CPU_PMS, CPU_GW, CPU_NGINX, CPU_PG and CPU_ALL:
# microseconds of CPU per request between two cpu_samples.
cpu_per_request() {
	read -r CPU_PMS CPU_GW CPU_NGINX < <(echo "${1%%|*} ${2%%|*} $3 $HZ" |
		awk '{n = ($7 > 0 ? $7 : 1); f = 1e6 / $8 / n; printf "%.0f %.0f %.0f\n", ($4 - $1) * f, ($5 - $2) * f, ($6 - $3) * f}')
	read -r _ CPU_PG < <(per_request "${1#*|}" "${2#*|}" "$3")
	CPU_ALL=$((CPU_PMS + CPU_NGINX + CPU_PG))
}
# run NAME URL [DURATION]: one wrk run; prints and records requests/s, p50, p99 (in ms) and
# the CPU per request.
declare -A RPS P50 P99 CPU
run() {
	local out prof= d=${3:-$DURATION} before
	if [ -n "${PPROF:-}" ] && [ -z "${3:-}" ] && [ ! -e "$PPROF.$1" ]; then
		# The profile covers the middle of the load: it starts a second in and ends before wrk.
		(sleep 1 && curl -sf -o "$PPROF.$1.allocs" "http://127.0.0.1:$((B + 24))/debug/pprof/allocs?seconds=$((${d%s} - 3))") &
		prof=$!
		(sleep 1 && curl -sf -o "$PPROF.$1" "http://127.0.0.1:$((B + 24))/debug/pprof/profile?seconds=$((${d%s} - 3))") &
		prof="$prof $!"
	fi
	before=$(cpu_sample)
	out=$(wrk -t2 -c64 -d"$d" --latency -H "Authorization: Bearer $TOKEN" "$2")
	cpu_per_request "$before" "$(cpu_sample)" "$(echo "$out" | awk '/requests in/ {print $1}')"
	CPU[$1]=$CPU_ALL
	RPS[$1]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	P50[$1]=$(echo "$out" | awk '$1 == "50%" {print $2}')
	P99[$1]=$(wrk_p99 "$out")
	local bad
	bad=$(wrk_bad "$out")
	# shellcheck disable=SC2086
	[ -z "$prof" ] || wait $prof
	printf '%-8s %10s req/s   p50 %-9s p99 %8sms   non-2xx/socket errors %s\n' "$1" "${RPS[$1]}" "${P50[$1]}" "${P99[$1]}" "$bad"
	printf '         CPU per request: %s us in all = pms %s%s + nginx %s + PostgreSQL %s\n' "$CPU_ALL" "$CPU_PMS" \
		"$([ -n "${SEPARATE:-}" ] && echo " (its gateway process $CPU_GW)")" "$CPU_NGINX" "$CPU_PG"
}
MODE="pms all${IN_PROCESS:+, the gateway in process}"
[ -n "${SEPARATE:-}" ] && MODE="every service its own process"
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3s}
declare -A URLS=([gateway]="http://$GW/api/patients/$ID" [direct]="http://$PAT/patients/$ID" [nginx]="http://$NG/api/patients/$ID")
ORDER=(gateway direct nginx)
echo "wrk -t2 -c64 GET /patients/{id}, $MODE on PostgreSQL (token check and audit write per read)"
echo "warm-up, $WARMUP each (not counted)"
for p in "${ORDER[@]}"; do run "$p" "${URLS[$p]}" "$WARMUP"; done
measure() { run "$1" "${URLS[$1]}"; }
rounds measure "${ORDER[@]}"
# The hop's own CPU, item 3's first words ("the gateway's hop costs less CPU than nginx's"):
# what a request through each proxy costs the machine beyond the same request sent direct.
awk -v g="${MC[gateway]}" -v d="${MC[direct]}" -v n="${MC[nginx]}" 'BEGIN {
	printf "the hop'"'"'s CPU per request: gateway %+.0f us, nginx %+.0f us over direct (gateway <= nginx: %s)\n", g - d, n - d, (g <= n) ? "met" : "not met"
}'
TARGET=1.0
[ -n "${IN_PROCESS:-}" ] && TARGET=1.2
awk -v g="${MR[gateway]}" -v d="${MR[direct]}" -v n="${MR[nginx]}" -v gp="${MP[gateway]}" -v np="${MP[nginx]}" -v t="$TARGET" 'BEGIN {
	printf "gateway/direct %.2f (target >= 0.8)   gateway/nginx %.2f (target >= %.1f: %s)\n", g / d, g / n, t, (g / n >= t) ? "met" : "not met"
	printf "gateway p99 %.2fms, nginx p99 %.2fms: gateway/nginx %.2f (target <= 1.0: %s)\n", gp, np, gp / np, (gp <= np) ? "met" : "not met"
}'
