#!/usr/bin/env bash
# GET /api/patients/{id} through the gateway, the same request straight to the patient
# service, and through nginx proxying the patient service's HTTP port: `pms all` on a fresh
# PostgreSQL database (dropped afterwards), wrk -t2 -c64 each, on loopback. Prints
# requests/s, p50, p99 and the ratios; figures, not assertions. Rate limits are raised for
# the run; the token check and the audit write per read stay. IN_PROCESS=1 runs the gateway
# with --gateway-in-process (it wraps the services' endpoint sets: no gRPC hop).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx missing: apt-get install -y nginx" >&2; exit 1; }
PG=${PMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=benchgw_$$
DURATION=${DURATION:-15s}
TMP=$(mktemp -d)
PID= NPID=
cleanup() {
	[ -n "$NPID" ] && kill "$NPID" 2>/dev/null || true
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
psql "$PG" -qc "CREATE DATABASE $DB"
URL=$(echo "$PG" | sed -E "s#/[^/?]+(\?|$)#/$DB\1#")
B=${BASE_PORT:-15000}
GW=127.0.0.1:$((B + 4)) PAT=127.0.0.1:$((B + 0)) NG=127.0.0.1:$((B + 80))
PMS_BOOTSTRAP_ADMIN_PASSWORD=operator-passphrase-0123 ./bin/pms all --database-url="$URL" --data-dir="$TMP/data" \
	--bootstrap-admin-email=admin@bench.local --log-level=error --rate-limit=0 --gateway-client-rate=0 \
	--kafka-addr=127.0.0.1:$((B + 92)) \
	--patient-http-addr=$PAT --patient-grpc-addr=127.0.0.1:$((B + 10)) --patient-admin-addr=127.0.0.1:$((B + 20)) \
	--billing-http-addr=127.0.0.1:$((B + 1)) --billing-grpc-addr=127.0.0.1:$((B + 11)) --billing-admin-addr=127.0.0.1:$((B + 21)) \
	--auth-http-addr=127.0.0.1:$((B + 5)) --auth-grpc-addr=127.0.0.1:$((B + 15)) --auth-admin-addr=127.0.0.1:$((B + 25)) \
	--analytics-http-addr=127.0.0.1:$((B + 2)) --analytics-grpc-addr=127.0.0.1:$((B + 12)) --analytics-admin-addr=127.0.0.1:$((B + 22)) \
	--gateway-http-addr=$GW --gateway-admin-addr=127.0.0.1:$((B + 24)) ${IN_PROCESS:+--gateway-in-process} 2>"$TMP/pms.log" &
PID=$!
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$((B + 24))/readyz" >/dev/null && curl -sf "http://127.0.0.1:$((B + 20))/readyz" >/dev/null && break; sleep 0.05; done
TOKEN=$(curl -sf -XPOST "http://$GW/auth/login" -H 'Content-Type: application/json' \
	-d '{"email":"admin@bench.local","password":"operator-passphrase-0123"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
ID=$(curl -sf -XPOST "http://$GW/api/patients" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
	-d '{"name":"Bench","email":"bench@example.org","address":"x","dateOfBirth":"1990-01-01"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')

cat >"$TMP/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log error;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $TMP/body; proxy_temp_path $TMP/proxy;
	fastcgi_temp_path $TMP/fcgi; uwsgi_temp_path $TMP/uwsgi; scgi_temp_path $TMP/scgi;
	upstream patient { server $PAT; keepalive 64; }
	server {
		listen $NG;
		location /api/ {
			proxy_pass http://patient/;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
		}
	}
}
CONF
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP" &
NPID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://$NG/api/patients/$ID" && break; sleep 0.05; done

# run NAME URL: one wrk run; prints and records requests/s, p50, p99.
declare -A RPS P50 P99
run() {
	local out
	out=$(wrk -t2 -c64 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$2")
	RPS[$1]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	P50[$1]=$(echo "$out" | awk '$1 == "50%" {print $2}')
	P99[$1]=$(echo "$out" | awk '$1 == "99%" {print $2}')
	if echo "$out" | grep -q 'Non-2xx'; then echo "$1: $(echo "$out" | grep 'Non-2xx')" >&2; fi
	printf '%-8s %10s req/s   p50 %-9s p99 %s\n' "$1" "${RPS[$1]}" "${P50[$1]}" "${P99[$1]}"
}
echo "wrk -t2 -c64 -d$DURATION GET /patients/{id}, pms all on PostgreSQL (token check and audit write per read)${IN_PROCESS:+, the gateway in process}"
run gateway "http://$GW/api/patients/$ID"
run direct "http://$PAT/patients/$ID"
run nginx "http://$NG/api/patients/$ID"
awk -v g="${RPS[gateway]}" -v d="${RPS[direct]}" -v n="${RPS[nginx]}" \
	'BEGIN { printf "gateway/direct %.2f (target >= 0.8)   gateway/nginx %.2f\n", g / d, g / n }'
