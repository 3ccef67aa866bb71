#!/usr/bin/env bash
# Gateway read throughput with TLS + mTLS off and on, in one run: `pms all` on a fresh
# PostgreSQL database, plain, then with `pms certs` certificates (every listener TLS, the
# gateway → patient gRPC mutual TLS); wrk -t2 -c64 GET /api/patients/{id} on kept-alive
# connections, then with a new connection per request (Connection: close), whose difference
# is the cost of a handshake per new client; and the time from start to ready. Figures, not
# assertions; rate limits raised; non-2xx answers are printed if any.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
PG=${PMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DURATION=${DURATION:-10s}
TMP=$(mktemp -d)
PID=
DBS=()
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	for db in "${DBS[@]}"; do psql "$PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
./bin/pms certs --dir "$TMP/certs" >/dev/null
CA=$TMP/certs/ca.pem

# start MODE BASE: pms all on ports BASE..; sets SCHEME, CURL, GW, start time in STARTED_MS.
start() {
	local mode=$1 B=$2 db=benchtls_${1}_$$
	DBS+=("$db")
	psql "$PG" -qc "CREATE DATABASE $db"
	local url tlsflags=()
	url=$(echo "$PG" | sed -E "s#/[^/?]+(\?|$)#/$db\1#")
	SCHEME=http CURL=(curl -sf)
	if [ "$mode" = tls ]; then
		tlsflags=(--tls-cert="$TMP/certs/all.pem" --tls-key="$TMP/certs/all-key.pem" --tls-ca="$CA")
		SCHEME=https CURL=(curl -sf --cacert "$CA")
	fi
	GW=127.0.0.1:$((B + 4))
	local t0
	t0=$(date +%s%N)
	PMS_BOOTSTRAP_ADMIN_PASSWORD=operator-passphrase-0123 ./bin/pms all --database-url="$url" --data-dir="$TMP/data-$mode" \
		--bootstrap-admin-email=admin@bench.local --log-level=error --rate-limit=0 --gateway-client-rate=0 "${tlsflags[@]}" \
		--kafka-addr=127.0.0.1:$((B + 92)) \
		--patient-http-addr=127.0.0.1:$((B + 0)) --patient-grpc-addr=127.0.0.1:$((B + 10)) --patient-admin-addr=127.0.0.1:$((B + 20)) \
		--billing-http-addr=127.0.0.1:$((B + 1)) --billing-grpc-addr=127.0.0.1:$((B + 11)) --billing-admin-addr=127.0.0.1:$((B + 21)) \
		--auth-http-addr=127.0.0.1:$((B + 5)) --auth-grpc-addr=127.0.0.1:$((B + 15)) --auth-admin-addr=127.0.0.1:$((B + 25)) \
		--analytics-http-addr=127.0.0.1:$((B + 2)) --analytics-grpc-addr=127.0.0.1:$((B + 12)) --analytics-admin-addr=127.0.0.1:$((B + 22)) \
		--gateway-http-addr="$GW" --gateway-admin-addr=127.0.0.1:$((B + 24)) 2>"$TMP/pms-$mode.log" &
	PID=$!
	for _ in $(seq 1 400); do "${CURL[@]}" "$SCHEME://127.0.0.1:$((B + 24))/readyz" >/dev/null && "${CURL[@]}" "$SCHEME://127.0.0.1:$((B + 20))/readyz" >/dev/null && break; sleep 0.025; done
	STARTED_MS=$((($(date +%s%N) - t0) / 1000000))
	TOKEN=$("${CURL[@]}" -XPOST "$SCHEME://$GW/auth/login" -H 'Content-Type: application/json' \
		-d '{"email":"admin@bench.local","password":"operator-passphrase-0123"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
	ID=$("${CURL[@]}" -XPOST "$SCHEME://$GW/api/patients" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
		-d '{"name":"Bench","email":"bench@example.org","address":"x","dateOfBirth":"1990-01-01"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
}

stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

# run NAME [wrk args...]: one wrk run against the patient read through the gateway.
run() {
	local name=$1 out
	shift
	out=$(wrk -t2 -c64 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$@" "$SCHEME://$GW/api/patients/$ID")
	RPS[$name]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	if echo "$out" | grep -q 'Non-2xx'; then echo "$name: $(echo "$out" | grep 'Non-2xx')" >&2; fi
	printf '%-16s %10s req/s   p50 %-9s p99 %s\n' "$name" "${RPS[$name]}" "$(echo "$out" | awk '$1 == "50%" {print $2}')" "$(echo "$out" | awk '$1 == "99%" {print $2}')"
}

declare -A RPS START
for mode in plain tls; do
	base=16000
	[ "$mode" = tls ] && base=16200
	start "$mode" "$base"
	START[$mode]=$STARTED_MS
	echo "$mode: pms all ready in ${STARTED_MS} ms"
	run "$mode/keepalive"
	run "$mode/new-conn" -H "Connection: close"
	stop
done
awk -v a="${RPS[tls/keepalive]}" -v b="${RPS[plain/keepalive]}" -v c="${RPS[tls/new-conn]}" -v d="${RPS[plain/new-conn]}" 'BEGIN {
	printf "tls/plain kept-alive %.2f   new connection per request %.2f   a TLS handshake costs ≈ %.2f ms of CPU (2 busy cores)\n", a / b, c / d, (1000 / c - 1000 / d) * 2
}'
