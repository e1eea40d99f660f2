#!/usr/bin/env python3
"""NumPy's counterpart of goselfsup's IoUMetric (evaluators/iou.go), for tests: mmseg 1.x's
IoUMetric.intersect_and_union per image, the areas summed over the images, then
total_area_to_metrics and compute_metrics's rounding, written afresh with np.bincount
(mmseg's torch.histc, without its float32 counts).

  iou_reference.py DIR CLASSES IGNORE METRICS [NAN_TO_NUM [BETA]]
      read DIR/pred_0.npy, DIR/label_0.npy, DIR/pred_1.npy, ... (integer label maps of any
      shape, pred and label of an image alike) until one is missing; METRICS is a comma list
      of mIoU, mDice, mFscore; NAN_TO_NUM is a number or 'none'. Print JSON: "summary" (aAcc,
      mIoU, ...: np.round(np.nanmean(v) * 100, 2)), "class" (per metric, per class:
      np.round(v * 100, 2), NaN as null) and, where prettytable imports, "table" (mmseg's
      PrettyTable of the classes c0, c1, ...).
"""
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np


def intersect_and_union(pred, label, num_classes, ignore_index):
    mask = label != ignore_index
    pred, label = pred[mask], label[mask]
    intersect = pred[pred == label]
    area_intersect = np.bincount(intersect, minlength=num_classes)
    area_pred = np.bincount(pred, minlength=num_classes)
    area_label = np.bincount(label, minlength=num_classes)
    return area_intersect, area_pred + area_label - area_intersect, area_pred, area_label


def total_area_to_metrics(inter, union, pred, label, metrics, nan_to_num, beta):
    inter, union, pred, label = (x.astype(np.float64) for x in (inter, union, pred, label))
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = OrderedDict({"aAcc": inter.sum() / label.sum()})
        for metric in metrics:
            if metric == "mIoU":
                ret["IoU"] = inter / union
                ret["Acc"] = inter / label
            elif metric == "mDice":
                ret["Dice"] = 2 * inter / (pred + label)
                ret["Acc"] = inter / label
            elif metric == "mFscore":
                precision, recall = inter / pred, inter / label
                ret["Fscore"] = (1 + beta**2) * (precision * recall) / (beta**2 * precision + recall)
                ret["Precision"] = precision
                ret["Recall"] = recall
    if nan_to_num is not None:
        ret = OrderedDict({k: np.nan_to_num(v, nan=nan_to_num) for k, v in ret.items()})
    return ret


def main():
    d, num_classes, ignore = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    metrics = sys.argv[4].split(",")
    nan_to_num = None if len(sys.argv) < 6 or sys.argv[5] == "none" else float(sys.argv[5])
    beta = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
    totals = [np.zeros(num_classes, np.int64) for _ in range(4)]
    i = 0
    while os.path.exists(os.path.join(d, f"pred_{i}.npy")):
        pred = np.load(os.path.join(d, f"pred_{i}.npy")).astype(np.int64).ravel()
        label = np.load(os.path.join(d, f"label_{i}.npy")).astype(np.int64).ravel()
        for t, a in zip(totals, intersect_and_union(pred, label, num_classes, ignore)):
            t += a
        i += 1
    ret = total_area_to_metrics(*totals, metrics, nan_to_num, beta)
    with np.errstate(invalid="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        summary = OrderedDict()
        for k, v in ret.items():
            summary[k if k == "aAcc" else "m" + k] = float(np.round(np.nanmean(v) * 100, 2))
    ret.pop("aAcc")
    per_class = OrderedDict({k: np.round(v * 100, 2) for k, v in ret.items()})
    nan = lambda x: None if math.isnan(x) else float(x)
    out = {"summary": {k: nan(v) for k, v in summary.items()},
           "class": {k: [nan(x) for x in v] for k, v in per_class.items()}}
    try:
        from prettytable import PrettyTable
    except ImportError:
        pass
    else:
        table = PrettyTable()
        table.add_column("Class", [f"c{c}" for c in range(num_classes)])
        for k, v in per_class.items():
            table.add_column(k, v.astype(np.float32))  # mmseg's areas are float32
        out["table"] = table.get_string()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
