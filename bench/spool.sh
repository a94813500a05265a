#!/usr/bin/env bash
# What the durable disk spool costs, on this machine, over loopback only.
#
# This script owns the spool measurement. Three sections, each repeated REPEAT times:
#
#   healthy   Blueflood up (`loadgen sink`), spool off against on (`--spool-dir`), for each rate
#             in RATES: POINTS datapoints as carbon-relay pickle frames over CONNECTIONS
#             connections (as bench/quick.sh), until the sink has counted them all (or the
#             ledger has settled every one: delivered + dropped). Reports the forwarder's CPU per
#             million datapoints delivered and datapoints per CPU-second, and from /status how
#             many datapoints went through the spool anyway (`spool.written_total`: bodies are
#             spilled while the buffer is above `--spool-threshold`, which an unthrottled burst
#             into a small BUFFER_BYTES reaches; they come back at the default drain rate, 50,000
#             datapoints/s, which then sets wall_s), `dropped_total` and `balanced`.
#   down      Blueflood down (`-b` a closed port: connection refused), for each fsync mode in
#             FSYNCS (`--spool-fsync 1000` / `batch`): POINTS datapoints at DOWN_RATE, until the
#             /status ledger shows them all `spooled` (+ `in_flight`: the drainer's record in
#             hand), nothing buffered. Reports CPU for ingest-to-disk, and disk bytes per
#             datapoint = total size of the *.seg files / datapoints spooled; the segments are
#             decoded (record format of src/spool/record.rs) to split that figure into metric
#             name bytes, the per-point fixed part (name-length varint + timestamp + value) and
#             per-record/per-segment overhead.
#   replay    Right after each `down` run: that forwarder is stopped with SIGTERM (it keeps the
#             spool), a new one starts on the same spool directory against a healthy sink with
#             `--spool-drain-rate DRAIN_RATE`; time and forwarder CPU (start-up recovery
#             included) until the sink has counted every datapoint. Then it is stopped and the
#             sink's final count must equal POINTS (no loss, no duplicate), with `dropped_total`
#             0 and the ledger balanced.
#
# cpu_s is the forwarder's alone (utime+stime from /proc/PID/stat); the sink and the sender share
# the 2 cores but are not counted. The load average is printed with every row (other work on the machine
# skews wall time more than CPU time). Rows marked CHECK broke an invariant (lost, duplicated or
# dropped points, unbalanced ledger, forwarder exit status not 0).
#
# Usage: bench/spool.sh
# Environment:
#   POINTS=N            datapoints per run (default 2000000)
#   CONNECTIONS=C       sender connections (default 4)
#   RATES="R ..."       send rates for `healthy`, datapoints/s, 0 = unthrottled (default "1000000 0")
#   DOWN_RATE=R         send rate for `down` (default 1000000; 0 = unthrottled)
#   FSYNCS="F ..."      `--spool-fsync` values for `down` (default "1000 batch")
#   DRAIN_RATE=R        `--spool-drain-rate` for `replay` (default 10000000)
#   SECTIONS="..."      from: healthy down (replay runs after each down) (default "healthy down")
#   REPEAT=N            repetitions of everything (default 1); ranges are printed per variant
#   TIMEOUT=S           seconds to wait for each run to complete (default 180)
#   SPOOL_PARENT=DIR    where the spool directories are made (default: the mktemp work directory,
#                       under ${TMPDIR:-/tmp}); its filesystem is printed
#   BUFFER_BYTES=B      --buffer-bytes of every forwarder (default 512MiB, as bench/quick.sh; the
#                       spool threshold is a fraction of it, so a smaller buffer makes an
#                       unthrottled burst spill)
#   SKIP_BUILD=1        do not run cargo build first
#   FORWARDER_ARGS      extra arguments for every forwarder run
#   BIN=PATH            the forwarder binary (default $CARGO_TARGET_DIR/release/blueflood-forward)
#
# Everything listens on 127.0.0.1. Every wait is bounded; every child is killed on exit and the
# work directory (spool directories included) removed.
set -euo pipefail

