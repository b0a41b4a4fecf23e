#!/usr/bin/env bash
# Quick-read benchmark: requests per second of the User Service's cached GET /users/{id}, as a
# ratio to a bare FastAPI endpoint answering a constant (bare_app.py), both served by the same
# launcher with the same settings and measured alternately in one run. See README.md beside this.
#
#   bash bench/quick-read/run.sh
#
# Options (environment): ROUNDS (3), DURATION (10s), CONNECTIONS (32), THREADS (1), WARMUP (3s),
# WORKERS (1, WEB_CONCURRENCY of both servers); PGHOST (127.0.0.1), PGPORT (5432),
# PGUSER (postgres), PGPASSWORD; REDIS_HOST (127.0.0.1), REDIS_PORT (6379), REDIS_DB (0).
# It creates a database and Redis keys of its own and removes them, and the servers, on exit.
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
WARMUP="${WARMUP:-3s}"
WORKERS="${WORKERS:-1}"
PG_HOST="${PGHOST:-127.0.0.1}"
PG_PORT="${PGPORT:-5432}"
PG_USER="${PGUSER:-postgres}"
PG_PASSWORD="${PGPASSWORD:-}"
R_HOST="${REDIS_HOST:-127.0.0.1}"
R_PORT="${REDIS_PORT:-6379}"
R_DB="${REDIS_DB:-0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH_DIR="$ROOT/bench/quick-read"

die() {
    echo "run.sh: $*" >&2
    exit 1
}
log() { echo "-- $*" >&2; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer"
[[ "$DURATION" =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 10s (got '$DURATION')"
[[ "$WARMUP" =~ ^[1-9][0-9]*[smh]?$ ]] || die "WARMUP must look like 3s (got '$WARMUP')"
for tool in uv wrk curl psql createdb dropdb redis-cli pgrep setsid getconf; do
    command -v "$tool" >/dev/null || die "$tool not found (wrk: apt-get install -y wrk)"
done

# The servers get exactly the settings below and nothing else from this environment (the
# services read many variables, case-insensitively): they start from an empty environment plus
# what uv needs, in an empty directory so that no .env file applies either.
BASE_ENV=(PATH="$PATH" HOME="${HOME:-/root}")
while read -r name; do
    case "$name" in
        UV_* | XDG_* | LANG | LC_* | TMPDIR | SSL_CERT_FILE | SSL_CERT_DIR)
            BASE_ENV+=("$name=${!name}")
            ;;
    esac
done < <(compgen -e)
REVISION="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"

RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
DB_NAME="terrascale_bench_${RUN_ID}"
KEY_PREFIX="bench:${RUN_ID}:"
USERNAME="bench_${RUN_ID}"
WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/quick-read.XXXXXX")"
CLK_TCK="$(getconf CLK_TCK)"
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER")
REDIS=(redis-cli -h "$R_HOST" -p "$R_PORT" -n "$R_DB")
export PGPASSWORD="$PG_PASSWORD"

DB_CREATED=0
SERVER_PGIDS=()
SERVER_NAMES=()

stop_server() {
    local pgid=$1
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 -- "-$pgid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    if ((status != 0)); then
        for name in "${SERVER_NAMES[@]}"; do
            if [[ -s "$WORKDIR/$name.log" ]]; then
                echo "== last lines of the $name server's output" >&2
                tail -n 20 "$WORKDIR/$name.log" >&2
            fi
        done
    fi
    for pgid in "${SERVER_PGIDS[@]}"; do stop_server "$pgid"; done
    if ((DB_CREATED)); then
        dropdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" --if-exists --force "$DB_NAME" \
            || echo "run.sh: could not drop database $DB_NAME" >&2
    fi
    "${REDIS[@]}" --scan --pattern "${KEY_PREFIX}*" 2>/dev/null \
        | xargs -r -n 100 "${REDIS[@]}" DEL >/dev/null
    rm -rf "$WORKDIR"
    local removed="keys ${KEY_PREFIX}*"
    ((DB_CREATED)) && removed="database $DB_NAME, $removed"
    log "cleaned up: ${#SERVER_PGIDS[@]} server(s) stopped; removed $removed"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

py() { uv run --frozen --project "$ROOT" python "$@"; }

# Both ports at once, so they differ.
read -r BARE_PORT OURS_PORT < <(py -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0))
b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])
')

