#!/usr/bin/env bash
# Runs the plugin, snapshot and backup benches of two builds side by side, interleaved, into one directory of raw outputs.
#
#   bench/before-after.sh BEFORE_DIR AFTER_DIR OUT_DIR [pluginRounds=3] [benches="plugin-latency snapshots backup"] [firstNumber=1]
#
# BEFORE_DIR and AFTER_DIR are built checkouts (`git worktree add DIR COMMIT && cd DIR && npm ci && npm run build`).
# Order: plugin-latency A B A B ... (pluginRounds each), snapshots A B, backup B A (so neither build always goes
# first; AFTER_FIRST=1 runs the snapshots after first). Each run's stdout and stderr go to OUT_DIR/NN-bench-{before,after}.txt, with the load average before
# and after; nothing is written into bench/results by the benches themselves (--no-write).
set -euo pipefail
before=$(realpath "$1")
after=$(realpath "$2")
out=$(realpath -m "$3")
rounds=${4:-3}
benches=" ${5:-plugin-latency snapshots backup} "
mkdir -p "$out"
n=$((${6:-1} - 1))
want() { [[ "$benches" == *" $1 "* ]]; }
run() { # run LABEL DIR BENCH ARGS...
  local label=$1 dir=$2 bench=$3
  shift 3
  n=$((n + 1))
  local f
  f=$(printf '%s/%02d-%s-%s.txt' "$out" "$n" "$bench" "$label")
  {
    echo "# $bench ($label) — $(git -C "$dir" rev-parse --short HEAD) — $(date -u +%FT%TZ)"
    echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  } >"$f"
  (cd "$dir" && node "dist/bench/$bench.js" "$@") >>"$f" 2>&1
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$f"
  echo "done: $f"
}
{
  echo "machine: $(nproc) cores, $(uname -r), $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
  echo "before: $(git -C "$before" rev-parse HEAD)"
  echo "after:  $(git -C "$after" rev-parse HEAD)"
  echo "started: $(date -u +%FT%TZ)"
} >>"$out/00-machine.txt"
if want plugin-latency; then
  for _ in $(seq "$rounds"); do
    run before "$before" plugin-latency
    run after "$after" plugin-latency
  done
fi
if want snapshots; then
  if [[ -n "${AFTER_FIRST:-}" ]]; then # for ABBA series over several invocations
    run after "$after" snapshots --no-write
    run before "$before" snapshots --no-write
  else
    run before "$before" snapshots --no-write
    run after "$after" snapshots --no-write
  fi
fi
if want backup; then
  run after "$after" backup --no-write
  run before "$before" backup --no-write
fi
echo "ended: $(date -u +%FT%TZ)" >>"$out/00-machine.txt"
