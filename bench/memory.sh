#!/usr/bin/env bash
# The forwarder's memory and start-up figures on this machine, over loopback only:
#
#   ready_ms        time from exec to the first 200 from GET /readyz (median of READY_RUNS runs;
#                   polled every 2 ms by a small Python client)
#   idle            RSS (VmRSS) of a started forwarder that has received nothing, after 2 s
#   idle_conns      RSS with IDLE_CONNS silent TCP connections open (`loadgen idle`), and the
#                   forwarder's CPU seconds over IDLE_SECONDS with them open against
#                   IDLE_SECONDS with none (cost flat in the number of idle connections)
#   overload        peak RSS (VmHWM) with `--buffer-bytes 64MiB` while loadgen sends
#                   OVERLOAD_POINTS at 10x what the sink takes (`loadgen sink --max-rate`), so
#                   the buffer fills and the default `drop_newest` policy refuses the rest
#
# Usage: bench/memory.sh
# Environment:
#   IDLE_CONNS=N        idle connections (default 10000; `ulimit -n` is raised for the children)
#   IDLE_SECONDS=S      CPU sampling window with and without them (default 5)
#   SINK_RATE=R         datapoints per second the sink takes under overload (default 100000)
#   OVERLOAD_POINTS=N   datapoints sent at 10 x SINK_RATE (default 10000000, 10 s)
#   READY_RUNS=N        start-ups timed (default 5)
#   BIN=PATH            the forwarder binary (default $CARGO_TARGET_DIR/release/blueflood-forward)
#   SKIP_BUILD=1        do not run cargo build first
# Everything listens on 127.0.0.1. Every wait is bounded; every child is killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SECONDS=${IDLE_SECONDS:-5}
SINK_RATE=${SINK_RATE:-100000}
OVERLOAD_POINTS=${OVERLOAD_POINTS:-10000000}
READY_RUNS=${READY_RUNS:-5}

TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/blueflood-forward}
LOADGEN=$TARGET/release/examples/loadgen

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup memory