DATABASE_URL="postgresql://${PG_USER}${PG_PASSWORD:+:$PG_PASSWORD}@${PG_HOST}:${PG_PORT}/${DB_NAME}"
COMMON_ENV=(
    "${BASE_ENV[@]}" HOST=127.0.0.1 WEB_CONCURRENCY="$WORKERS"
    LOG_LEVEL=WARNING LOG_FORMAT=json DEBUG=false
)
OURS_ENV=(
    "${COMMON_ENV[@]}" PORT="$OURS_PORT" DATABASE_URL="$DATABASE_URL"
    REDIS_HOST="$R_HOST" REDIS_PORT="$R_PORT" REDIS_DB="$R_DB"
    CACHE_KEY_PREFIX="$KEY_PREFIX" CACHE_TTL_SECONDS=86400
    # The outbox relay polls PostgreSQL 20 times a second by default; this benchmark creates
    # one user, so a slow poll keeps the database count a measure of the read path alone.
    EVENT_KEY_PREFIX="$KEY_PREFIX" EVENT_RELAY_POLL_SECONDS=30
)
BARE_ENV=("${COMMON_ENV[@]}" PORT="$BARE_PORT")

log "database $DB_NAME, Redis db $R_DB prefix $KEY_PREFIX, work dir $WORKDIR"
createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$DB_NAME"
DB_CREATED=1
(cd "$WORKDIR" && env -i "${OURS_ENV[@]}" uv run --frozen --project "$ROOT" \
    python -m terrascale.users migrate) >"$WORKDIR/migrate.log" 2>&1 \
    || {
        cat "$WORKDIR/migrate.log" >&2
        die "migration failed"
    }

# start_server NAME ENV... -- COMMAND...: its own process group (pgid = pid), output to a log.
start_server() {
    local name=$1
    shift
    local envs=()
    while [[ $1 != "--" ]]; do
        envs+=("$1")
        shift
    done
    shift
    (cd "$WORKDIR" && exec setsid env -i "${envs[@]}" "$@") >"$WORKDIR/$name.log" 2>&1 &
    SERVER_PGIDS+=("$!")
    SERVER_NAMES+=("$name")
}

wait_ready() {
    local name=$1 pgid=$2 url=$3
    for _ in $(seq 300); do
        curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        kill -0 "$pgid" 2>/dev/null || die "the $name server exited during start-up"
        sleep 0.2
    done
    die "the $name server did not answer $url within 60 s"
}

start_server bare "${BARE_ENV[@]}" -- \
    uv run --frozen --project "$ROOT" python "$BENCH_DIR/bare_app.py"
BARE_PGID=${SERVER_PGIDS[-1]}
start_server ours "${OURS_ENV[@]}" -- \
    uv run --frozen --project "$ROOT" python -m terrascale.users serve
OURS_PGID=${SERVER_PGIDS[-1]}
BARE_URL="http://127.0.0.1:${BARE_PORT}/constant"
wait_ready bare "$BARE_PGID" "$BARE_URL"
wait_ready ours "$OURS_PGID" "http://127.0.0.1:${OURS_PORT}/ready"
log "servers up: bare on :$BARE_PORT, ours on :$OURS_PORT"

json_field() { # the JSON of one field of the JSON object on stdin
    py -c 'import json, sys; print(json.dumps(json.load(sys.stdin)[sys.argv[1]]))' "$1"
}

created="$(curl -fsS -X POST -H 'content-type: application/json' \
    -d "{\"username\": \"$USERNAME\"}" "http://127.0.0.1:${OURS_PORT}/users/")"
USER_ID="$(json_field id <<<"$created" | tr -d '"')"
[[ "$USER_ID" =~ ^[0-9]+$ ]] || die "unexpected answer to POST /users/: $created"
OURS_URL="http://127.0.0.1:${OURS_PORT}/users/${USER_ID}"

