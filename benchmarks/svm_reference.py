#!/usr/bin/env python3
"""scikit-learn's counterpart of goselfsup's VOC07 SVM benchmark (evaluators/voc07.go), for
tests and benchmarks: mmselfsup's train_svm_kfold_parallel.py and test_svm.py, in one process.

  svm_reference.py folds DIR K
      read DIR/y.npy (int8, +1/-1) and print StratifiedKFold(K)'s test folds as JSON
  svm_reference.py voc07 DIR COST[,COST...]
      read DIR/train_x.npy, DIR/test_x.npy (float64 features) and DIR/train_t.npy,
      DIR/test_t.npy (int8 targets: 1 present, 0 difficult, -1 absent); normalise the
      features to f / (||f|| + 1e-5); per class, score each cost by 3-fold cross-validated
      average precision of LinearSVC(C, class_weight={1: 2, -1: 1}, squared hinge, L2, dual,
      tol 1e-4, max_iter 2000), difficult images counting as negatives; refit the best cost
      on train; test AP (svm_helper's calculate_ap) without the difficult images. Print JSON.
"""
import json
import os
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC


def calculate_ap(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mpre[idx]))


def test_ap(targets, preds):
    ind = np.argsort(preds)[::-1]
    tp = (targets[ind] > 0).astype(np.float64)
    fp = 1 - tp
    P = np.cumsum(tp) / (np.cumsum(tp) + np.cumsum(fp))
    R = np.cumsum(tp) / np.sum(targets > 0)
    return calculate_ap(R, P)


def voc07(d, costs):
    load = lambda n: np.load(os.path.join(d, n))
    train_x, test_x, train_t, test_t = load("train_x.npy"), load("test_x.npy"), load("train_t.npy"), load("test_t.npy")
    norm = lambda x: x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)
    train_x, test_x = norm(train_x), norm(test_x)
    out = {"cv_ap": [], "cost": [], "ap": []}
    t0 = time.perf_counter()
    for c in range(train_t.shape[1]):
        y = np.where(train_t[:, c] == 1, 1, -1)
        svm = lambda cost: LinearSVC(C=cost, class_weight={1: 2, -1: 1}, intercept_scaling=1.0, penalty="l2",
                                     loss="squared_hinge", tol=1e-4, dual=True, max_iter=2000)
        cv = [float(cross_val_score(svm(cost), train_x, y, cv=3, scoring="average_precision").mean()) for cost in costs]
        best = costs[int(np.argmax(cv))]
        clf = svm(best).fit(train_x, y)
        keep = test_t[:, c] != 0
        pred = clf.decision_function(test_x[keep])
        out["cv_ap"].append(cv)
        out["cost"].append(best)
        out["ap"].append(test_ap(np.where(test_t[keep, c] == 1, 1, -1), pred))
    out["map"] = float(np.mean(out["ap"]))
    out["seconds"] = time.perf_counter() - t0
    return out


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "folds":
        y = np.load(os.path.join(d, "y.npy"))
        folds = StratifiedKFold(n_splits=int(sys.argv[3])).split(np.zeros(len(y)), y)
        print(json.dumps([test.tolist() for _, test in folds]))
    elif cmd == "voc07":
        print(json.dumps(voc07(d, [float(c) for c in sys.argv[3].split(",")])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