cd "$(dirname "$0")/.."

POINTS=${POINTS:-2000000}
CONNECTIONS=${CONNECTIONS:-4}
RATES=${RATES:-"1000000 0"}
DOWN_RATE=${DOWN_RATE:-1000000}
FSYNCS=${FSYNCS:-"1000 batch"}
DRAIN_RATE=${DRAIN_RATE:-10000000}
SECTIONS=${SECTIONS:-"healthy down"}
REPEAT=${REPEAT:-1}
TIMEOUT=${TIMEOUT:-180}
FORWARDER_ARGS=${FORWARDER_ARGS:-}
BUFFER_BYTES=${BUFFER_BYTES:-512MiB}

TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/blueflood-forward}
LOADGEN=$TARGET/release/examples/loadgen

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup spool
SPOOL_PARENT=${SPOOL_PARENT:-$WORK}

now() { date +%s.%N; }
load() { awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg; }
log() { echo "[$*]" >&2; }

if [[ -z ${SKIP_BUILD:-} ]]; then
    cargo build --release --examples --bins >&2
fi
[[ -x $BIN && -x $LOADGEN ]] || die "missing $BIN or $LOADGEN (build first)"
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed (free ports, /status, segment decoding)"
mkdir -p "$SPOOL_PARENT"

# Fields of the forwarder's /status, by dotted path, space-separated ("?" when unreadable).
status_fields() {
    local port=$1
    shift
    { curl -fsS --max-time 2 "http://127.0.0.1:$port/status" 2>/dev/null || true; } | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    d = None
out = []
for path in sys.argv[1:]:
    v = d
    for k in path.split("."):
        v = v.get(k) if isinstance(v, dict) else None
    out.append("?" if v is None else str(v).lower())
print(" ".join(out))
' "$@"
}

# Decodes every *.seg in DIR: "seg_bytes segments records points name_bytes varint_bytes".
seg_stats() {
    python3 - "$1" <<'EOF'
import glob, os, struct, sys
seg_bytes = segs = records = points = name_bytes = varint_bytes = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.seg"))):
    data = open(path, "rb").read()
    seg_bytes += len(data)
    segs += 1
    at = 8  # magic BFSPOOL1
    while at + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, at)
        payload = data[at + 8 : at + 8 + length]
        if len(payload) < length:
            break
        count = struct.unpack_from("<I", payload, 9)[0]
        p = 13
        for _ in range(count):
            n = shift = 0
            start = p
            while True:
                b = payload[p]
                p += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            varint_bytes += p - start
            name_bytes += n
            p += n + 16
        records += 1
        points += count
        at += 8 + length
print(seg_bytes, segs, records, points, name_bytes, varint_bytes)
EOF
}

# start_forwarder NAME BACKEND_PORT [ARGS...]: sets FWD_PID, IN_PORT, ADMIN_PORT.
start_forwarder() {
    local name=$1 backend=$2
    shift 2
    IN_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    [[ $ADMIN_PORT != "$IN_PORT" ]] || ADMIN_PORT=$(free_port)
    # -p: the names of the figures in README.md (recorded when "metric_prefix" was the default
    # prefix; now there is none by default): 14 bytes more per datapoint on disk.
    # shellcheck disable=SC2086
    "$BIN" -b "http://127.0.0.1:$backend" -e "tcp:$IN_PORT:interface=127.0.0.1" -i 1 -p metric_prefix \
        --admin-addr "127.0.0.1:$ADMIN_PORT" --buffer-bytes "$BUFFER_BYTES" "$@" $FORWARDER_ARGS \
        >"$WORK/$name.out" 2>"$WORK/$name.log" &
    FWD_PID=$!
    CHILDREN+=("$FWD_PID")
    wait_listening "$IN_PORT" || die "forwarder $name did not start: $(tail -20 "$WORK/$name.log")"
    wait_listening "$ADMIN_PORT" || die "forwarder $name: no admin port: $(tail -20 "$WORK/$name.log")"
}

