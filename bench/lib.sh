# Shared by bench/quick.sh, bench/memory.sh and bench/compare.sh (sourced, not run): a work
# directory and child processes that are cleaned up on any exit, and the small probes every
# measurement needs (free loopback port, listening check, a process's CPU time and peak RSS).
# shellcheck shell=bash

# bench_setup NAME: creates $WORK, an empty $CHILDREN list, and the cleanup traps.
bench_setup() {
    BENCH_NAME=$1
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/bff-$1.XXXXXX")
    CHILDREN=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Every child started (its pid added to CHILDREN) is stopped, then killed, then reaped.
cleanup() {
    local pid
    for pid in "${CHILDREN[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.3
    for pid in "${CHILDREN[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

die() {
    echo "$BENCH_NAME.sh: $*" >&2
    exit 1
}

# A TCP port that is free on 127.0.0.1 right now (the kernel picks it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_listening PORT [TRIES]: true once 127.0.0.1:PORT accepts (tries every 0.1 s, 100 by default).
wait_listening() {
    local port=$1 tries=${2:-100} i
    for ((i = 0; i < tries; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# CPU seconds (user + system) a process has used.
cpu_seconds() {
    local stat rest
    stat=$(<"/proc/$1/stat")
    rest=${stat##*) } # fields from 3 (state) on; the command name may contain spaces
    # shellcheck disable=SC2086
    set -- $rest
    awk -v u="${12}" -v s="${13}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (u + s) / hz }'
}

# Datapoints counted so far by `loadgen sink` on PORT.
sink_count() {
    curl -fsS --max-time 2 "http://127.0.0.1:$1/count" 2>/dev/null || echo 0
}

# Peak RSS (VmHWM) of a process, MiB.
peak_rss_mib() {
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}
