#!/usr/bin/env python3
"""NumPy's counterpart of goselfsup's VOCMetric (evaluators/voc_metric.go), for tests: mmdet
2.x's eval_map (mmdet/core/evaluation/mean_ap.py: get_cls_results, tpfp_default,
average_precision; bbox_overlaps from bbox_overlaps.py), written afresh without scale ranges,
as VOCDataset.evaluate calls it (use_legacy_coordinate=True; dataset 'voc07' gives the
'11points' mode, any other 'area').

One deliberate difference: both sorts by score use np.argsort(-score, kind="stable") where
mmdet uses the default quicksort, so that equal scores keep their order (image by image,
then within an image) and the result does not hang on NumPy's sort internals.

  voc_map_reference.py INPUT.json
      INPUT (null for an empty list): {"num_classes": C, "iou_thrs": [...], "mode": "11points" | "area",
              "legacy": true, "images": [{"det_boxes": [[x1, y1, x2, y2], ...],
              "det_scores": [...], "det_labels": [...], "gt_boxes": [...], "gt_labels": [...],
              "ign_boxes": [...], "ign_labels": [...]}, ...]}
      Print JSON: {"results": [{"iou_thr": t, "mean_ap": m, "classes": [{"num_gts": n,
      "num_dets": d, "recall": r (the last, 0 without detections), "ap": a}, ...]}, ...]}.
"""
import json
import sys

import numpy as np


def bbox_overlaps(bboxes1, bboxes2, eps=1e-6, use_legacy_coordinate=False):
    extra_length = 1.0 if use_legacy_coordinate else 0.0
    bboxes1 = bboxes1.astype(np.float32)
    bboxes2 = bboxes2.astype(np.float32)
    rows, cols = bboxes1.shape[0], bboxes2.shape[0]
    ious = np.zeros((rows, cols), dtype=np.float32)
    if rows * cols == 0:
        return ious
    exchange = False
    if bboxes1.shape[0] > bboxes2.shape[0]:
        bboxes1, bboxes2 = bboxes2, bboxes1
        ious = np.zeros((cols, rows), dtype=np.float32)
        exchange = True
    area1 = (bboxes1[:, 2] - bboxes1[:, 0] + extra_length) * (bboxes1[:, 3] - bboxes1[:, 1] + extra_length)
    area2 = (bboxes2[:, 2] - bboxes2[:, 0] + extra_length) * (bboxes2[:, 3] - bboxes2[:, 1] + extra_length)
    for i in range(bboxes1.shape[0]):
        x_start = np.maximum(bboxes1[i, 0], bboxes2[:, 0])
        y_start = np.maximum(bboxes1[i, 1], bboxes2[:, 1])
        x_end = np.minimum(bboxes1[i, 2], bboxes2[:, 2])
        y_end = np.minimum(bboxes1[i, 3], bboxes2[:, 3])
        overlap = np.maximum(x_end - x_start + extra_length, 0) * np.maximum(y_end - y_start + extra_length, 0)
        union = area1[i] + area2 - overlap
        union = np.maximum(union, eps)
        ious[i, :] = overlap / union
    if exchange:
        ious = ious.T
    return ious


def tpfp_default(det_bboxes, gt_bboxes, gt_bboxes_ignore, iou_thr, use_legacy_coordinate):
    gt_ignore_inds = np.concatenate(
        (np.zeros(gt_bboxes.shape[0], dtype=bool), np.ones(gt_bboxes_ignore.shape[0], dtype=bool)))
    gt_bboxes = np.vstack((gt_bboxes, gt_bboxes_ignore))
    num_dets, num_gts = det_bboxes.shape[0], gt_bboxes.shape[0]
    tp = np.zeros(num_dets, dtype=np.float32)
    fp = np.zeros(num_dets, dtype=np.float32)
    if num_gts == 0:
        fp[...] = 1
        return tp, fp
    ious = bbox_overlaps(det_bboxes[:, :4], gt_bboxes, use_legacy_coordinate=use_legacy_coordinate)
    ious_max = ious.max(axis=1)
    ious_argmax = ious.argmax(axis=1)
    sort_inds = np.argsort(-det_bboxes[:, -1], kind="stable")
    gt_covered = np.zeros(num_gts, dtype=bool)
    for i in sort_inds:
        if float(ious_max[i]) >= iou_thr:  # in float64, as NumPy 1.x compares them
            matched_gt = ious_argmax[i]
            if not gt_ignore_inds[matched_gt]:
                if not gt_covered[matched_gt]:
                    gt_covered[matched_gt] = True
                    tp[i] = 1
                else:
                    fp[i] = 1
            # a match with an ignored box: neither tp nor fp
        else:
            fp[i] = 1
    return tp, fp


