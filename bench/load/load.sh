#!/usr/bin/env bash
# Load benchmark of the demo (release build, `load-server`): what apikey costs the server per
# request, on the memory, SQLite and PostgreSQL stores, for valid, malformed, unknown and
# sprayed keys.
#
# The measure is server CPU per request: the server process' utime+stime (from
# /proc/<pid>/stat) over a wrk run, divided by the requests answered. It is far steadier than
# req/s on a shared machine where wrk runs on the same cores. Every case is compared with a
# baseline run seconds apart in the same round that sends the *same request bytes* to a route
# that answers the *same response bytes* without any auth:
#   valid            → noauth     (GET /bench/noauth with the same API-KEY header, same JSON)
#   malformed, unknown1 → noauth401 (GET /bench/noauth_401 with the same header, same 401)
#   unknown, spray   → noauth401lua (the same Lua script against /bench/noauth_401)
# so the difference is apikey's work and nothing else.
#
#   bash bench/load/load.sh                      # 3 rounds of 5 s per case, all stores
#   ROUNDS=5 DURATION=10 STORES="sqlite" bash bench/load/load.sh
#
# Cases: valid (the demo key, cached), malformed (our prefix, bad checksum), unknown1 (one
# unknown free-form key, repeated), unknown (a pool of 10,000 random unknown keys), spray (a
# new random key every request). memory-limited is the memory store with a default rate limit
# and quota on every key (never reached), to price the limiter (rate limits per instance,
# quota uses leased from the store); memory-redis is the same with limits shared through Redis
# (`limits_url`, REDIS_URL, by default redis://127.0.0.1:6379/0), to price the leases.
#
# Prints one row per store and case: median req/s, median server CPU µs per request, the
# median per-round difference to its baseline (µs), store queries per 1000 requests and calls to
# the shared limits (Redis, or the store for quotas) per 1000 requests (from the demo's /stats).
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
PORT=${PORT:-8199}
STORES=${STORES:-"memory memory-limited memory-redis sqlite postgres"}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PG_URL=${APIKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
CASES=${CASES:-"valid malformed unknown1 unknown spray"}

if ! command -v wrk >/dev/null 2>&1; then
    echo "load: installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p apikey-bench --bin load-server
BIN=target/release/load-server
# The demo's admin page keeps sessions in private cookies: a release build needs a secret key.
ROCKET_SECRET_KEY=$(head -c 32 /dev/urandom | base64)
export ROCKET_SECRET_KEY
APIKEY_ADMIN_COOKIE_KEY=$(head -c 32 /dev/urandom | base64)
export APIKEY_ADMIN_COOKIE_KEY
TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# "store_queries round_trips" from /stats.
stats() {
    curl -s "http://127.0.0.1:$PORT/stats" |
        sed -E 's/.*"store_queries":([0-9]+).*"round_trips":([0-9]+).*/\1 \2/'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }

start() { # store url [rate limit] [quota] [limits url]
    env APIKEY_DATABASE_URL="$2" ${3:+APIKEY_RATE_LIMIT="$3"} ${4:+APIKEY_QUOTA="$4"} \
        ${5:+APIKEY_LIMITS_URL="$5"} ${5:+APIKEY_LIMITS_PREFIX="apikey-load-$$"} \
        ROCKET_PORT=$PORT ROCKET_LOG_LEVEL=off ROCKET_CLI_COLORS=false \
        "$BIN" >"$WORK/$1.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    KEY=$(grep -o 'ak_[A-Za-z0-9]*' "$WORK/$1.log" | head -n 1)
    [ -n "$KEY" ] || { echo "load: no demo key printed for $1" >&2; cat "$WORK/$1.log" >&2; exit 1; }
    # The filter of stored digests loads in the background: let it. Then warm up.
    sleep 1
    wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$PORT/bench/noauth" >/dev/null
}

stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }

