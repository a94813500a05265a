#!/usr/bin/env bash
# Our forwarder against carbon-c-relay and Graphite's carbon-relay, in one run on this machine.
#
# Each variant gets the same generated traffic from `examples/loadgen.rs` (POINTS datapoints,
# CONNECTIONS connections, RATE datapoints per second in total) and delivers it to a counting
# sink from the same example; the script waits (bounded) until the sink has counted POINTS,
# then reads the relay process's CPU time (utime+stime of every thread, /proc/PID/stat) and
# peak RSS (VmHWM), and stops it. Variants:
#
#   ours-gzip1    blueflood-forward, pickle in, Blueflood JSON out, gzip level 1 (the default)
#   ours-none     the same, no compression
#   ours-line     blueflood-forward, line in, gzip level 1
#   c-relay       carbon-c-relay (Debian package), line in -> line out, one cluster, `-s`
#                 (no self-metrics), a queue of 1,000,000 (the default 25,000 drops bursts)
#   carbon-relay  Graphite's carbon-relay (PyPI `carbon`, in a venv under .cache/), pickle in ->
#                 pickle out, consistent-hashing to one destination, 500 points a message,
#                 flow control on (no drops)
#
# Columns: delivered (counted by the sink; carbon-c-relay may add none, `-s`), wall_s (first
# datapoint sent to the last one counted), cpu_s (the relay process alone: the sender and the
# sink share the machine but are not counted), cpu_s/M (CPU seconds per million datapoints: the
# figure that matters, as these machines are noisy), peak_MiB, and x_ours: cpu_s/M over that of
# ours-gzip1 in this same run (how many times our CPU the relay needs; < 1 is cheaper than us).
#
# Usage: bench/compare.sh
# Environment:
#   POINTS=N          datapoints per variant (default 2000000)
#   CONNECTIONS=C     sender connections (default 4)
#   RATE=R            total send rate, datapoints per second (default 200000, which Graphite's
#                     carbon-relay can keep up with on 2 cores; 0 = as fast as possible)
#   TIMEOUT=S         seconds to wait for delivery per variant (default 180)
#   STALL=S           stop waiting once the sink's count has not moved for S seconds (default
#                     10; a relay that dropped part of the traffic is then reported as is, its
#                     wall time ending at the last datapoint counted)
#   VARIANTS="..."    which variants, in order (default "ours-gzip1 ours-none ours-line c-relay
#                     carbon-relay"); ones whose relay is not installed are skipped with a note
#   BIN=PATH          the forwarder binary (default $CARGO_TARGET_DIR/release/blueflood-forward)
#   SKIP_BUILD=1      do not run cargo build first
#   NO_INSTALL=1      do not create the carbon venv (.cache/carbon-venv, `pip install carbon`)
#
# Prerequisites: carbon-c-relay (`apt-get install -y carbon-c-relay`), python3 with venv, curl.
# Everything listens on 127.0.0.1. Every wait is bounded; every child is killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

POINTS=${POINTS:-2000000}
CONNECTIONS=${CONNECTIONS:-4}
RATE=${RATE:-200000}
TIMEOUT=${TIMEOUT:-180}
STALL=${STALL:-10}
VARIANTS=${VARIANTS:-"ours-gzip1 ours-none ours-line c-relay carbon-relay"}

TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/blueflood-forward}
LOADGEN=$TARGET/release/examples/loadgen
VENV=.cache/carbon-venv

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup compare

# Three distinct free ports, space-separated.
free_ports() {
    python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()'
}

now() { date +%s.%N; }

if [[ -z ${SKIP_BUILD:-} ]]; then
    cargo build --release --examples --bins >&2
fi
[[ -x $BIN && -x $LOADGEN ]] || die "missing $BIN or $LOADGEN (build first)"
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"

if [[ " $VARIANTS " == *" carbon-relay "* && ! -x $VENV/bin/carbon-relay.py && -z ${NO_INSTALL:-} ]]; then
    echo "creating $VENV with PyPI carbon and whisper (once; the relay refuses to start without its database module)" >&2
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q carbon whisper >&2 || echo "pip install carbon failed" >&2
fi

ROWS=()
OURS_PER_M=