# start_sink NAME: sets SINK_PID, SINK_PORT.
start_sink() {
    SINK_PORT=$(free_port)
    "$LOADGEN" sink --port "$SINK_PORT" 2>"$WORK/$1.log" &
    SINK_PID=$!
    CHILDREN+=("$SINK_PID")
    wait_listening "$SINK_PORT" || die "sink did not start: $(cat "$WORK/$1.log")"
}

# stop PID: SIGTERM, up to 30 s, then SIGKILL; sets STOP_RC to its exit status (not in a
# subshell: only this shell can reap its children).
stop() {
    local pid=$1 i rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still running 30 s after SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    STOP_RC=$rc
}

# send RATE: POINTS datapoints to the forwarder's IN_PORT (in the background, so that a signal
# runs the trap at once).
send() {
    "$LOADGEN" send --pickle "127.0.0.1:$IN_PORT" --points "$POINTS" \
        --connections "$CONNECTIONS" --rate "$1" >&2 &
    local pid=$!
    CHILDREN+=("$pid")
    wait "$pid" || die "loadgen send failed"
}

# The metric names loadgen sends: "loadgen.c{conn}.host{%04d}.cpu.metric{0..6}", so their mean
# length depends only on how many points each connection sends.
mean_name_len() {
    awk -v n="$POINTS" -v c="$CONNECTIONS" 'BEGIN {
        for (i = 0; i < c; i++) {
            share = int(n / c) + (i < n % c ? 1 : 0)
            total += share * (length("loadgen.c" i ".host0000.cpu.metric0"))
        }
        printf "%.2f", total / n
    }'
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
# row SECTION VARIANT FIELDS...: one tab-separated result line.
row() {
    local IFS=$'\t'
    echo "$*" >>"$RESULTS"
}

run_healthy() {
    local rate=$1 spool=$2 rep=$3 variant name spool_args=()
    variant="rate=$rate,spool=$spool"
    name="healthy-$rate-$spool-$rep"
    if [[ $spool == on ]]; then
        spool_args=(--spool-dir "$SPOOL_PARENT/$name")
    fi
    start_sink "sink-$name"
    start_forwarder "$name" "$SINK_PORT" "${spool_args[@]}"
    log "healthy $variant #$rep: sending $POINTS datapoints (load $(load))"
    local t0 t1 count=0 deadline polls=0 settled
    t0=$(now)
    send "$rate"
    deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        count=$(sink_count "$SINK_PORT")
        ((count >= POINTS)) && break
        # Points dropped (buffer full) never reach the sink: stop once the ledger has settled
        # every point, looked at every 0.5 s.
        if ((++polls % 10 == 0)); then
            read -r -a settled <<<"$(status_fields "$ADMIN_PORT" ledger.delivered ledger.dropped_total)"
            [[ ${settled[0]} != "?" ]] && ((settled[0] + settled[1] == POINTS)) && break
        fi
        sleep 0.05
    done
    t1=$(now)
    local cpu rss
    cpu=$(cpu_seconds "$FWD_PID")
    rss=$(peak_rss_mib "$FWD_PID")
    # The ledger settles a moment after the sink counted (the answer is still on its way).
    local st i
    for ((i = 0; i < 50; i++)); do
        read -r -a st <<<"$(status_fields "$ADMIN_PORT" ledger.delivered ledger.dropped_total ledger.balanced spool.written_total)"
        [[ ${st[0]} != "?" ]] && ((st[0] + st[1] == POINTS)) && break
        sleep 0.1
    done
    local rc
    stop "$FWD_PID"
    rc=$STOP_RC
    stop "$SINK_PID"
    local spilled=${st[3]:-?}
    [[ $spool == on ]] || spilled=-
    local check=ok
    [[ $count == "$POINTS" && ${st[1]} == 0 && ${st[2]} == true && $rc == 0 ]] || check=CHECK
    [[ $check == ok ]] || log "healthy $variant #$rep: sink $count, /status delivered/dropped/balanced/spilled ${st[*]}, exit $rc; log: $(tail -5 "$WORK/$name.log")"
    [[ $spool == off ]] || rm -rf "$SPOOL_PARENT/$name"
    row healthy "$variant" "$rep" "$count" "$t0" "$t1" "$cpu" "$rss" "$spilled" "${st[1]}" "${st[2]}" "$rc" "$check" "$(load)"
}

