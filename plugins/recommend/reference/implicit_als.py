"""The `implicit` library's ALS on a split written by `mediaflow eval recommend --export-split`.

Bench- and test-only (in the venv of scripts/reference-venv.sh), never a runtime dependency.
Reads DIR/train.tsv (user, item, weight, ms) and DIR/test.tsv (user, item); prints one JSON
object: a row per configuration with HR@k, NDCG@k, coverage and training time, measured the
way mediaflow measures them (each user's read items left out of their ranking).

    python implicit_als.py DIR [--factors 64 --regularization 0.1 --alpha 1 --iterations 15]
                               [--k 10] [--train-only]
"""

import argparse
import json
import math
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's own advice for its CPU solver

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares


def read(path, cols):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= cols:
                rows.append(parts)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--regularization", type=float, default=0.1)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--train-only", action="store_true")
    a = ap.parse_args()

    train = read(os.path.join(a.dir, "train.tsv"), 3)
    users, items = {}, {}
    for u, i, *_ in train:
        users.setdefault(u, len(users))
        items.setdefault(i, len(items))
    test = [] if a.train_only else read(os.path.join(a.dir, "test.tsv"), 2)
    for u, i in test:
        users.setdefault(u, len(users))
        items.setdefault(i, len(items))
    r = np.array([users[t[0]] for t in train], dtype=np.int32)
    c = np.array([items[t[1]] for t in train], dtype=np.int32)
    w = np.array([float(t[2]) for t in train], dtype=np.float32)
    shape = (len(users), len(items))

    configs = [
        # mediaflow's objective exactly: confidence 1 + alpha * weight, same factors,
        # regularisation, sweeps and conjugate-gradient steps.
        ("implicit ALS (same settings)", 1.0 + a.alpha * w,
         dict(factors=a.factors, regularization=a.regularization, alpha=1.0,
              iterations=a.iterations)),
        # The library's defaults, weights as confidence.
        ("implicit ALS (its defaults)", w, dict()),
    ]
    out = []
    for name, data, params in configs:
        ui = sp.csr_matrix((data, (r, c)), shape=shape, dtype=np.float32)
        model = AlternatingLeastSquares(random_state=42, calculate_training_loss=False, **params)
        started = time.perf_counter()
        model.fit(ui, show_progress=False)
        train_seconds = time.perf_counter() - started
        row = {"model": name, "train_seconds": train_seconds}
        if test:
            uids = np.array([users[u] for u, _ in test], dtype=np.int32)
            target = np.array([items[i] for _, i in test])
            started = time.perf_counter()
            ids, _ = model.recommend(uids, ui[uids], N=a.k, filter_already_liked_items=True)
            rank_seconds = time.perf_counter() - started
            hits, ndcg, shown = 0, 0.0, set()
            for row_ids, t in zip(ids, target):
                shown.update(int(x) for x in row_ids if x >= 0)
                where = np.nonzero(row_ids == t)[0]
                if len(where):
                    hits += 1
                    ndcg += 1.0 / math.log2(where[0] + 2)
            n = max(len(test), 1)
            row.update(hr=hits / n, ndcg=ndcg / n, coverage=len(shown) / max(len(items), 1),
                       users_per_second=len(test) / max(rank_seconds, 1e-9))
        out.append(row)
    print(json.dumps({"rows": out}))


if __name__ == "__main__":
    main()
