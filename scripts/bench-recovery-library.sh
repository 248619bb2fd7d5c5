#!/usr/bin/env bash
# Measures how long a kill -9 stops a program built on package elastic:
# examples/library (k-means) on 4 local processes; one is killed at step 50,
# and the pause runs from the kill to rank 0's "ring re-formed" line (the new
# ring formed, the state synced and the points re-sharded). Prints each trial
# and the median.
#
#   scripts/bench-recovery-library.sh [-trials 10]
set -euo pipefail
trials=10
while [ $# -gt 0 ]; do
  case "$1" in
    -trials) trials=$2; shift 2 ;;
    *) echo "usage: $0 [-trials T]" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/km" ./examples/library
# wait_for FILE PATTERN COUNT SECONDS: wait until FILE has more than COUNT lines matching.
wait_for() {
  local i
  for ((i = 0; i < $4 * 50; i++)); do [ "$(grep -c "$2" "$1")" -gt "$3" ] && return 0; sleep 0.02; done
  echo "timed out after $4 s waiting for '$2' in $1" >&2; return 1
}
ms=()
for ((t = 1; t <= trials; t++)); do
  args=(-nodes 4 -steps 100000 -points 400000)
  "$work/km" "${args[@]}" -bind 127.0.0.1:0 >/dev/null 2>"$work/r0.log" &
  pids=($!)
  wait_for "$work/r0.log" 'msg=listening' 0 30
  seed=$(grep -m1 msg=listening "$work/r0.log" | sed 's/.*gossip=//')
  for s in 1 2 3; do "$work/km" "${args[@]}" -slot $s -bind 127.0.0.1:0 -join "$seed" >/dev/null 2>"$work/r$s.log" & pids+=($!); done
  wait_for "$work/r0.log" 'msg=step step=50 ' 0 60
  before=$(grep -c 'ring re-formed' "$work/r0.log" || true)
  t0=$(date +%s%N)
  kill -9 "${pids[2]}"
  wait_for "$work/r0.log" 'ring re-formed' "$before" 30
  stamp=$(grep 'ring re-formed' "$work/r0.log" | tail -1 | sed -E 's/^time=([^ ]+) .*/\1/')
  t1=$(date -d "$stamp" +%s%N)
  ms+=($(((t1 - t0) / 1000000)))
  echo "trial $t: the ring re-formed $(((t1 - t0) / 1000000)) ms after the kill"
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
done
printf '%s\n' "${ms[@]}" | sort -n | awk '{a[NR] = $1} END {printf "median over %d trials: %d ms; min %d, max %d\n", NR, (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2, a[1], a[NR]}'
