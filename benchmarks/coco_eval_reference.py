#!/usr/bin/env python3
"""NumPy's counterpart of goselfsup's COCOeval (coco/eval.go), for tests: pycocotools'
COCOeval (loadRes, evaluate, accumulate, summarize) for bbox and segm, written afresh from
the description of cocoeval.py, with mask IoU counted on decoded bitmaps.

  coco_eval_reference.py GT.json RESULTS.json IOU_TYPE [MAXDETS]

GT.json is an instances file (segmentations as polygons or RLE), RESULTS.json a COCO results
list, IOU_TYPE bbox or segm, MAXDETS a comma list (default 1,10,100). Prints JSON
{"stats": [12 numbers]}.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coco_mask_reference import poly_bitmap  # noqa: E402


def decode_string(s):
    """Inverse of the compressed counts: 5-bit groups, 0x20 continues, 0x10 of the last group
    is the sign; from the 4th count on, the value is a delta to the count two back."""
    counts = []
    i = 0
    while i < len(s):
        value, shift = 0, 0
        while True:
            c = ord(s[i]) - 48
            i += 1
            value |= (c & 0x1F) << shift
            shift += 5
            if not c & 0x20:
                if c & 0x10:
                    value -= 1 << shift
                break
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def rle_bitmap(seg):
    h, w = seg["size"]
    counts = seg["counts"]
    if isinstance(counts, str):
        counts = decode_string(counts)
    flat = np.zeros(h * w, dtype=bool)
    pos, val = 0, False
    for c in counts:
        if val:
            flat[pos:pos + c] = True
        pos += c
        val = not val
    return flat.reshape(w, h).T


def seg_bitmap(seg, h, w):
    if isinstance(seg, list):
        out = np.zeros((h, w), dtype=bool)
        for p in seg:
            out |= poly_bitmap(p, h, w).astype(bool)
        return out
    return rle_bitmap(seg)


def mask_iou(dts, gts, crowd):
    out = np.zeros((len(dts), len(gts)))
    for i, d in enumerate(dts):
        da = d.sum()
        for j, g in enumerate(gts):
            inter = np.count_nonzero(d & g)
            if inter == 0:
                continue
            union = da if crowd[j] else np.count_nonzero(d | g)
            out[i, j] = inter / union
    return out


def box_iou(dts, gts, crowd):
    out = np.zeros((len(dts), len(gts)))
    for i, (dx, dy, dw, dh) in enumerate(dts):
        for j, (gx, gy, gw, gh) in enumerate(gts):
            iw = min(dx + dw, gx + gw) - max(dx, gx)
            ih = min(dy + dh, gy + gh) - max(dy, gy)
            if iw <= 0 or ih <= 0:
                continue
            inter = iw * ih
            out[i, j] = inter / (dw * dh if crowd[j] else dw * dh + gw * gh - inter)
    return out


def evaluate(gt, results, iou_type, max_dets):
    iou_thrs = np.linspace(0.5, 0.95, 10)
    rec_thrs = np.linspace(0.0, 1.0, 101)
    max_dets = sorted(max_dets)
    area_rngs = [[0, 1e10], [0, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e10]]
    images = {im["id"]: im for im in gt["images"]}
    img_ids = sorted(images)
    cat_ids = sorted(c["id"] for c in gt["categories"])
    segm = iou_type == "segm"

    gts, dts = {}, {}
    for a in gt["annotations"]:
        if a["image_id"] not in images or a["category_id"] not in cat_ids:
            continue
        im = images[a["image_id"]]
        g = {"id": a["id"], "area": a["area"], "crowd": bool(a.get("iscrowd", 0)), "bbox": a["bbox"]}
        if segm:
            g["mask"] = seg_bitmap(a["segmentation"], im["height"], im["width"])
        gts.setdefault((a["image_id"], a["category_id"]), []).append(g)
    box_mode = len(results) > 0 and "bbox" in results[0]
    for n, r in enumerate(results):
        assert r["image_id"] in images
        d = {"id": n + 1, "score": r["score"]}
        if box_mode:
            d["bbox"] = r["bbox"]
            d["area"] = r["bbox"][2] * r["bbox"][3]
            if segm and "segmentation" in r:
                d["mask"] = rle_bitmap(r["segmentation"])
            elif segm:  # the box's corners as a polygon
                x, y, w, h = r["bbox"]
                im = images[r["image_id"]]
                d["mask"] = poly_bitmap([x, y, x, y + h, x + w, y + h, x + w, y], im["height"], im["width"]).astype(bool)
        else:
            d["mask"] = rle_bitmap(r["segmentation"])
            d["area"] = int(d["mask"].sum())
            if "bbox" in r:
                d["bbox"] = r["bbox"]
            else:
                ys, xs = np.nonzero(d["mask"])
                d["bbox"] = [0, 0, 0, 0] if len(xs) == 0 else [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        if r["category_id"] in cat_ids:
            dts.setdefault((r["image_id"], r["category_id"]), []).append(d)

    T, R, K, A, M = len(iou_thrs), len(rec_thrs), len(cat_ids), len(area_rngs), len(max_dets)
    # per (k, a, image): (scores, matched[T,D], ignored[T,D], gt_ignored[G]) or None
    records = {}
    for k, cat in enumerate(cat_ids):
        for img in img_ids:
            g_all = gts.get((img, cat), [])
            d_all = dts.get((img, cat), [])
            if not g_all and not d_all:
                continue
            order = np.argsort([-d["score"] for d in d_all], kind="stable")
            d_sorted = [d_all[i] for i in order][: max_dets[-1]]
            crowd = [g["crowd"] for g in g_all]
            if not d_sorted or not g_all:
                ious = np.zeros((len(d_sorted), len(g_all)))
            elif segm:
                ious = mask_iou([d["mask"] for d in d_sorted], [g["mask"] for g in g_all], crowd)
            else:
                ious = box_iou([d["bbox"] for d in d_sorted], [g["bbox"] for g in g_all], crowd)
            for a, (lo, hi) in enumerate(area_rngs):
                ign = np.array([g["crowd"] or g["area"] < lo or g["area"] > hi for g in g_all], dtype=bool)
                gorder = np.argsort(ign.astype(int), kind="stable")
                gign = ign[gorder]
                gcrowd = [crowd[i] for i in gorder]
                iou_s = ious[:, gorder] if ious.size else ious
                D, G = len(d_sorted), len(g_all)
                matched = np.zeros((T, D), dtype=bool)
                dt_ign = np.zeros((T, D), dtype=bool)
                for t, thr in enumerate(iou_thrs):
                    gt_taken = np.zeros(G, dtype=bool)
                    for di in range(D):
                        best, m = min(thr, 1 - 1e-10), -1
                        for gi in range(G):
                            if gt_taken[gi] and not gcrowd[gi]:
                                continue
                            if m >= 0 and not gign[m] and gign[gi]:
                                break
                            if iou_s[di, gi] >= best:
                                best, m = iou_s[di, gi], gi
                        if m >= 0:
                            matched[t, di] = True
                            dt_ign[t, di] = gign[m]
                            gt_taken[m] = True
                out_of_range = np.array([d["area"] < lo or d["area"] > hi for d in d_sorted], dtype=bool)
                dt_ign |= ~matched & out_of_range[None, :]
                records[k, a, img] = ([d["score"] for d in d_sorted], matched, dt_ign, gign)

    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for k in range(K):
        for a in range(A):
            for m, md in enumerate(max_dets):
                recs = [records[k, a, img] for img in img_ids if (k, a, img) in records]
                if not recs:
                    continue
                n_gt = sum(int(np.sum(~r[3])) for r in recs)
                if n_gt == 0:
                    continue
                scores = np.concatenate([np.asarray(r[0][:md], dtype=float) for r in recs])
                order = np.argsort(-scores, kind="stable")
                matched = np.concatenate([r[1][:, :md] for r in recs], axis=1)[:, order]
                ign = np.concatenate([r[2][:, :md] for r in recs], axis=1)[:, order]
                tp = np.cumsum(matched & ~ign, axis=1).astype(float)
                fp = np.cumsum(~matched & ~ign, axis=1).astype(float)
                nd = tp.shape[1]
                for t in range(T):
                    rc = tp[t] / n_gt
                    pr = tp[t] / (tp[t] + fp[t] + np.finfo(np.float64).eps)
                    recall[t, k, a, m] = rc[-1] if nd else 0
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
                    idx = np.searchsorted(rc, rec_thrs, side="left")
                    q = np.zeros(R)
                    ok = idx < nd
                    q[ok] = pr[idx[ok]]
                    precision[t, :, k, a, m] = q

    def summ(ap, thr=None, area=0, md=100):
        mi = [i for i, v in enumerate(max_dets) if v == md]
        if not mi:
            return -1.0
        if ap:
            s = precision[:, :, :, area, mi[0]]
            if thr is not None:
                s = s[np.isclose(iou_thrs, thr, rtol=0, atol=1e-12)]
        else:
            s = recall[:, :, area, mi[0]]
        v = s[s > -1]
        return float(v.mean()) if v.size else -1.0

    md2 = max_dets[2]
    return [summ(True), summ(True, 0.5, 0, md2), summ(True, 0.75, 0, md2), summ(True, None, 1, md2),
            summ(True, None, 2, md2), summ(True, None, 3, md2), summ(False, md=max_dets[0]),
            summ(False, md=max_dets[1]), summ(False, md=md2), summ(False, None, 1, md2),
            summ(False, None, 2, md2), summ(False, None, 3, md2)]


def main():
    gt = json.load(open(sys.argv[1]))
    results = json.load(open(sys.argv[2]))
    max_dets = [int(x) for x in sys.argv[4].split(",")] if len(sys.argv) > 4 else [1, 10, 100]
    json.dump({"stats": evaluate(gt, results, sys.argv[3], max_dets)}, sys.stdout)


if __name__ == "__main__":
    main()