# run store case round: one wrk run; appends
# "store case round rps cpu_us_per_req queries_per_1k round_trips_per_1k"
run() {
    local url="http://127.0.0.1:$PORT" args=()
    local bad="${KEY%??????}000000"
    case $2 in
        noauth) url="$url/bench/noauth"; args=(-H "API-KEY: $KEY") ;;
        noauth401) url="$url/bench/noauth_401"; args=(-H "API-KEY: $bad") ;;
        noauth401lua) url="$url/bench/noauth_401"; args=(-s bench/load/unknown.lua) ;;
        valid) url="$url/my_service"; args=(-H "API-KEY: $KEY") ;;
        malformed) url="$url/my_service"; args=(-H "API-KEY: $bad") ;;
        unknown1) url="$url/my_service"; args=(-H "API-KEY: unknown-free-form-key-0123456789abcdefghijklmnop") ;;
        unknown) url="$url/my_service"; args=(-s bench/load/unknown.lua) ;;
        spray) url="$url/my_service"; args=(-s bench/load/spray.lua) ;;
    esac
    local before after t0 t1 out
    read -r q0 rt0 <<<"$(stats)"
    t0=$(cpu_ticks)
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "${args[@]}" "$url")
    t1=$(cpu_ticks)
    read -r q1 rt1 <<<"$(stats)"
    echo "$out" | awk -v s="$1" -v c="$2" -v r="$3" -v q=$((q1 - q0)) -v rt=$((rt1 - rt0)) \
        -v ticks=$((t1 - t0)) -v tck="$TCK" '
        /Requests\/sec/ { rps = $2 }
        / requests in / { n = $1 }
        END { printf "%s %s %s %.0f %.3f %.2f %.2f\n", s, c, r, rps,
              (n > 0 ? ticks * 1000000 / tck / n : 0), (n > 0 ? q * 1000 / n : 0),
              (n > 0 ? rt * 1000 / n : 0) }' \
        >>"$WORK/results"
}

for store in $STORES; do
    case $store in
        memory) url="memory:" ;;
        memory-limited | memory-redis) url="memory:" ;;
        sqlite) url="sqlite://$WORK/bench.db?mode=rwc" ;;
        postgres)
            psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS apikey_bench WITH (FORCE)" \
                -c "CREATE DATABASE apikey_bench" >/dev/null
            url="${PG_URL%/*}/apikey_bench" ;;
        *) echo "load: unknown store $store" >&2; exit 2 ;;
    esac
    limit= quota= limits=
    case $store in
        memory-limited) limit="1000000000/1s" quota="1000000000000/30d" ;;
        memory-redis) limit="1000000000/1s" quota="1000000000000/30d" limits="$REDIS_URL" ;;
    esac
    start "$store" "$url" "$limit" "$quota" "$limits"
    for round in $(seq 1 "$ROUNDS"); do
        run "$store" noauth "$round"
        run "$store" noauth401 "$round"
        run "$store" noauth401lua "$round"
        for c in $CASES; do run "$store" "$c" "$round"; done
    done
    stop
    [ "$store" = postgres ] && psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS apikey_bench WITH (FORCE)" >/dev/null
done

echo "wrk -t1 -c$CONNS, $ROUNDS rounds of ${DURATION}s per case, $(nproc) cores"
echo
echo "| store | case | req/s | server CPU µs/req | overhead µs/req vs its baseline | store queries / 1000 req | shared-limit calls / 1000 req |"
echo "|---|---|---:|---:|---:|---:|---:|"
awk '
    { key = $1 " " $2; rps[key, $3] = $4; cpu[key, $3] = $5; q[key, $3] = $6; rt[key, $3] = $7; rounds[$3] = 1;
      if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
    function median(arr, k,    i, m, vals, tmp, j) {
        m = 0; for (i in rounds) { vals[++m] = arr[k, i] }
        for (i = 2; i <= m; i++) { tmp = vals[i]; for (j = i - 1; j > 0 && vals[j] > tmp; j--) vals[j + 1] = vals[j]; vals[j + 1] = tmp }
        return (m % 2) ? vals[(m + 1) / 2] : (vals[m / 2] + vals[m / 2 + 1]) / 2
    }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]; split(k, parts, " ")
            c = parts[2]
            base = parts[1] (c == "valid" || c == "noauth" ? " noauth" : \
                (c == "unknown" || c == "spray" || c == "noauth401lua" ? " noauth401lua" : " noauth401"))
            for (r in rounds) over[k, r] = cpu[k, r] - cpu[base, r]
            printf "| %s | %s | %.0f | %.2f | %+.2f | %.2f | %.2f |\n", parts[1], parts[2],
                median(rps, k), median(cpu, k), median(over, k), median(q, k), median(rt, k)
        }
    }' "$WORK/results"
