#!/usr/bin/env python3
"""Export the small data sets that scikit-learn bundles into train/test CSVs.

    python3 scripts/sklearn-datasets.py [OUTDIR]     # default: examples/data

For each of diabetes, breast_cancer, wine, iris and digits this writes
OUTDIR/<name>-train.csv and OUTDIR/<name>-test.csv: a header of feature names
(spaces and other odd characters replaced by '_') and the target last, in a
column named `label`. The split is fixed: 75/25, random_state=0, stratified
by class for the classification sets. Values are written as Python's
shortest round-trip floats (integers without a decimal point), so the files
are byte-for-byte reproducible with the same scikit-learn.

The data come from scikit-learn's own loaders (sklearn/datasets/data),
distributed under the BSD 3-Clause licence; see examples/data/README.md.
"""

import csv
import os
import re
import sys

from sklearn import datasets
from sklearn.model_selection import train_test_split

SETS = [
    # name, loader, classification?
    ("diabetes", lambda: datasets.load_diabetes(scaled=False), False),
    ("breast_cancer", datasets.load_breast_cancer, True),
    ("wine", datasets.load_wine, True),
    ("iris", datasets.load_iris, True),
    ("digits", datasets.load_digits, True),
]


def fmt(v):
    f = float(v)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


def clean(name):
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_")


def write(path, names, X, y):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names + ["label"])
        for row, label in zip(X, y):
            w.writerow([fmt(v) for v in row] + [fmt(label)])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "examples", "data")
    os.makedirs(out, exist_ok=True)
    for name, load, classification in SETS:
        b = load()
        X, y = b.data, b.target
        names = [clean(n) for n in b.feature_names]
        assert len(set(names)) == len(names), name
        Xtr, Xte, ytr, yte = train_test_split(
            X, y, test_size=0.25, random_state=0,
            stratify=y if classification else None)
        write(os.path.join(out, name + "-train.csv"), names, Xtr, ytr)
        write(os.path.join(out, name + "-test.csv"), names, Xte, yte)
        print(f"{name}: {len(ytr)} train + {len(yte)} test rows, {X.shape[1]} features")


if __name__ == "__main__":
    main()