def average_precision(recalls, precisions, mode):
    ap = np.float32(0)
    if mode == "area":
        mrec = np.hstack((np.zeros(1, dtype=recalls.dtype), recalls, np.ones(1, dtype=recalls.dtype)))
        mpre = np.hstack((np.zeros(1, dtype=recalls.dtype), precisions, np.zeros(1, dtype=recalls.dtype)))
        for i in range(mpre.shape[0] - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        ind = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.float32(np.sum((mrec[ind + 1] - mrec[ind]) * mpre[ind + 1]))
    elif mode == "11points":
        acc = np.zeros(1, dtype=np.float32)
        for thr in np.arange(0, 1 + 1e-3, 0.1):
            precs = precisions[recalls >= thr]
            prec = precs.max() if precs.size > 0 else 0
            acc[0] += prec
        acc /= 11
        ap = acc[0]
    else:
        raise ValueError(mode)
    return ap


def boxes(v):
    return np.array(v, dtype=np.float32).reshape(-1, 4)


def eval_map(images, num_classes, iou_thr, mode, legacy):
    eval_results = []
    for c in range(num_classes):
        tps, fps, cls_dets, num_gts = [], [], [], 0
        for im in images:
            im = {k: v if v is not None else [] for k, v in im.items()}  # null: none
            labels = np.array(im["det_labels"], dtype=np.int64)
            dets = np.hstack((boxes(im["det_boxes"]), np.array(im["det_scores"], dtype=np.float32).reshape(-1, 1)))
            dets = dets[labels == c]
            gt = boxes(im["gt_boxes"])[np.array(im["gt_labels"], dtype=np.int64) == c]
            ign = boxes(im["ign_boxes"])[np.array(im["ign_labels"], dtype=np.int64) == c]
            tp, fp = tpfp_default(dets, gt, ign, iou_thr, legacy)
            tps.append(tp)
            fps.append(fp)
            cls_dets.append(dets)
            num_gts += gt.shape[0]
        cls_dets = np.vstack(cls_dets)
        num_dets = cls_dets.shape[0]
        sort_inds = np.argsort(-cls_dets[:, -1], kind="stable")
        tp = np.cumsum(np.hstack(tps)[sort_inds])
        fp = np.cumsum(np.hstack(fps)[sort_inds])
        eps = np.finfo(np.float32).eps
        # As mmdet: an int array (not a 0-d one, which NumPy 1.x would cast as a scalar, making
        # the recalls float32) against float32's eps: float64 recalls.
        recalls = tp / np.maximum(np.array([num_gts], dtype=np.int64), eps)
        precisions = tp / np.maximum(tp + fp, eps)
        ap = average_precision(recalls, precisions, mode)
        eval_results.append({"num_gts": num_gts, "num_dets": num_dets,
                             "recall": float(recalls[-1]) if num_dets > 0 else 0.0, "ap": float(ap)})
    aps = [r["ap"] for r in eval_results if r["num_gts"] > 0]
    mean_ap = float(np.array(aps, dtype=np.float32).mean()) if aps else 0.0
    return mean_ap, eval_results


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    out = []
    for thr in cfg["iou_thrs"]:
        mean_ap, classes = eval_map(cfg["images"], cfg["num_classes"], thr, cfg["mode"], cfg["legacy"])
        out.append({"iou_thr": thr, "mean_ap": mean_ap, "classes": classes})
    json.dump({"results": out}, sys.stdout)


if __name__ == "__main__":
    main()