check_cached() {
    local body
    body="$(curl -fsS "$OURS_URL")"
    [[ "$(json_field cached <<<"$body")" == "true" ]] || die "GET $OURS_URL was not cached: $body"
}
curl -fsS -o /dev/null "$OURS_URL" # the first read fills the cache
check_cached
PRIMED_AT=$SECONDS
BARE_BYTES="$(curl -fsS -o /dev/null -w '%{size_download}' "$BARE_URL")"
OURS_BYTES="$(curl -fsS -o /dev/null -w '%{size_download}' "$OURS_URL")"
log "user $USER_ID cached; bodies: bare $BARE_BYTES B, ours $OURS_BYTES B"

group_cpu_ticks() { # user + system clock ticks of every live process in a process group
    local pgid=$1 total=0 pid stat
    local -a f
    for pid in $(pgrep -g "$pgid"); do
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        read -r -a f <<<"${stat##*) }" # fields after "(comm)": state is f[0], utime f[11]
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
machine_busy_ticks() { # all CPUs: every state but idle and iowait
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}
redis_cpu_seconds() {
    "${REDIS[@]}" INFO cpu | tr -d '\r' \
        | awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { print s }'
}
db_transactions() {
    "${PSQL[@]}" -d postgres -c "SELECT pg_stat_clear_snapshot();" \
        -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$DB_NAME'" \
        | tail -n 1
}

RESULTS="$WORKDIR/results.tsv"
: >"$RESULTS"

# measure ROUND TARGET PGID URL DURATION: one wrk run; appends a row to $RESULTS unless warm-up.
measure() {
    local round=$1 target=$2 pgid=$3 url=$4 duration=$5
    local out="$WORKDIR/wrk-$target-$round.txt"
    local ticks0 ticks1 redis0 redis1 busy0 busy1 timing
    ticks0="$(group_cpu_ticks "$pgid")"
    redis0="$(redis_cpu_seconds)"
    busy0="$(machine_busy_ticks)"
    timing="$(
        TIMEFORMAT='%R %U %S'
        { time wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency "$url" >"$out" 2>&1; } 2>&1
    )" || {
        cat "$out" >&2
        die "wrk failed against $target"
    }
    busy1="$(machine_busy_ticks)"
    ticks1="$(group_cpu_ticks "$pgid")"
    redis1="$(redis_cpu_seconds)"
    if grep -q 'Non-2xx or 3xx responses' "$out"; then
        cat "$out" >&2
        die "$target answered errors during round $round"
    fi
    [[ "$round" == "warm-up" ]] && return 0
    awk -v round="$round" -v target="$target" -v timing="$timing" -v tck="$CLK_TCK" \
        -v ticks="$((ticks1 - ticks0))" -v busy="$((busy1 - busy0))" \
        -v redis0="$redis0" -v redis1="$redis1" '
        function ms(v,   n, u) {
            n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n / 1000
            if (u == "ms") return n
            if (u == "s") return n * 1000
            if (u == "m") return n * 60000
            return -1
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        $2 == "requests" && $3 == "in" { requests = $1 }
        $1 == "Socket" { $1 = $2 = ""; errors = $0; gsub(/^ +| +$/, "", errors) }
        END {
            split(timing, t, " ")
            wall = t[1]
            server = 100 * ticks / tck / wall
            wrk = 100 * (t[2] + t[3]) / wall
            redis = 100 * (redis1 - redis0) / wall
            other = 100 * busy / tck / wall - server - wrk - redis
            printf "%s\t%s\t%.0f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%s\t%d\t%.0f\n", round, target,
                rps, p50, p99, server, wrk, redis, (errors == "" ? "-" : errors), requests,
                (other < 0 ? 0 : other)
        }' "$out" >>"$RESULTS"
    tail -n 1 "$RESULTS" | awk -F'\t' '{
        printf "-- round %s %-4s %8s req/s  p50 %s ms  p99 %s ms\n", $1, $2, $3, $4, $5 }' >&2
}

log "warm-up: $WARMUP each"
measure warm-up bare "$BARE_PGID" "$BARE_URL" "$WARMUP"
measure warm-up ours "$OURS_PGID" "$OURS_URL" "$WARMUP"
check_cached