# run_down_replay FSYNC REP
run_down_replay() {
    local fsync=$1 rep=$2 name dir dead
    name="down-$fsync-$rep"
    dir="$SPOOL_PARENT/spool-$name"
    dead=$(free_port) # nothing listens there: connection refused
    start_forwarder "$name" "$dead" --spool-dir "$dir" --spool-fsync "$fsync"
    log "down fsync=$fsync #$rep: sending $POINTS datapoints at $DOWN_RATE/s to a forwarder whose Blueflood refuses connections (load $(load))"
    local t0 t1 deadline st=() settled=0
    t0=$(now)
    send "$DOWN_RATE"
    deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        read -r -a st <<<"$(status_fields "$ADMIN_PORT" ledger.spooled ledger.in_flight ledger.buffered ledger.received_total)"
        if [[ ${st[0]} != "?" && ${st[3]} == "$POINTS" && ${st[2]} == 0 ]] &&
            ((st[0] + st[1] == POINTS)); then
            settled=1
            break
        fi
        sleep 0.05
    done
    t1=$(now)
    local cpu rss
    cpu=$(cpu_seconds "$FWD_PID")
    rss=$(peak_rss_mib "$FWD_PID")
    ((settled)) || log "down fsync=$fsync #$rep: not all spooled after ${TIMEOUT}s: spooled/in_flight/buffered/received ${st[*]}"
    local sp
    read -r -a sp <<<"$(status_fields "$ADMIN_PORT" spool.written_total spool.bytes spool.segments ledger.dropped_total ledger.balanced)"
    local rc
    stop "$FWD_PID"
    rc=$STOP_RC
    local segs
    read -r -a segs <<<"$(seg_stats "$dir")"
    local check=ok
    [[ $settled == 1 && ${sp[3]} == 0 && ${sp[4]} == true && $rc == 0 && ${segs[3]} == "$POINTS" ]] || check=CHECK
    [[ $check == ok ]] || log "down fsync=$fsync #$rep: written/bytes/segments/dropped/balanced ${sp[*]}, on disk ${segs[3]} points, exit $rc; log: $(tail -5 "$WORK/$name.log")"
    local spooled=${st[0]}
    ((settled)) && spooled=$((st[0] + st[1]))
    row down "fsync=$fsync" "$rep" "$spooled" "$t0" "$t1" "$cpu" "$rss" "${segs[*]}" "${sp[0]}" "${sp[3]}" "${sp[4]}" "$rc" "$check" "$(load)"

    # Replay that spool into a healthy sink.
    name="replay-$fsync-$rep"
    start_sink "sink-$name"
    log "replay fsync=$fsync #$rep: new forwarder on the same spool, drain rate $DRAIN_RATE/s (load $(load))"
    t0=$(now)
    start_forwarder "$name" "$SINK_PORT" --spool-dir "$dir" --spool-drain-rate "$DRAIN_RATE"
    local count=0
    deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        count=$(sink_count "$SINK_PORT")
        ((count >= POINTS)) && break
        sleep 0.05
    done
    t1=$(now)
    cpu=$(cpu_seconds "$FWD_PID")
    rss=$(peak_rss_mib "$FWD_PID")
    local i
    for ((i = 0; i < 50; i++)); do
        read -r -a st <<<"$(status_fields "$ADMIN_PORT" ledger.recovered ledger.delivered ledger.dropped_total ledger.balanced ledger.spooled ledger.in_flight spool.replay_done)"
        [[ ${st[1]} == "$POINTS" ]] && break
        sleep 0.1
    done
    stop "$FWD_PID"
    rc=$STOP_RC
    sleep 0.2
    local final
    final=$(sink_count "$SINK_PORT")
    stop "$SINK_PID"
    local left
    left=$(seg_stats "$dir" | awk '{ print $4 }')
    check=ok
    [[ $final == "$POINTS" && ${st[0]} == "$POINTS" && ${st[2]} == 0 && ${st[3]} == true && $rc == 0 && $left == 0 ]] || check=CHECK
    [[ $check == ok ]] || log "replay fsync=$fsync #$rep: sink $final, recovered/delivered/dropped/balanced/spooled/in_flight/replay_done ${st[*]}, points left on disk $left, exit $rc; log: $(tail -5 "$WORK/$name.log")"
    row replay "fsync=$fsync" "$rep" "$final" "$t0" "$t1" "$cpu" "$rss" "${st[0]}" "${st[2]}" "${st[3]}" "$left" "$rc" "$check" "$(load)"
    rm -rf "$dir"
}

