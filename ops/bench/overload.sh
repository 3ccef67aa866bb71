#!/usr/bin/env bash
# Issue 20 item 5, "load never trips a breaker": `pms all` on PostgreSQL; wrk measures the
# gateway's peak on GET /api/patients/{id} (-c32, 10 s), then vegeta drives it open-loop at
# twice that rate for DURATION (default 30s), once with admission control on (the default,
# --gateway-max-in-flight=128 and the front door's --gateway-max-http-in-flight=512, FRONT) and
# once both off (0). Prints the answers by status, the latency,
# how often the patient upstream's breaker opened (the gateway's warn log) and how many calls
# admission control shed. Figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/bench/lib.sh
. ops/bench/lib.sh
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
VEGETA=${VEGETA:-$(command -v vegeta || echo "$(go env GOPATH)/bin/vegeta")}
[ -x "$VEGETA" ] || { echo "vegeta missing: go install github.com/tsenart/vegeta/v12@v12.13.0" >&2; exit 1; }
BIN=${BIN:-bin/pms}
PG=${PMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DURATION=${DURATION:-30s}
BASE=${BASE_PORT:-15300}
P=127.0.0.1
for limit in ${LIMITS:-128 0}; do
	DB=bench_overload_$$_$limit
	DATA=$(mktemp -d)
	psql "$PG" -qc "CREATE DATABASE $DB"
	URL=$(echo "$PG" | sed -E "s#/[^/?]+(\?|$)#/$DB\1#")
	front=${FRONT:-512}
	[ "$limit" = 0 ] && front=0 # off: neither the front door nor per-upstream admission
	PMS_EXTRA="--gateway-client-rate=0 --gateway-max-in-flight=$limit --gateway-max-http-in-flight=$front --log-level=warn" start_pms_all "$BIN" "$URL" "$DATA" "$BASE"
	GW=http://$P:$((BASE + 4))
	ID=$(curl -sf -XPOST "$GW/api/patients" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
		-d '{"name":"Overload Person","email":"overload@example.org","address":"x","dateOfBirth":"1990-01-01"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
	PEAK=$(wrk -t2 -c32 -d10s -H "Authorization: Bearer $TOKEN" "$GW/api/patients/$ID" | awk '/Requests\/sec/ {printf "%d", $2}')
	RATE=$((PEAK * 2))
	echo "== --gateway-max-in-flight=$limit: peak $PEAK req/s (wrk -c32); vegeta at $RATE req/s for $DURATION"
	printf 'GET %s/api/patients/%s\nAuthorization: Bearer %s\n' "$GW" "$ID" "$TOKEN" |
		"$VEGETA" attack -rate="$RATE" -duration="$DURATION" -timeout=20s | "$VEGETA" report -type=text | grep -E 'Requests|Latencies|Success|Status Codes'
	echo "breaker opened: $(grep -cE 'circuit breaker changed state.*to(=|":")open' "$DATA/pms.log" || true) times; shed by admission control: $(curl -sf "http://$P:$((BASE + 204))/metrics" | awk '/^pms_gateway_admission_shed_total\{upstream="patient"\}/ {print $2}'); shed at the front door: $(curl -sf "http://$P:$((BASE + 204))/metrics" | awk '/^pms_gateway_front_shed_total/ {print $2}')"
	kill "$PID"; wait "$PID" 2>/dev/null || true
	psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
	rm -rf "$DATA"
done
