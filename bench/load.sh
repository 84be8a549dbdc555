#!/usr/bin/env bash
# Load benchmark of the demo (release build, `load-server`): a no-auth route against the api_key
# route on the memory, SQLite and PostgreSQL stores, with valid, unknown and malformed keys.
# Every round runs the no-auth baselines and then each case, so ratios compare runs seconds
# apart. Baselines answer the same bytes without auth: `noauth` the same JSON as a valid key
# gets, `noauth401` the same 401 problem document as a refused key gets (through the same
# catcher), so ratios measure what apikey costs and nothing else. Cases whose keys come from a
# wrk Lua script (unknown, fresh) are compared with `noauth401lua`, the same 401 baseline driven
# by the same script, since the script costs wrk (on the same cores) time of its own.
#
#   bash bench/load.sh                      # 3 rounds of 5 s per case, all stores
#   ROUNDS=5 DURATION=10 STORES="sqlite" bash bench/load.sh
#
# Prints one row per store and case: median req/s, median p99 latency, the median of the
# per-round ratios to its baseline (noauth for valid keys, noauth401 for refused ones), and
# store queries per 1000 requests (from the demo's /stats).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
PORT=${PORT:-8199}
# memory-limited: the memory store with a default rate limit on every key (high enough never to
# refuse), to measure what the limiter costs.
STORES=${STORES:-"memory memory-limited sqlite postgres"}
PG_URL=${APIKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
CASES="valid unknown fresh malformed"

if ! command -v wrk >/dev/null 2>&1; then
    echo "load: installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p my-service --bin load-server
BIN=target/release/load-server
WORK=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

stats() { curl -s "http://127.0.0.1:$PORT/stats" | sed -E 's/.*"store_queries":([0-9]+).*/\1/'; }

start() { # store url [rate limit]
    env APIKEY_DATABASE_URL="$2" ${3:+APIKEY_RATE_LIMIT="$3"} ROCKET_PORT=$PORT ROCKET_LOG_LEVEL=off ROCKET_CLI_COLORS=false \
        "$BIN" >"$WORK/$1.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    KEY=$(grep -o 'ak_[A-Za-z0-9]*' "$WORK/$1.log" | head -n 1)
    [ -n "$KEY" ] || { echo "load: no demo key printed for $1" >&2; cat "$WORK/$1.log" >&2; exit 1; }
}

stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }

# run store case round: one wrk run; appends "store case round rps p99_us queries_per_1k"
run() {
    local url="http://127.0.0.1:$PORT" args=()
    case $2 in
        noauth) url="$url/bench/noauth" ;;
        noauth401) url="$url/bench/noauth_401" ;;
        noauth401lua) url="$url/bench/noauth_401"; args=(-s bench/unknown.lua) ;;
        valid) url="$url/my_service"; args=(-H "API-KEY: $KEY") ;;
        unknown) url="$url/my_service"; args=(-s bench/unknown.lua) ;;
        fresh) url="$url/my_service"; args=(-s bench/fresh.lua) ;;
        malformed) url="$url/my_service"; args=(-H "API-KEY: ${KEY%??????}000000") ;;
    esac
    local before after out
    before=$(stats)
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${args[@]}" "$url")
    after=$(stats)
    echo "$out" | awk -v s="$1" -v c="$2" -v r="$3" -v q=$((after - before)) '
        /Requests\/sec/ { rps = $2 }
        / requests in / { n = $1 }
        $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+/, "", v);
                      p99 = v * (u == "ms" ? 1000 : (u == "s" ? 1000000 : 1)) }
        END { printf "%s %s %s %.0f %.0f %.2f\n", s, c, r, rps, p99, (n > 0 ? q * 1000 / n : 0) }' \
        >>"$WORK/results"
}

for store in $STORES; do
    case $store in
        memory) url="memory:" ;;
        memory-limited) url="memory:" ;;
        sqlite) url="sqlite://$WORK/bench.db?mode=rwc" ;;
        postgres)
            psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS apikey_bench WITH (FORCE)" \
                -c "CREATE DATABASE apikey_bench" >/dev/null
            url="${PG_URL%/*}/apikey_bench" ;;
        *) echo "load: unknown store $store" >&2; exit 2 ;;
    esac
    limit=
    [ "$store" = memory-limited ] && limit="1000000000/1s"
    start "$store" "$url" "$limit"
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
echo "| store | case | req/s | p99 (µs) | ratio to its no-auth baseline | store queries / 1000 req |"
echo "|---|---|---:|---:|---:|---:|"
awk '
    { key = $1 " " $2; rps[key, $3] = $4; p99[key, $3] = $5; q[key, $3] = $6; rounds[$3] = 1;
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
                (c == "unknown" || c == "fresh" || c == "noauth401lua" ? " noauth401lua" : " noauth401"))
            for (r in rounds) ratio[k, r] = rps[k, r] / rps[base, r]
            printf "| %s | %s | %.0f | %.0f | %.3f | %.2f |\n", parts[1], parts[2],
                median(rps, k), median(p99, k), median(ratio, k), median(q, k)
        }
    }' "$WORK/results"