wait_ready() {
    local port=$1 i
    for ((i = 0; i < 100; i++)); do
        curl -fsS --max-time 1 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

rss_mib() {
    awk -v k="$2:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

if [[ -z ${SKIP_BUILD:-} ]]; then
    cargo build --release --examples --bins >&2
fi
[[ -x $BIN && -x $LOADGEN ]] || die "missing $BIN or $LOADGEN (build first)"
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"

# Room for the idle connections on both ends (each end holds one descriptor per connection).
want=$((IDLE_CONNS + 1024))
if (($(ulimit -n) < want)); then
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
if (($(ulimit -n) < want)); then
    echo "memory.sh: ulimit -n is $(ulimit -n); fewer than $IDLE_CONNS idle connections may open" >&2
fi

SINK_PORT=$(free_port)
"$LOADGEN" sink --port "$SINK_PORT" 2>"$WORK/sink.log" &
CHILDREN+=("$!")
wait_listening "$SINK_PORT" || die "sink did not start"

# start_forwarder NAME ARGS...: sets FWD_PID, IN_PORT, ADMIN_PORT.
start_forwarder() {
    local name=$1
    shift
    IN_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    "$BIN" -b "http://127.0.0.1:$SINK_PORT" -e "tcp:$IN_PORT:interface=127.0.0.1" -i 1 \
        --admin-addr "127.0.0.1:$ADMIN_PORT" "$@" >"$WORK/fwd-$name.out" 2>"$WORK/fwd-$name.log" &
    FWD_PID=$!
    CHILDREN+=("$FWD_PID")
    wait_ready "$ADMIN_PORT" || die "forwarder ($name) not ready: $(tail -20 "$WORK/fwd-$name.log")"
}

# Ready time: exec to the first 200 from /readyz, measured by the process that execs it.
echo "timing start-up ($READY_RUNS runs)" >&2
READY_MS=$(python3 - "$BIN" "$SINK_PORT" "$READY_RUNS" <<'EOF'
import http.client, socket, statistics, subprocess, sys, time

binary, sink_port, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

times = []
for _ in range(runs):
    in_port, admin = free_port(), free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, "-b", f"http://127.0.0.1:{sink_port}",
                             "-e", f"tcp:{in_port}:interface=127.0.0.1",
                             "--admin-addr", f"127.0.0.1:{admin}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = t0 + 10
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", admin, timeout=0.5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    times.append((time.monotonic() - t0) * 1000)
                    break
            except OSError:
                pass
            time.sleep(0.002)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
print(f"{statistics.median(times):.0f} (min {min(times):.0f}, max {max(times):.0f})" if times else "never")
EOF
)

echo "idle RSS and $IDLE_CONNS idle connections" >&2
start_forwarder idle --max-connections $((IDLE_CONNS + 100))
sleep 2
IDLE_RSS=$(rss_mib "$FWD_PID" VmRSS)
c0=$(cpu_seconds "$FWD_PID")
sleep "$IDLE_SECONDS"
IDLE_CPU=$(awk -v a="$c0" -v b="$(cpu_seconds "$FWD_PID")" 'BEGIN { printf "%.2f", b - a }')

"$LOADGEN" idle --connect "127.0.0.1:$IN_PORT" --connections "$IDLE_CONNS" \
    --hold $((IDLE_SECONDS + 60)) >"$WORK/idle.out" 2>"$WORK/idle.log" &
IDLE_PID=$!
CHILDREN+=("$IDLE_PID")
for ((i = 0; i < 600; i++)); do
    grep -q '^connected' "$WORK/idle.out" && break
    kill -0 "$IDLE_PID" 2>/dev/null || break
    sleep 0.1
done
OPENED=$(awk '/^connected/ { print $2 }' "$WORK/idle.out")
OPENED=${OPENED:-0}
sleep 2
CONNS_RSS=$(rss_mib "$FWD_PID" VmRSS)
c0=$(cpu_seconds "$FWD_PID")
sleep "$IDLE_SECONDS"
CONNS_CPU=$(awk -v a="$c0" -v b="$(cpu_seconds "$FWD_PID")" 'BEGIN { printf "%.2f", b - a }')
kill -TERM "$IDLE_PID" 2>/dev/null || true
wait "$IDLE_PID" 2>/dev/null || true
stop "$FWD_PID"

echo "overload: 64 MiB buffer, sink at $SINK_RATE/s, sending at $((SINK_RATE * 10))/s" >&2
kill -TERM "${CHILDREN[0]}" 2>/dev/null || true
wait "${CHILDREN[0]}" 2>/dev/null || true
SINK_PORT=$(free_port)
"$LOADGEN" sink --port "$SINK_PORT" --max-rate "$SINK_RATE" 2>"$WORK/slow-sink.log" &
CHILDREN+=("$!")
wait_listening "$SINK_PORT" || die "slow sink did not start"
start_forwarder overload --buffer-bytes 64MiB
"$LOADGEN" send --pickle "127.0.0.1:$IN_PORT" --points "$OVERLOAD_POINTS" --connections 4 \
    --rate $((SINK_RATE * 10)) >"$WORK/send.out" 2>&1 &
SEND_PID=$!
CHILDREN+=("$SEND_PID")
wait "$SEND_PID" || die "loadgen send failed"
OVER_PEAK=$(rss_mib "$FWD_PID" VmHWM)
OVER_NOW=$(rss_mib "$FWD_PID" VmRSS)
OVER_REFUSED=$(curl -fsS --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null |
    awk '/^[a-z_]*dropped[a-z_]*\{.*buffer_full/ { s += $NF } END { printf "%d", s }')
stop "$FWD_PID"

echo
echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
printf "%-44s %s\n" "ready (exec to /readyz 200), ms" "$READY_MS"
printf "%-44s %s\n" "RSS idle, MiB" "$IDLE_RSS"
printf "%-44s %s\n" "RSS with $OPENED idle connections, MiB" "$CONNS_RSS"
printf "%-44s %s\n" "CPU s over ${IDLE_SECONDS}s: no connections / $OPENED idle" "$IDLE_CPU / $CONNS_CPU"
printf "%-44s %s\n" "peak RSS, 10x overload, 64 MiB buffer, MiB" "$OVER_PEAK (at end: $OVER_NOW; points refused as buffer_full: ${OVER_REFUSED:-?})"
