#!/usr/bin/env python3
"""NumPy's counterpart of goselfsup's COCO masks (coco/rle.go), for tests: pycocotools'
run-length masks written afresh from the description of maskApi.c, working on bitmaps
instead of runs wherever it can.

  coco_mask_reference.py < request.json > answer.json

The request is {"masks": [{"h", "w", "data": row-major 0/1 list}], "polys": [{"h", "w",
"poly": [x0, y0, x1, y1, ...]}], "ious": [{"dt": [mask indices], "gt": [mask indices],
"crowd": [0/1 per gt]}]}. The answer has, per mask, "counts" (runs of the column-major
pixels, zeros first), "string" (the compressed counts), "area" and "bbox" (x, y, w, h of the
ones, zeros when there are none); per polygon, "counts" of its rasterisation; per iou, the
[dt][gt] matrix of pixel-count IoU (intersection over the detection's area for crowd GT).
"""
import json
import math
import sys

import numpy as np


def runs(bitmap):
    """Column-major run lengths of a 2-D 0/1 array, starting with zeros."""
    flat = np.asarray(bitmap, dtype=np.uint8).flatten(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    lengths = np.diff(bounds).tolist()
    if flat[0] == 1:
        lengths = [0] + lengths
    return [int(x) for x in lengths]


def compress(counts):
    """pycocotools' counts string: deltas against the count two back (from the 4th count on),
    5 bits a character, 0x20 = more follow, '0' + value, sign taken from bit 0x10."""
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        while True:
            group = x & 0x1F
            x >>= 5  # Python's >> floors, as an arithmetic shift
            done = (x == -1) if (group & 0x10) else (x == 0)
            out.append(chr(48 + group + (0 if done else 0x20)))
            if done:
                break
    return "".join(out)


def bbox(bitmap):
    ys, xs = np.nonzero(bitmap)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def poly_bitmap(poly, h, w):
    """rleFrPoly: vertices at trunc(5*v + 0.5) (C's int cast), the closed boundary traced
    point by point on the 5x grid along its major axis, then, wherever consecutive points
    change x, a column crossing: its column is the lower x of the two (the left one, minus
    the 0.5 offset of the fine grid) if it falls exactly on a pixel column inside the image,
    and its row is ceil of the smaller y mapped back (clamped to [0, h]). Each crossing
    toggles the mask from that pixel on, in column-major order."""
    pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    vx = np.trunc(5 * pts[:, 0] + 0.5).astype(np.int64)
    vy = np.trunc(5 * pts[:, 1] + 0.5).astype(np.int64)
    vx, vy = np.append(vx, vx[0]), np.append(vy, vy[0])
    us, vs = [], []
    for j in range(len(pts)):
        x0, y0, x1, y1 = vx[j], vy[j], vx[j + 1], vy[j + 1]
        dx, dy = abs(int(x1 - x0)), abs(int(y1 - y0))
        if dx >= dy:
            # walk x from the smaller end, y interpolated from that end
            lo_x, lo_y, hi_y = (x0, y0, y1) if x0 <= x1 else (x1, y1, y0)
            slope = (hi_y - lo_y) / dx if dx else 0.0
            t = np.arange(dx + 1)
            if x0 > x1:
                t = t[::-1]
            us.append(lo_x + t)
            vs.append(np.trunc(lo_y + slope * t + 0.5).astype(np.int64))
        else:
            lo_y, lo_x, hi_x = (y0, x0, x1) if y0 <= y1 else (y1, x1, x0)
            slope = (hi_x - lo_x) / dy
            t = np.arange(dy + 1)
            if y0 > y1:
                t = t[::-1]
            vs.append(lo_y + t)
            us.append(np.trunc(lo_x + slope * t + 0.5).astype(np.int64))
    u, v = np.concatenate(us), np.concatenate(vs)
    toggles = np.zeros(h * w + 1, dtype=np.int64)
    for j in range(1, len(u)):
        if u[j] == u[j - 1]:
            continue
        col = u[j] if u[j] < u[j - 1] else u[j] - 1
        xd = (col + 0.5) / 5 - 0.5
        if math.floor(xd) != xd or xd < 0 or xd > w - 1:
            continue
        yd = (min(v[j], v[j - 1]) + 0.5) / 5 - 0.5
        yd = math.ceil(min(max(yd, 0.0), float(h)))
        toggles[int(xd) * h + yd] += 1
    parity = np.cumsum(toggles[: h * w]) % 2
    return parity.reshape(w, h).T.astype(np.uint8)


def main():
    req = json.load(sys.stdin)
    bitmaps = [np.asarray(m["data"], dtype=np.uint8).reshape(m["h"], m["w"]) != 0 for m in req.get("masks", [])]
    masks = []
    for b in bitmaps:
        c = runs(b)
        masks.append({"counts": c, "string": compress(c), "area": int(b.sum()), "bbox": bbox(b)})
    polys = [{"counts": runs(poly_bitmap(p["poly"], p["h"], p["w"]))} for p in req.get("polys", [])]
    ious = []
    for q in req.get("ious", []):
        mat = []
        for d in q["dt"]:
            row = []
            for g, crowd in zip(q["gt"], q["crowd"]):
                a, b = bitmaps[d], bitmaps[g]
                if a.shape != b.shape:
                    row.append(-1.0)
                    continue
                inter = int(np.logical_and(a, b).sum())
                union = int(a.sum()) if crowd else int(np.logical_or(a, b).sum())
                row.append(inter / union if inter else 0.0)
            mat.append(row)
        ious.append(mat)
    json.dump({"masks": masks, "polys": polys, "ious": ious}, sys.stdout)


if __name__ == "__main__":
    main()