# PostgreSQL publishes an idle backend's counters up to 10 s late: let the priming's show first.
while ((SECONDS < PRIMED_AT + 11)); do sleep 1; done
TX_BEFORE="$(db_transactions)"
for round in $(seq "$ROUNDS"); do
    measure "$round" bare "$BARE_PGID" "$BARE_URL" "$DURATION"
    measure "$round" ours "$OURS_PGID" "$OURS_URL" "$DURATION"
done
sleep 1
TX_AFTER="$(db_transactions)"
check_cached
# The cache degrades to the database when Redis errors or times out, and says so once per outage.
FALLBACKS="$(grep -c 'cache unavailable' "$WORKDIR/ours.log" || true)"

median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
column_of() { awk -F'\t' -v t="$1" -v c="$2" '$2 == t { print $c }' "$RESULTS"; }

declare -A MED
for target in bare ours; do
    for col in 3 4 5 6 7 8 11; do
        MED[$target,$col]="$(column_of "$target" "$col" | median)"
    done
done
RATIO="$(awk -v o="${MED[ours,3]}" -v b="${MED[bare,3]}" 'BEGIN { printf "%.3f", o / b }')"
PAIR_RATIO="$(paste <(column_of ours 3) <(column_of bare 3) \
    | awk '{ printf "%.3f\n", $1 / $2 }' | median)"
OURS_REQUESTS="$(awk -F'\t' '$2 == "ours" { n += $10 } END { printf "%d", n }' "$RESULTS")"

cat <<EOF

## Quick read: cached \`GET /users/{id}\` vs bare FastAPI constant

$(date -u '+%Y-%m-%d %H:%M UTC'), revision $REVISION, $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)),
$(uv run --frozen --project "$ROOT" python -c 'import platform; print("Python", platform.python_version())').
wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency; $ROUNDS rounds each, alternating bare/ours after a $WARMUP warm-up each;
both servers: Gunicorn + uvicorn_worker.UvicornWorker, WEB_CONCURRENCY=$WORKERS, keep-alive 5 s, LOG_LEVEL=WARNING.
Bodies: bare $BARE_BYTES B, ours $OURS_BYTES B. CPU columns: % of one core over the round ("other":
everything else on the machine, from /proc/stat).

| round | target | req/s | p50 ms | p99 ms | server CPU % | wrk CPU % | Redis CPU % | other CPU % | socket errors |
| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
$(awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $11, $9 }' "$RESULTS")

| target | median req/s | median p50 ms | median p99 ms | server CPU % | wrk CPU % | Redis CPU % | other CPU % |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| bare (\`GET /constant\`) | ${MED[bare,3]} | ${MED[bare,4]} | ${MED[bare,5]} | ${MED[bare,6]} | ${MED[bare,7]} | ${MED[bare,8]} | ${MED[bare,11]} |
| ours (\`GET /users/{id}\`, cached) | ${MED[ours,3]} | ${MED[ours,4]} | ${MED[ours,5]} | ${MED[ours,6]} | ${MED[ours,7]} | ${MED[ours,8]} | ${MED[ours,11]} |

**ours/bare = $RATIO** (ratio of medians; median of per-round ratios: $PAIR_RATIO).
PostgreSQL transactions in the benchmark database during the measured rounds: $((TX_AFTER - TX_BEFORE)) (for about $OURS_REQUESTS cached reads);
"cache unavailable" warnings in the service's log: $FALLBACKS.
EOF
# Only the fallback warnings prove reads left the cache: the outbox relay's polls count as
# transactions too.
if ((FALLBACKS > 0)); then
    echo
    echo "**Warning:** some reads went to PostgreSQL, so not every measured request was a cache hit."
fi
OTHER_MAX="$(awk -F'\t' '$11 > m { m = $11 } END { print m + 0 }' "$RESULTS")"
if ((OTHER_MAX > 20)); then
    echo
    echo "**Warning:** other processes used up to ${OTHER_MAX}% of a core during a round;" \
        "the machine was not quiet: absolute figures are low and the ratio is less reliable."
fi
