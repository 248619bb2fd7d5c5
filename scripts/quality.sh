#!/usr/bin/env bash
# Issue 11's quality target: dmlrun against scikit-learn on the small data
# sets scikit-learn bundles.
#
#   bash scripts/quality.sh [-np N] [-regen] [NAME ...]   # default: -np 2, every data set
#
# Builds dmlrun, trains examples/<name>.yaml with `dmlrun -np N` for each of
# diabetes (linear), breast_cancer (logistic), wine, iris and digits
# (softmax), reads the final test R² or accuracy from the run's model.json
# (`eval`), fits scikit-learn's LinearRegression / LogisticRegression (lbfgs,
# max_iter 100000, tol 1e-10, so to convergence) on the same CSVs, and prints
# a table. For logistic and softmax scikit-learn gets what dmlrun's example
# gets: features standardized with the training rows' mean and population
# std (StandardScaler) and C = 1/(l2 · n_train), the same objective (README,
# "Quality against scikit-learn"). The last column, the gap between dmlrun's
# final training objective (metrics.csv train_loss, L2 included) and
# scikit-learn's at its optimum, shows how far from converged dmlrun is.
# Exits 1 if any test score differs from scikit-learn's by more than 0.02.
# -regen first rewrites examples/data/*-{train,test}.csv with
# scripts/sklearn-datasets.py. Needs Go, and python3 with scikit-learn and
# pandas and PyYAML (Debian: apt-get install python3-sklearn python3-pandas python3-yaml).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
np=2
regen=0
names=()
while [ $# -gt 0 ]; do
	case $1 in
	-np) np=$2; shift 2 ;;
	-regen) regen=1; shift ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	-*) echo "quality.sh: unknown flag $1" >&2; exit 2 ;;
	*) names+=("$1"); shift ;;
	esac
done
[ ${#names[@]} -gt 0 ] || names=(diabetes breast_cancer wine iris digits)

# The first python3 that has scikit-learn (a pyenv shim may come before Debian's).
py=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sklearn, pandas, yaml' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
	echo "quality.sh: no python3 with scikit-learn, pandas and PyYAML (apt-get install python3-sklearn python3-pandas python3-yaml)" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmlrun-quality.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

[ $regen = 1 ] && "$py" "$repo/scripts/sklearn-datasets.py" "$repo/examples/data"
(cd "$repo" && go build -o "$tmp/dmlrun" ./cmd/dmlrun)

for n in "${names[@]}"; do
	cfg=$repo/examples/$n.yaml
	[ -f "$cfg" ] || { echo "quality.sh: no $cfg" >&2; exit 2; }
	start=$(date +%s.%N)
	# Outputs go to runs/<name> under the temporary directory.
	if ! (cd "$tmp" && timeout 300 ./dmlrun -np "$np" -progress none "$cfg" >"$tmp/$n.out" 2>&1); then
		echo "quality.sh: dmlrun -np $np $cfg failed:" >&2
		tail -20 "$tmp/$n.out" >&2
		exit 1
	fi
	end=$(date +%s.%N)
	echo "$n $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}')" >>"$tmp/times"
done

cd "$repo"
"$py" - "$tmp" "${names[@]}" <<'PY'
import json, os, sys
import numpy as np, pandas as pd, yaml
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

tmp, names = sys.argv[1], sys.argv[2:]
times = dict(l.split() for l in open(os.path.join(tmp, "times")))
rows, miss = [], 0
for n in names:
    cfg = yaml.safe_load(open(f"examples/{n}.yaml"))
    d, kind = cfg["data"], cfg["model"]["kind"]
    l2 = float(cfg["model"].get("l2", 0))
    tr = pd.read_csv(os.path.join("examples", d["train"]))
    te = pd.read_csv(os.path.join("examples", d["test"]))
    lab = d.get("label", tr.columns[-1])
    Xtr, ytr = tr.drop(columns=lab).to_numpy(float), tr[lab].to_numpy()
    Xte, yte = te.drop(columns=lab).to_numpy(float), te[lab].to_numpy()
    if d.get("normalize"):
        s = StandardScaler().fit(Xtr)  # population std; std 0 counts as 1
        Xtr, Xte = s.transform(Xtr), s.transform(Xte)
    if kind == "linear":
        assert l2 == 0, f"{n}: LinearRegression has no penalty; set model.l2: 0"
        m = LinearRegression().fit(Xtr, ytr)
        sk = m.score(Xte, yte)
        obj = np.mean((m.predict(Xtr) - ytr) ** 2)
        task, metric = "regression", "r2"
    else:
        C = 1 / (l2 * len(ytr)) if l2 > 0 else 1e12
        m = LogisticRegression(C=C, max_iter=100000, tol=1e-10).fit(Xtr, ytr)
        sk = m.score(Xte, yte)
        obj = log_loss(ytr, m.predict_proba(Xtr), labels=m.classes_) + l2 / 2 * np.sum(m.coef_ ** 2)
        task, metric = ("binary" if kind == "logistic" else f"{len(m.classes_)} classes"), "accuracy"
    run = os.path.join(tmp, "runs", cfg.get("name", n))
    ev = json.load(open(os.path.join(run, "model.json")))["eval"]
    assert ev["set"] == "test", ev
    dm = ev[metric]
    last = pd.read_csv(os.path.join(run, "metrics.csv")).iloc[-1]
    steps = json.load(open(os.path.join(run, "model.json")))["steps_done"]
    diff = dm - sk
    ok = abs(diff) <= 0.02
    miss += not ok
    rows.append((n, f"{kind}, {task}", f"{len(ytr)}+{len(yte)}", metric,
                 f"{sk:.4f}", f"{dm:.4f}", (f"{diff:+.1e}" if diff else "0"), "yes" if ok else "NO",
                 f"{last['train_loss'] - obj:+.1e}", str(steps), times[n] + " s"))

head = ("dataset", "model, task", "rows train+test", "metric", "sklearn", "dmlrun",
        "difference", "within 0.02", "objective gap", "steps", "dmlrun wall")
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")
print(f"\n{len(rows) - miss} of {len(rows)} within 0.02 of scikit-learn")
sys.exit(1 if miss else 0)
PY