echo "spool.sh: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); spool on $(df -PT "$SPOOL_PARENT" | awk 'NR == 2 { print $2 " (" $1 ")" }'); load at start $(load)" >&2
for ((rep = 1; rep <= REPEAT; rep++)); do
    for section in $SECTIONS; do
        case $section in
            healthy)
                for rate in $RATES; do
                    for spool in off on; do
                        run_healthy "$rate" "$spool" "$rep"
                    done
                done
                ;;
            down)
                for fsync in $FSYNCS; do
                    run_down_replay "$fsync" "$rep"
                done
                ;;
            *) die "unknown section $section" ;;
        esac
    done
done

NAME_LEN=$(mean_name_len)
echo
echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); spool filesystem $(df -PT "$SPOOL_PARENT" | awk 'NR == 2 { print $2 }'); load at end $(load)"
echo "points $POINTS per run, $CONNECTIONS connections, buffer $BUFFER_BYTES, gzip level 1 unless FORWARDER_ARGS says otherwise ($FORWARDER_ARGS); down rate $DOWN_RATE/s; drain rate $DRAIN_RATE/s; loadgen names average $NAME_LEN bytes as sent (the forwarder prepends -p metric_prefix, \"metric_prefix.\", 14 bytes; \"name\" below is what is stored)"
awk -F'\t' -v points="$POINTS" '
function sec(s) { return s == "healthy" ? 1 : s == "down" ? 2 : 3 }
{
    wall = $6 - $5; cpu = $7
    per_cpu = cpu > 0 ? $4 / cpu : 0; per_m = $4 > 0 ? cpu * 1e6 / $4 : 0
    per_wall = wall > 0 ? $4 / wall : 0
    if ($1 == "healthy") {
        line = sprintf("%-22s %2d %9d %7.2f %6.2f %7.3f %10.0f %10.0f %7s %9s %4s %5s %3s %-5s %s",
            $2, $3, $4, wall, cpu, per_m, per_cpu, per_wall, $8, $9, $10, $11, $12, $13, $14)
    } else if ($1 == "down") {
        split($9, s, " ")  # seg_bytes segments records points name_bytes varint_bytes
        bpp = s[4] > 0 ? s[1] / s[4] : 0
        name = s[4] > 0 ? s[5] / s[4] : 0; fixed = s[4] > 0 ? (s[6] + 16 * s[4]) / s[4] : 0
        over = bpp - name - fixed
        line = sprintf("%-13s %2d %9d %7.2f %6.2f %7.3f %10.0f %10.0f %7s %11d %3d %5d %6.2f %5.2f %5.2f %5.2f %4s %5s %3s %-5s %s",
            $2, $3, $4, wall, cpu, per_m, per_cpu, per_wall, $8, s[1], s[2], s[3], bpp, name, fixed, over, $11, $12, $13, $14, $15)
    } else {
        line = sprintf("%-13s %2d %9d %7.2f %6.2f %7.3f %10.0f %10.0f %7s %9s %4s %5s %4s %3s %-5s %s",
            $2, $3, $4, wall, cpu, per_m, per_cpu, per_wall, $8, $9, $10, $11, $12, $13, $14, $15)
    }
    rows[sec($1)] = rows[sec($1)] line "\n"
    key = $1 SUBSEP $2
    if (!(key in n)) { order[++k] = key }
    n[key]++
    if (n[key] == 1 || per_m < lo_m[key]) lo_m[key] = per_m
    if (n[key] == 1 || per_m > hi_m[key]) hi_m[key] = per_m
    if (n[key] == 1 || per_cpu < lo_c[key]) lo_c[key] = per_cpu
    if (n[key] == 1 || per_cpu > hi_c[key]) hi_c[key] = per_cpu
    if (n[key] == 1 || per_wall < lo_w[key]) lo_w[key] = per_wall
    if (n[key] == 1 || per_wall > hi_w[key]) hi_w[key] = per_wall
    if ($1 == "down") {
        if (n[key] == 1 || bpp < lo_b[key]) lo_b[key] = bpp
        if (n[key] == 1 || bpp > hi_b[key]) hi_b[key] = bpp
    }
    extra[key] = extra[key] ($1 == "healthy" ? " " $9 : "")
    if ($(NF - 1) != "ok") bad[key]++
}
END {
    print "\n== healthy: Blueflood up (loadgen sink), spool off vs on; spilled = spool.written_total"
    printf "%-22s %2s %9s %7s %6s %7s %10s %10s %7s %9s %4s %5s %3s %-5s %s\n", "variant", "#", "delivered", "wall_s", "cpu_s", "cpu_s/M", "pts/cpu_s", "pts/wall_s", "rss_MiB", "spilled", "drop", "bal", "rc", "check", "load"
    printf "%s", rows[1]
    print "\n== down: Blueflood refuses connections, everything to disk; spooled = ledger spooled + in_flight (the record the drainer holds); B/pt = *.seg bytes / points on disk = name + fixed (varint+ts+value) + overhead (record headers, magic)"
    printf "%-13s %2s %9s %7s %6s %7s %10s %10s %7s %11s %3s %5s %6s %5s %5s %5s %4s %5s %3s %-5s %s\n", "variant", "#", "spooled", "wall_s", "cpu_s", "cpu_s/M", "pts/cpu_s", "pts/wall_s", "rss_MiB", "seg_bytes", "seg", "recs", "B/pt", "name", "fixed", "over", "drop", "bal", "rc", "check", "load"
    printf "%s", rows[2]
    print "\n== replay: new forwarder on that spool, healthy sink; delivered = the sink'"'"'s final count; wall from exec to the sink counting the last point"
    printf "%-13s %2s %9s %7s %6s %7s %10s %10s %7s %9s %4s %5s %4s %3s %-5s %s\n", "variant", "#", "delivered", "wall_s", "cpu_s", "cpu_s/M", "pts/cpu_s", "pts/wall_s", "rss_MiB", "recovered", "drop", "bal", "left", "rc", "check", "load"
    printf "%s", rows[3]
    print "\n== ranges (min-max over runs)"
    printf "%-8s %-22s %4s %-15s %-17s %-17s %-13s %s\n", "section", "variant", "runs", "cpu_s/M", "pts/cpu_s", "pts/wall_s", "B/pt", "spilled / failed checks"
    for (i = 1; i <= k; i++) {
        key = order[i]; split(key, p, SUBSEP)
        b = p[1] == "down" ? sprintf("%.2f-%.2f", lo_b[key], hi_b[key]) : "-"
        printf "%-8s %-22s %4d %-15s %-17s %-17s %-13s %s%s\n", p[1], p[2], n[key],
            sprintf("%.3f-%.3f", lo_m[key], hi_m[key]),
            sprintf("%.0f-%.0f", lo_c[key], hi_c[key]),
            sprintf("%.0f-%.0f", lo_w[key], hi_w[key]), b,
            extra[key] != "" ? "spilled" extra[key] : "", bad[key] ? " CHECK x" bad[key] : ""
    }
}' "$RESULTS"
