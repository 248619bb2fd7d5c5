#!/usr/bin/env bash
# Measures how long a node takes to join a running ring: three `dmlrun node`
# processes on loopback form a ring and train; once node 0 has logged an
# evaluation at step 10000 a fourth is started with -join, and the figure is the time from
# its start to its "joined the ring" line. Prints one line per trial and the
# median, per binary.
#
#   scripts/bench-join.sh [-trials 8] [-bin PATH]... [-v] [-keep DIR]
#
# Without -bin it builds ./cmd/dmlrun of this checkout. Several -bin run
# interleaved (trial 1 of each, then trial 2 of each, ...), so that a noisy
# machine affects them alike: e.g. -bin /tmp/dmlrun-old -bin ./dmlrun.
# -v runs the nodes with -v (Debug lines: "elastic action", "agreement
# failed"); -keep DIR keeps every node's log there.
set -euo pipefail
trials=8 bins=() verbose= keep=
while [ $# -gt 0 ]; do
  case "$1" in
    -trials) trials=$2; shift 2 ;;
    -bin) bins+=("$2"); shift 2 ;;
    -v) verbose=-v; shift ;;
    -keep) keep=$2; shift 2 ;;
    *) echo "usage: $0 [-trials N] [-bin PATH]... [-v] [-keep DIR]" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$keep" ]; then cp -r "$work"/t* "$keep/" 2>/dev/null || true; fi # a failed trial's logs too
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ ${#bins[@]} -eq 0 ]; then
  (cd "$(dirname "$0")/.." && go build -o "$work/dmlrun" ./cmd/dmlrun)
  bins=("$work/dmlrun")
fi
for b in "${bins[@]}"; do [ -x "$b" ] || { echo "$b: not an executable" >&2; exit 2; }; done
[ -n "$keep" ] && mkdir -p "$keep"
export DMLRUN_SECRET=${DMLRUN_SECRET:-bench-join-0123456789abcdef}

# wait_for FILE PATTERN SECONDS: wait until a line of FILE matches.
wait_for() {
  local i
  for ((i = 0; i < $3 * 50; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.02; done
  echo "timed out after $3 s waiting for '$2' in $1" >&2; return 1
}
# stamp_ms FILE PATTERN: the time= of the first line of FILE matching, in ms.
stamp_ms() { date -d "$(grep -m1 -- "$2" "$1" | sed -E 's/^time=([^ ]+) .*/\1/')" +%s%3N; }

# trial BIN DIR: one join; sets ms. (Not in a subshell: the trap must see
# the pids.)
trial() {
  local bin=$1 dir=$2 i t0 t1 gossip
  mkdir -p "$dir"
  cat > "$dir/train.yaml" <<YAML
name: join-bench
seed: 11
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 3001, test_samples: 300, features: 8, noise: 0.4}}
model: {kind: logistic, l2: 0.001}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 32, steps: 100000000, eval_every: 1000}
cluster: {nodes: 3}
output: {dir: $dir/out}
YAML
  node() { # node SLOT [JOIN]
    local join=()
    [ -n "${2:-}" ] && join=(-join "$2")
    "$bin" node $verbose -local -bind 127.0.0.1:0 -slot "$1" "${join[@]}" "$dir/train.yaml" 2>"$dir/node$1.log" >/dev/null &
    pids+=($!)
  }
  node 0
  wait_for "$dir/node0.log" 'gossip=' 20
  gossip=$(grep -m1 -o 'gossip=[^ ]*' "$dir/node0.log" | cut -d= -f2)
  node 1 "$gossip"
  node 2 "$gossip"
  # Training for a while (10000 steps, about half a second), so that every
  # member gossips that it trains: a node that starts before it knows that
  # takes the cluster for one forming its first ring.
  wait_for "$dir/node0.log" 'msg=eval .*step=10000 ' 60
  t0=$(date +%s%3N)
  node 3 "$gossip"
  wait_for "$dir/node3.log" 'joined the ring' 60
  t1=$(stamp_ms "$dir/node3.log" 'joined the ring')
  for i in "${pids[@]}"; do kill -9 "$i" 2>/dev/null || true; done
  for i in "${pids[@]}"; do wait "$i" 2>/dev/null || true; done
  pids=()
  ms=$((t1 - t0))
}

declare -A results
for ((k = 1; k <= trials; k++)); do
  for ((b = 0; b < ${#bins[@]}; b++)); do
    dir="$work/t$k-b$b"
    trial "${bins[b]}" "$dir"
    results[$b]+="$ms "
    echo "trial $k ${bins[b]}: joined after $ms ms"
    if [ -n "$keep" ]; then cp -r "$dir" "$keep/"; fi
    rm -rf "$dir"
  done
done
for ((b = 0; b < ${#bins[@]}; b++)); do
  printf '%s\n' ${results[$b]} | sort -n | awk -v bin="${bins[b]}" -v all="${results[$b]}" '{a[NR] = $1}
    END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
          printf "%s: median over %d trials %s ms; min %s ms, max %s ms (%s)\n", bin, NR, m, a[1], a[NR], all }'
done
