#!/usr/bin/env bash
# Short fuzzing run of every cargo-fuzz target in fuzz/ (pickle_decode, line_decode,
# spool_record): SECONDS_PER_TARGET seconds each (default 60), seeded from fuzz/seeds/<target>
# (frames cut from tests/data/pickle, sample lines, spool records written by the
# `spool::record` unit tests); new inputs go to fuzz/corpus/<target>, crashes to
# fuzz/artifacts/<target> (both gitignored). Exits non-zero on the first crash.
#
# cargo-fuzz needs a nightly compiler; on the stable toolchain RUSTC_BOOTSTRAP=1 unlocks the
# flags it uses (-Zsanitizer=address). Installs cargo-fuzz from crates.io when missing.
# Usage: scripts/fuzz-smoke.sh [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(pickle_decode line_decode spool_record)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

echo "== fuzz: building ${targets[*]}"
(cd fuzz && cargo fuzz build)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  echo "== fuzz: $t for ${secs}s"
  status=0
  (cd fuzz && cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1) >"$log" 2>&1 \
    || status=$?
  grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    echo "== fuzz: $t FAILED (exit $status); reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t artifacts/$t/<file>)"
    exit 1
  fi
  echo "== fuzz: $t ok"
done
