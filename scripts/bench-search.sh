#!/usr/bin/env bash
# Measures what a search saves: one `dmlrun -np N` run of a search of 8
# logistic regressions (100 features, batch 256) against the same 8
# candidates trained one run each (a search of one candidate, so the rows,
# the validation split and the steps are the same). Runs are interleaved,
# T rounds of (search, 8 separate runs); prints each round and the medians.
#
#   scripts/bench-search.sh [-np 2] [-trials 3] [-bin ./dmlrun] [-samples 100000] [-epochs 3]
set -euo pipefail
np=2 trials=3 bin=./dmlrun samples=100000 epochs=3
while [ $# -gt 0 ]; do
  case "$1" in
    -np) np=$2; shift 2 ;;
    -trials) trials=$2; shift 2 ;;
    -bin) bin=$2; shift 2 ;;
    -samples) samples=$2; shift 2 ;;
    -epochs) epochs=$2; shift 2 ;;
    *) echo "usage: $0 [-np N] [-trials T] [-bin PATH] [-samples ROWS] [-epochs E]" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "$bin: not built (make build)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lrs=(0.001 0.01 0.03 0.1) l2s=(0 0.0001)
job() { # job NAME GRID: a train.yaml searching GRID
  cat > "$work/$1.yaml" <<YAML
name: $1
seed: 1
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: $samples, features: 100, noise: 0.5}}
model: {kind: logistic}
optimizer: {kind: sgd, lr: 0.01}
training: {batch_size: 256, epochs: $epochs, validation_fraction: 0.1}
search: $2
output: {dir: $work/out-$1}
YAML
}
job search "{optimizer.lr: [$(IFS=,; echo "${lrs[*]}")], model.l2: [$(IFS=,; echo "${l2s[*]}")]}"
k=0
for l2 in "${l2s[@]}"; do for lr in "${lrs[@]}"; do
  job "one$k" "{optimizer.lr: [$lr], model.l2: [$l2]}"; k=$((k + 1))
done; done
secs() { # secs FILE: wall seconds of running dmlrun on it
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" -np "$np" -progress none "$1" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
s=() e=()
for ((r = 1; r <= trials; r++)); do
  one=$(secs "$work/search.yaml")
  sep=0
  for ((k = 0; k < 8; k++)); do sep=$(echo "$sep + $(secs "$work/one$k.yaml")" | bc); done
  printf 'round %d: search of 8 %.2fs, 8 separate runs %.2fs (ratio %.2f)\n' "$r" "$one" "$sep" "$(echo "$one / $sep" | bc -l)"
  s+=("$one") e+=("$sep")
done
ms=$(median "${s[@]}") me=$(median "${e[@]}")
printf 'median: search %.2fs, separate %.2fs, ratio %.2f (target <= 0.5); -np %d, %d rows, %d epochs\n' "$ms" "$me" "$(echo "$ms / $me" | bc -l)" "$np" "$samples" "$epochs"