# run_variant NAME SINK_KIND(http|line|pickle) INPUT(pickle|line)
# The relay command comes from start_relay_NAME, which is given the input and sink ports and
# must set RELAY_PID.
run_variant() {
    local name=$1 sink_kind=$2 input=$3
    local sink_port sink_http in_port
    read -r sink_port sink_http in_port <<<"$(free_ports)"

    if [[ $sink_kind == http ]]; then
        "$LOADGEN" sink --port "$sink_http" 2>"$WORK/sink-$name.log" &
    else
        "$LOADGEN" "$sink_kind-sink" --port "$sink_port" --http-port "$sink_http" 2>"$WORK/sink-$name.log" &
    fi
    local sink_pid=$!
    CHILDREN+=("$sink_pid")
    wait_listening "$sink_http" || die "sink did not start: $(cat "$WORK/sink-$name.log")"
    if [[ $sink_kind != http ]]; then
        wait_listening "$sink_port" || die "sink did not start: $(cat "$WORK/sink-$name.log")"
    fi

    RELAY_PID=
    "start_${name//-/_}" "$in_port" "$sink_port" "$sink_http"
    CHILDREN+=("$RELAY_PID")
    wait_listening "$in_port" 300 || die "$name did not start: $(tail -20 "$WORK/relay-$name.log")"
    sleep 0.5 # let a relay connect to its destination before the traffic starts

    echo "[$name] sending $POINTS datapoints ($input) over $CONNECTIONS connections at $RATE/s" >&2
    local t0 t1 count=0 deadline
    t0=$(now)
    "$LOADGEN" send "--$input" "127.0.0.1:$in_port" --points "$POINTS" \
        --connections "$CONNECTIONS" --rate "$RATE" >&2 &
    local send_pid=$!
    CHILDREN+=("$send_pid")
    wait "$send_pid" || die "loadgen send failed"
    deadline=$((SECONDS + TIMEOUT))
    local last=-1 still_since=$SECONDS
    while ((SECONDS < deadline)); do
        count=$(sink_count "$sink_http")
        ((count >= POINTS)) && break
        kill -0 "$RELAY_PID" 2>/dev/null || break
        if ((count != last)); then
            last=$count
            still_since=$SECONDS
            t1=$(now)
        elif ((SECONDS - still_since >= STALL)); then
            break # nothing more arrived for STALL seconds: the rest was dropped
        fi
        sleep 0.05
    done
    if ((count >= POINTS)) || [[ -z ${t1:-} ]]; then t1=$(now); fi
    if ((count < POINTS)); then
        echo "[$name] only $count of $POINTS delivered; relay log:" >&2
        tail -20 "$WORK/relay-$name.log" >&2 || true
    fi

    local cpu=0 rss=0
    if kill -0 "$RELAY_PID" 2>/dev/null; then
        cpu=$(cpu_seconds "$RELAY_PID")
        rss=$(peak_rss_mib "$RELAY_PID")
    fi
    kill -TERM "$RELAY_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$RELAY_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$RELAY_PID" 2>/dev/null || true
    wait "$RELAY_PID" 2>/dev/null || true
    kill -TERM "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true

    local per_m
    per_m=$(awk -v n="$count" -v cpu="$cpu" 'BEGIN { printf "%.4f", (n > 0 ? cpu * 1e6 / n : 0) }')
    if [[ $name == ours-gzip1 ]]; then
        OURS_PER_M=$per_m
    fi
    ROWS+=("$(awk -v v="$name" -v n="$count" -v t0="$t0" -v t1="$t1" -v cpu="$cpu" -v pm="$per_m" \
        -v rss="$rss" -v ours="${OURS_PER_M:-0}" 'BEGIN {
        ratio = ours > 0 ? sprintf("%.2f", pm / ours) : "-"
        printf "%-13s %11d %8.2f %8.2f %9.3f %9s %8s\n", v, n, t1 - t0, cpu, pm, rss, ratio
    }')")
}

