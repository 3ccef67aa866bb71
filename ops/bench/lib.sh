# Sourced by the bench scripts: start_pms_all runs `pms all` on PostgreSQL for a wrk run.
# start_pms_all BIN URL DATA BASE starts BIN all on database URL with data folder DATA, every
# listener on 127.0.0.1:BASE+n (patient HTTP BASE, its admin BASE+200; auth HTTP BASE+5; the
# gateway BASE+4), rate limits off, the bootstrap admin bench@example.org; it sets PID, waits
# until the patient service is ready and sets TOKEN to the admin's access token. PMS_EXTRA adds
# flags (later ones win).
start_pms_all() {
	local bin=$1 url=$2 data=$3 base=$4 p=127.0.0.1
	PMS_BOOTSTRAP_ADMIN_PASSWORD=operator-passphrase-0123 "$bin" all --database-url="$url" --data-dir="$data" \
		--kafka-addr=$p:$((base + 92)) \
		--auth-http-addr=$p:$((base + 5)) --auth-grpc-addr=$p:$((base + 105)) --auth-admin-addr=$p:$((base + 205)) \
		--billing-http-addr=$p:$((base + 1)) --billing-grpc-addr=$p:$((base + 101)) --billing-admin-addr=$p:$((base + 201)) \
		--patient-http-addr=$p:$((base + 0)) --patient-grpc-addr=$p:$((base + 100)) --patient-admin-addr=$p:$((base + 200)) \
		--analytics-http-addr=$p:$((base + 2)) --analytics-grpc-addr=$p:$((base + 102)) --analytics-admin-addr=$p:$((base + 202)) \
		--gateway-http-addr=$p:$((base + 4)) --gateway-admin-addr=$p:$((base + 204)) \
		--bootstrap-admin-email=bench@example.org --rate-limit=0 --log-level=error ${PMS_EXTRA:-} 2>"$data/pms.log" &
	PID=$!
	for _ in $(seq 1 300); do curl -sf "http://$p:$((base + 200))/readyz" >/dev/null && break; sleep 0.1; done
	TOKEN=$(curl -sf -XPOST "http://$p:$((base + 5))/login" -H 'Content-Type: application/json' \
		-d '{"email":"bench@example.org","password":"operator-passphrase-0123"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
}

# proc_ticks PID...: the CPU clock ticks (user + system) the processes have used so far,
# summed (0 for a process that is gone).
proc_ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'; }

# cpu_split URL PID samples the CPU clock ticks (user + system) used so far by process PID
# and by each PostgreSQL backend serving URL's database, as "own pid:ticks pid:ticks ...".
# Two samples around a load give its CPU per request on each side (per_request), a steadier
# figure than req/s or p99 on a shared machine.
cpu_split() {
	local pids
	pids=$(psql "$1" -Atc "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	echo "$(proc_ticks "$2")" \
		"$(for p in $pids; do awk -v p="$p" '{print p ":" $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | tr '\n' ' ')"
}
HZ=$(getconf CLK_TCK)

# per_request "BEFORE" "AFTER" REQUESTS prints the CPU microseconds per request of the process
# and of the backends between two cpu_split samples, as "process backends". A backend counts
# what it used since BEFORE (all of it if it started since); one that exited in between is
# missed, which undercounts (a client hanging up mid-query costs its pool the connection).
per_request() {
	awk -v b="$1" -v a="$2" -v n="$3" -v hz="$HZ" 'BEGIN {
		nb = split(b, x, " "); for (i = 2; i <= nb; i++) { split(x[i], kv, ":"); was[kv[1]] = kv[2] }
		na = split(a, y, " "); for (i = 2; i <= na; i++) { split(y[i], kv, ":"); pg += kv[2] - was[kv[1]] }
		n = n > 0 ? n : 1
		printf "%.0f %.0f\n", (y[1] - x[1]) * 1e6 / hz / n, pg * 1e6 / hz / n
	}'
}

# start_nginx LISTEN UPSTREAM DIR runs nginx proxying LISTEN/api/... to UPSTREAM/... over
# keep-alive HTTP/1.1 (two workers, no access log: nginx at its cheapest, the yardstick of
# issue 20 item 3), its files under DIR; it sets NPID. gateway.sh and hop.sh both measure
# against this one configuration.
start_nginx() {
	local nginx
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	[ -x "$nginx" ] || { echo "nginx missing: apt-get install -y nginx" >&2; exit 1; }
	cat >"$3/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $3/nginx.pid;
error_log $3/nginx-error.log error;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $3/body; proxy_temp_path $3/proxy;
	fastcgi_temp_path $3/fcgi; uwsgi_temp_path $3/uwsgi; scgi_temp_path $3/scgi;
	upstream patient { server $2; keepalive 64; }
	server {
		listen $1;
		location /api/ {
			proxy_pass http://patient/;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
		}
	}
}
CONF
	"$nginx" -c "$3/nginx.conf" -p "$3" &
	NPID=$!
}

# median: the median of the numbers on its input, separated by spaces or lines.
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# rounds MEASURE PATH...: ROUNDS rounds (default 3) of `MEASURE PATH` for every path, the order
# rotating each round so that no path always runs first or last (each load inherits what the
# one before left: a grown heap, a batch size, a checkpoint), then each path's median
# requests/s, p99 and CPU a request over the rounds, printed and left in MR, MP and MC. MEASURE
# runs one load of DURATION on its path and sets RPS, P99 and CPU for it. gateway.sh and hop.sh
# both summarise this way.
rounds() {
	local measure=$1 r k p n
	shift
	local order=("$@")
	n=${#order[@]}
	declare -gA ALL_RPS ALL_P99 ALL_CPU MR MP MC
	for ((r = 0; r < ${ROUNDS:-3}; r++)); do
		echo "round $((r + 1)) of ${ROUNDS:-3}, $DURATION each"
		for ((k = 0; k < n; k++)); do
			p=${order[$(((r + k) % n))]}
			"$measure" "$p"
			ALL_RPS[$p]+="${RPS[$p]} " ALL_P99[$p]+="${P99[$p]} " ALL_CPU[$p]+="${CPU[$p]} "
		done
	done
	echo "medians of ${ROUNDS:-3} rounds"
	for p in "${order[@]}"; do
		MR[$p]=$(echo "${ALL_RPS[$p]}" | median) MP[$p]=$(echo "${ALL_P99[$p]}" | median) MC[$p]=$(echo "${ALL_CPU[$p]}" | median)
		printf '%-8s %10.2f req/s   p99 %8.2fms   CPU %6.1f us/request\n' "$p" "${MR[$p]}" "${MP[$p]}" "${MC[$p]}"
	done
}

# wrk_p99 OUT: the p99 in milliseconds of wrk --latency's output OUT.
wrk_p99() {
	echo "$1" | awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; return v * 1000 }
		$1 == "99%" {printf "%.2f", ms($2)}'
}

# wrk_bad OUT: the non-2xx answers and socket errors in wrk's output OUT, which a load run must
# count (a limit answering 429 looks fast).
wrk_bad() {
	echo "$1" | awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}'
}
