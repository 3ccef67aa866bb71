#!/usr/bin/env bash
# The floor under issue 20 item 3, with nothing of PMS in the path (ops/bench/hop): GET
# /patients/{id} answered by a bare net/http server with a fixed record (direct), through
# nginx proxying it (nginx, the configuration gateway.sh uses), through a bare Go gateway
# calling a bare gRPC server for the same record (gateway: net/http + grpc-go and nothing
# else), and through net/http's own reverse proxy (proxy). wrk -t2 -c64 each on loopback,
# warmed up, then ROUNDS rounds (default 3) of DURATION (default 10s) with the order rotating.
# Prints each path's median requests/s, p99 and CPU a request (every process of the path, wrk
# not counted) and each hop's CPU over direct: figures, not assertions. If the bare gateway's
# hop costs more than nginx's, no gateway on net/http and grpc-go meets item 3's ratio,
# whatever its own middleware costs.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/bench/lib.sh
. ops/bench/lib.sh
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx missing: apt-get install -y nginx" >&2; exit 1; }
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3s}
B=${BASE_PORT:-16000}
TMP=$(mktemp -d)
NPID=
PIDS=()
cleanup() {
	[ -n "$NPID" ] && kill "$NPID" 2>/dev/null || true
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
go build -o "$TMP/hop" ./ops/bench/hop
UP=127.0.0.1:$B GRPC=127.0.0.1:$((B + 1)) GW=127.0.0.1:$((B + 2)) PX=127.0.0.1:$((B + 3)) NG=127.0.0.1:$((B + 4))
declare -A PID
hop() { "$TMP/hop" -role="$1" -addr="$2" ${3:+-upstream="$3"} ${HOP_FLAGS:-} 2>"$TMP/$1.log" & PID[$1]=$!; PIDS+=($!); }
hop http-upstream "$UP"
hop grpc-upstream "$GRPC"
hop gateway "$GW" "$GRPC"
hop proxy "$PX" "$UP"
start_nginx "$NG" "$UP" "$TMP"
ID=7f3c2a8e-6d1b-4c5e-9a0f-2b8d4e6c1a37
declare -A URLS=([direct]="http://$UP/patients/$ID" [nginx]="http://$NG/api/patients/$ID"
	[gateway]="http://$GW/api/patients/$ID" [proxy]="http://$PX/api/patients/$ID")
for u in "${URLS[@]}"; do
	for _ in $(seq 1 100); do curl -sf -o /dev/null "$u" && break; sleep 0.05; done
	curl -sf -o /dev/null "$u" || { echo "not answering: $u" >&2; exit 1; }
done
# The processes each path runs through (the upstream it ends at included).
declare -A PROCS=([direct]="${PID[http-upstream]}" [nginx]="$NPID ${PID[http-upstream]}"
	[gateway]="${PID[gateway]} ${PID[grpc-upstream]}" [proxy]="${PID[proxy]} ${PID[http-upstream]}")
# ticks PATH: the CPU ticks used so far by each of the path's processes, one figure each
# (nginx's master and workers as one).
ticks() {
	local p
	for p in ${PROCS[$1]}; do
		# shellcheck disable=SC2046
		if [ "$p" = "$NPID" ]; then proc_ticks "$p" $(pgrep -P "$NPID"); else proc_ticks "$p"; fi
	done | tr '\n' ' '
}
declare -A RPS P99 CPU
run() {
	local p=$1 d=$2 before out n
	before=$(ticks "$p")
	out=$(wrk -t2 -c64 -d"$d" --latency "${URLS[$p]}")
	n=$(echo "$out" | awk '/requests in/ {print $1}')
	# The path's CPU a request, and how it splits between its processes (the first the proxy,
	# the second the upstream).
	read -r CPU[$p] SPLIT < <(awk -v a="$before" -v b="$(ticks "$p")" -v n="$n" -v hz="$HZ" 'BEGIN {
		k = split(a, x, " "); split(b, y, " "); n = n > 0 ? n : 1; t = 0; s = ""
		for (i = 1; i <= k; i++) { c = (y[i] - x[i]) * 1e6 / hz / n; t += c; s = s (i > 1 ? "+" : "") sprintf("%.1f", c) }
		printf "%.1f %s\n", t, s
	}')
	RPS[$p]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	P99[$p]=$(wrk_p99 "$out")
	local bad
	bad=$(wrk_bad "$out")
	printf '%-8s %10s req/s   p99 %8sms   CPU %6s us/request (%s)   non-2xx/socket errors %s\n' "$p" "${RPS[$p]}" "${P99[$p]}" "${CPU[$p]}" "$SPLIT" "$bad"
}
ORDER=(direct nginx gateway proxy)
echo "wrk -t2 -c64 GET /patients/{id}: bare processes (ops/bench/hop), no PMS code in any path"
echo "warm-up, $WARMUP each (not counted)"
for p in "${ORDER[@]}"; do run "$p" "$WARMUP" >/dev/null; done
measure() { run "$1" "$DURATION"; }
rounds measure "${ORDER[@]}"
awk -v d="${MC[direct]}" -v n="${MC[nginx]}" -v g="${MC[gateway]}" -v x="${MC[proxy]}" \
	-v rn="${MR[nginx]}" -v rg="${MR[gateway]}" -v rx="${MR[proxy]}" 'BEGIN {
	printf "the hop'"'"'s CPU a request over direct: nginx %+.1f us, bare gRPC gateway %+.1f us, net/http reverse proxy %+.1f us\n", n - d, g - d, x - d
	printf "bare gRPC gateway/nginx %.2f, net/http reverse proxy/nginx %.2f (requests/s)\n", rg / rn, rx / rn
}'