# start_ours IN_PORT SINK_PORT SINK_HTTP pickle|line FORWARDER_ARGS...
start_ours() {
    local in_port=$1 sink_http=$3 input=$4 pickle_port line_args=()
    shift 4
    pickle_port=$in_port
    if [[ $input == line ]]; then
        # The pickle endpoint cannot be switched off: put it on a free port too.
        pickle_port=$(free_port)
        line_args=(--line-endpoint "tcp:$in_port:interface=127.0.0.1")
    fi
    "$BIN" -b "http://127.0.0.1:$sink_http" -e "tcp:$pickle_port:interface=127.0.0.1" "${line_args[@]}" \
        -i 1 --admin-addr 127.0.0.1:0 --buffer-bytes 512MiB "$@" \
        >"$WORK/relay-$VARIANT.out" 2>"$WORK/relay-$VARIANT.log" &
    RELAY_PID=$!
}
start_ours_gzip1() { start_ours "$@" pickle --compression gzip --compression-level 1; }
start_ours_none() { start_ours "$@" pickle --compression none; }
start_ours_line() { start_ours "$@" line --compression gzip --compression-level 1; }

start_c_relay() {
    local in_port=$1 sink_port=$2
    cat >"$WORK/c-relay.conf" <<EOF
listen type linemode 127.0.0.1:$in_port proto tcp;
cluster sink forward 127.0.0.1:$sink_port;
match * send to sink stop;
EOF
    carbon-c-relay -f "$WORK/c-relay.conf" -s -q 1000000 -w 2 -H bench \
        >"$WORK/relay-$VARIANT.log" 2>&1 &
    RELAY_PID=$!
}

start_carbon_relay() {
    local in_port=$1 sink_port=$2 line_port
    line_port=$(free_port)
    mkdir -p "$WORK/graphite/storage/log" "$WORK/graphite/conf"
    cat >"$WORK/graphite/conf/carbon.conf" <<EOF
[cache]
STORAGE_DIR = $WORK/graphite/storage
LOCAL_DATA_DIR = $WORK/graphite/storage/whisper
LOG_DIR = $WORK/graphite/storage/log
PID_DIR = $WORK/graphite/storage
ENABLE_LOGROTATION = False
LOG_LISTENER_CONNECTIONS = False

[relay]
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $line_port
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $in_port
ENABLE_UDP_LISTENER = False
RELAY_METHOD = consistent-hashing
REPLICATION_FACTOR = 1
DESTINATIONS = 127.0.0.1:$sink_port:a
DESTINATION_PROTOCOL = pickle
MAX_DATAPOINTS_PER_MESSAGE = 500
MAX_QUEUE_SIZE = 10000000
USE_FLOW_CONTROL = True
CARBON_METRIC_INTERVAL = 0
LOG_LISTENER_CONN_SUCCESS = False
EOF
    # Required even by the relay, which stores nothing.
    printf '[default]\npattern = .*\nretentions = 60s:1d\n' >"$WORK/graphite/conf/storage-schemas.conf"
    GRAPHITE_ROOT=$WORK/graphite GRAPHITE_CONF_DIR=$WORK/graphite/conf \
        "$VENV/bin/python" "$VENV/bin/carbon-relay.py" --config="$WORK/graphite/conf/carbon.conf" \
        --nodaemon --logdir="$WORK/graphite/storage/log" \
        --pidfile="$WORK/graphite/storage/relay.pid" start >"$WORK/relay-$VARIANT.log" 2>&1 &
    RELAY_PID=$!
}

for VARIANT in $VARIANTS; do
    case $VARIANT in
        ours-gzip1 | ours-none) run_variant "$VARIANT" http pickle ;;
        ours-line) run_variant "$VARIANT" http line ;;
        c-relay)
            if command -v carbon-c-relay >/dev/null; then
                run_variant c-relay line line
            else
                echo "[c-relay] skipped: carbon-c-relay is not installed" >&2
            fi
            ;;
        carbon-relay)
            if [[ -x $VENV/bin/carbon-relay.py ]]; then
                run_variant carbon-relay pickle pickle
            else
                echo "[carbon-relay] skipped: no $VENV/bin/carbon-relay.py" >&2
            fi
            ;;
        *) die "unknown variant $VARIANT" ;;
    esac
done

echo
echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); points $POINTS, connections $CONNECTIONS, rate $RATE/s (0 = unlimited)"
printf "%-13s %11s %8s %8s %9s %9s %8s\n" variant delivered wall_s cpu_s cpu_s/M peak_MiB x_ours
for r in "${ROWS[@]}"; do
    echo "$r"
done
