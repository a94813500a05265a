#!/usr/bin/env bash
# End-to-end throughput and cost of the forwarder on this machine, over loopback only.
#
# This script owns the end-to-end measurement: for each variant (gzip level 1, no compression)
# it starts `loadgen sink` (a counting Blueflood stand-in) and the release forwarder, sends
# POINTS datapoints as carbon-relay pickle frames over 4 connections, waits until the sink has
# counted them all, then reads the forwarder's CPU time (utime+stime from /proc/PID/stat) and
# peak RSS (VmHWM), stops it with SIGTERM, and prints one table row per variant.
#
# Columns: wall_s runs from the first datapoint sent to the sink counting the last one, so it
# includes up to `-i 1` second for the last, partial body; cpu_s is the forwarder's alone (the
# sink and the sender share the machine but are not counted).
#
# Usage: bench/quick.sh
# Environment:
#   POINTS=N          datapoints per variant (default 2000000)
#   CONNECTIONS=C     sender connections (default 4)
#   RATE=R            total send rate in datapoints per second (default 0 = as fast as possible;
#                     unthrottled, the forwarder buffers most of the burst, so its CPU time then
#                     includes first-touch page faults for hundreds of MiB)
#   TIMEOUT=S         seconds to wait for delivery per variant (default 120)
#   VARIANTS="a b"    which variants to run, from: gzip1 none gzip6 (default "gzip1 none")
#   SKIP_BUILD=1      do not run cargo build first
#   FORWARDER_ARGS    extra arguments for every forwarder run
#   BIN=PATH          the forwarder binary (default $CARGO_TARGET_DIR/release/blueflood-forward,
#                     CARGO_TARGET_DIR defaulting to target): e.g. a saved build, for before/after
#
# Everything listens on 127.0.0.1. Every wait is bounded; every child is killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

POINTS=${POINTS:-2000000}
CONNECTIONS=${CONNECTIONS:-4}
RATE=${RATE:-0}
TIMEOUT=${TIMEOUT:-120}
VARIANTS=${VARIANTS:-"gzip1 none"}
FORWARDER_ARGS=${FORWARDER_ARGS:-}

TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/blueflood-forward}
LOADGEN=$TARGET/release/examples/loadgen

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup quick

now() { date +%s.%N; }

if [[ -z ${SKIP_BUILD:-} ]]; then
    cargo build --release --examples --bins >&2
fi
[[ -x $BIN && -x $LOADGEN ]] || die "missing $BIN or $LOADGEN (build first)"
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed (to find a free port)"

ROWS=()

run_variant() {
    local variant=$1 compression
    case $variant in
        gzip1) compression=(--compression gzip --compression-level 1) ;;
        gzip6) compression=(--compression gzip --compression-level 6) ;;
        none) compression=(--compression none) ;;
        *) die "unknown variant $variant" ;;
    esac

    local sink_port in_port
    sink_port=$(free_port)
    in_port=$(free_port)
    [[ $sink_port != "$in_port" ]] || in_port=$(free_port)

    "$LOADGEN" sink --port "$sink_port" 2>"$WORK/sink-$variant.log" &
    local sink_pid=$!
    CHILDREN+=("$sink_pid")
    wait_listening "$sink_port" || die "sink did not start: $(cat "$WORK/sink-$variant.log")"

    # shellcheck disable=SC2086
    "$BIN" -b "http://127.0.0.1:$sink_port" -e "tcp:$in_port:interface=127.0.0.1" -i 1 --admin-addr 127.0.0.1:0 \
        --buffer-bytes 512MiB "${compression[@]}" $FORWARDER_ARGS \
        >"$WORK/fwd-$variant.out" 2>"$WORK/fwd-$variant.log" &
    local fwd_pid=$!
    CHILDREN+=("$fwd_pid")
    wait_listening "$in_port" || die "forwarder did not start: $(tail -20 "$WORK/fwd-$variant.log")"

    echo "[$variant] sending $POINTS datapoints over $CONNECTIONS connections (rate $RATE/s, 0 = unlimited)" >&2
    local t0 t1 count=0 deadline
    t0=$(now)
    # In the background so that a signal runs the trap at once (bash defers traps while a
    # foreground child runs); its own --rate bounds how long it takes.
    "$LOADGEN" send --pickle "127.0.0.1:$in_port" --points "$POINTS" \
        --connections "$CONNECTIONS" --rate "$RATE" >&2 &
    local send_pid=$!
    CHILDREN+=("$send_pid")
    wait "$send_pid" || die "loadgen send failed"
    deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        count=$(sink_count "$sink_port")
        ((count >= POINTS)) && break
        sleep 0.05
    done
    t1=$(now)
    if ((count < POINTS)); then
        echo "[$variant] only $count of $POINTS delivered after ${TIMEOUT}s; forwarder log:" >&2
        tail -20 "$WORK/fwd-$variant.log" >&2
    fi

    local cpu rss
    cpu=$(cpu_seconds "$fwd_pid")
    rss=$(peak_rss_mib "$fwd_pid")

    kill -TERM "$fwd_pid"
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$fwd_pid" 2>/dev/null || break
        sleep 0.1
    done
    local rc=0
    if kill -0 "$fwd_pid" 2>/dev/null; then
        echo "[$variant] forwarder still running 30 s after SIGTERM; killing it" >&2
        kill -KILL "$fwd_pid" 2>/dev/null || true
    fi
    wait "$fwd_pid" || rc=$?
    ((rc == 0)) || echo "[$variant] forwarder exited with status $rc" >&2
    kill -TERM "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true

    ROWS+=("$(awk -v v="$variant" -v n="$count" -v t0="$t0" -v t1="$t1" -v cpu="$cpu" -v rss="$rss" 'BEGIN {
        wall = t1 - t0
        per_cpu = cpu > 0 ? n / cpu : 0
        us = n > 0 ? cpu * 1e6 / n : 0
        printf "%-8s %12d %8.2f %8.2f %14.0f %10.3f %9s\n", v, n, wall, cpu, per_cpu, us, rss
    }')")
}

for v in $VARIANTS; do
    run_variant "$v"
done

echo
echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); points $POINTS, connections $CONNECTIONS, rate $RATE/s (0 = unlimited)"
printf "%-8s %12s %8s %8s %14s %10s %9s\n" variant delivered wall_s cpu_s points/cpu_s us_cpu/pt peak_MiB
for r in "${ROWS[@]}"; do
    echo "$r"
done
