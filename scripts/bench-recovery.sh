#!/usr/bin/env bash
# Measures how long a kill -9 stops training: from the kill of a random node
# to the first step that the new ring completes (the line "first step of the
# new ring done" that its rank 0 logs), over T trials of `dmlrun -np N` on
# loopback. Prints one line per trial and the median.
#
#   scripts/bench-recovery.sh [-np 4] [-trials 10] [-bin ./dmlrun] [-config train.yaml]
#
# -config runs your job instead of the built-in synthetic one (give it
# enough steps to outlast the kill), e.g. a large CSV to see what reading the
# lost node's shards costs.
set -euo pipefail
np=4 trials=10 bin=./dmlrun config=
while [ $# -gt 0 ]; do
  case "$1" in
    -np) np=$2; shift 2 ;;
    -trials) trials=$2; shift 2 ;;
    -bin) bin=$2; shift 2 ;;
    -config) config=$2; shift 2 ;;
    *) echo "usage: $0 [-np N] [-trials T] [-bin PATH] [-config FILE]" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "$bin: not built (make build)" >&2; exit 2; }
[ "$np" -ge 2 ] || { echo "-np must be at least 2 (a survivor must remain)" >&2; exit 2; }
work=$(mktemp -d)
job=
cleanup() { [ -n "$job" ] && kill -9 "$job" 2>/dev/null; pkill -9 -P "$job" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/train.yaml" <<YAML
name: recovery-bench
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 20000, features: 20, noise: 0.5}}
model: {kind: logistic}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 256, steps: 100000000}
cluster: {rejoin_timeout: 30s}
output: {dir: $work/out}
YAML
[ -n "$config" ] && cp "$config" "$work/train.yaml"
# wait_for FILE PATTERN SECONDS: wait until a line of FILE matches.
wait_for() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do grep -q "$2" "$1" && return 0; sleep 0.05; done
  echo "timed out after $3 s waiting for '$2' in $1" >&2; return 1
}
ms=()
for ((k = 1; k <= trials; k++)); do
  log="$work/log.$k"
  "$bin" -np "$np" -v "$work/train.yaml" 2>"$log" >/dev/null &
  job=$!
  wait_for "$log" 'msg=training' 120
  sleep "0.$((RANDOM % 9 + 1))"       # let it train a random while
  mapfile -t kids < <(pgrep -P "$job")
  victim=${kids[RANDOM % ${#kids[@]}]}
  t0=$(date +%s%3N)
  kill -9 "$victim"
  wait_for "$log" 'first step of the new ring done' 30
  stamp=$(grep -m1 'first step of the new ring done' "$log" | sed -E 's/.*time=([^ ]+) .*/\1/')
  t1=$(date -d "$stamp" +%s%3N)
  ms+=($((t1 - t0)))
  echo "trial $k: killed pid $victim, first step of the new ring after $((t1 - t0)) ms ($(grep -m1 'ring recovered' "$log" | grep -o 'pause=[^ ]*'))"
  kill -INT "$job"; wait "$job" 2>/dev/null || true; job=
done
printf '%s\n' "${ms[@]}" | sort -n | awk -v n="$np" '{a[NR] = $1}
  END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "median over %d trials (n=%d): %s ms; min %s ms, max %s ms\n", NR, n, m, a[1], a[NR] }'
