#!/usr/bin/env python3
"""A NumPy transcription of mmdet 2.x's AnchorGenerator (gen_single_level_base_anchors,
single_level_grid_priors, single_level_valid_flags), anchor_inside_flags and
DeltaXYWHBBoxCoder (bbox2delta, delta2bbox), for goselfsup's parity tests
(models/det/anchors_test.go, coder_test.go). It computes in the requested dtype with
mmdet's order of operations (mmdet's tensors are float32; "float64" runs the same formulas
in double precision).

  det_anchor_reference.py anchors   read a JSON request on stdin: strides, ratios, scales (or
                                    octave_base_scale and scales_per_octave), base_sizes
                                    (or null), center_offset, scale_major, level, feat_h,
                                    feat_w, dtype ("float32" or "float64") and valid: a list
                                    of {pad_shape: [h, w], img_shape: [h, w], allowed_border}.
                                    Print JSON: base ([A][4]), anchors ([H*W*A][4]) and
                                    valid (a list of [H*W*A] booleans).
  det_anchor_reference.py coder     read a JSON request on stdin: dtype, target_means,
                                    target_stds, clip_border, add_ctr_clamp, ctr_clamp,
                                    wh_ratio_clip, proposals and gt ([N][4]), rois ([M][4]),
                                    deltas ([M][4*C]) and max_shape ([h, w] or null). Print
                                    JSON: encoded ([N][4]) and decoded ([M][4*C]).
"""
import json
import math
import sys

import numpy as np


def base_anchors(base_size, scales, ratios, center_offset, scale_major, dt):
    w = h = base_size
    x_center = center_offset * w
    y_center = center_offset * h
    ratios = np.array(ratios, dtype=dt)
    scales = np.array(scales, dtype=dt)
    h_ratios = np.sqrt(ratios)
    w_ratios = 1 / h_ratios
    if scale_major:
        ws = (w * w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h * h_ratios[:, None] * scales[None, :]).reshape(-1)
    else:
        ws = (w * scales[:, None] * w_ratios[None, :]).reshape(-1)
        hs = (h * scales[:, None] * h_ratios[None, :]).reshape(-1)
    return np.stack([x_center - 0.5 * ws, y_center - 0.5 * hs, x_center + 0.5 * ws, y_center + 0.5 * hs], axis=-1)


def meshgrid(x, y):
    # mmdet's _meshgrid(row_major=True)
    return np.tile(x, len(y)), np.repeat(y, len(x))


def grid_priors(base, feat_h, feat_w, stride, dt):
    shift_x = np.arange(0, feat_w).astype(dt) * stride
    shift_y = np.arange(0, feat_h).astype(dt) * stride
    xx, yy = meshgrid(shift_x, shift_y)
    shifts = np.stack([xx, yy, xx, yy], axis=-1)
    return (base[None, :, :] + shifts[:, None, :]).reshape(-1, 4)


def valid_flags(feat_h, feat_w, pad_shape, stride, num_base):
    # AnchorGenerator.valid_flags + single_level_valid_flags
    h, w = pad_shape
    valid_h = min(int(np.ceil(h / stride)), feat_h)
    valid_w = min(int(np.ceil(w / stride)), feat_w)
    vx = np.zeros(feat_w, dtype=bool)
    vy = np.zeros(feat_h, dtype=bool)
    vx[:valid_w] = True
    vy[:valid_h] = True
    xx, yy = meshgrid(vx, vy)
    valid = xx & yy
    return np.repeat(valid, num_base)


def anchor_inside_flags(anchors, valid, img_shape, allowed_border):
    img_h, img_w = img_shape
    if allowed_border >= 0:
        return valid & (anchors[:, 0] >= -allowed_border) & (anchors[:, 1] >= -allowed_border) & \
            (anchors[:, 2] < img_w + allowed_border) & (anchors[:, 3] < img_h + allowed_border)
    return valid


def anchors_mode(req):
    dt = np.dtype(req["dtype"])
    level = req["level"]
    stride = req["strides"][level]
    base_size = req["base_sizes"][level] if req.get("base_sizes") else stride
    if req.get("scales"):
        scales = req["scales"]
    else:
        n = req["scales_per_octave"]
        scales = (np.array([2 ** (i / n) for i in range(n)]) * req["octave_base_scale"]).tolist()
    base = base_anchors(base_size, scales, req["ratios"], req["center_offset"], req["scale_major"], dt)
    anchors = grid_priors(base, req["feat_h"], req["feat_w"], stride, dt)
    valid = []
    for v in req.get("valid", []):
        flags = valid_flags(req["feat_h"], req["feat_w"], v["pad_shape"], stride, base.shape[0])
        valid.append(anchor_inside_flags(anchors, flags, v["img_shape"], v["allowed_border"]).tolist())
    return {"base": base.astype(np.float64).tolist(), "anchors": anchors.astype(np.float64).tolist(), "valid": valid}


def bbox2delta(proposals, gt, means, stds):
    px = (proposals[..., 0] + proposals[..., 2]) * 0.5
    py = (proposals[..., 1] + proposals[..., 3]) * 0.5
    pw = proposals[..., 2] - proposals[..., 0]
    ph = proposals[..., 3] - proposals[..., 1]
    gx = (gt[..., 0] + gt[..., 2]) * 0.5
    gy = (gt[..., 1] + gt[..., 3]) * 0.5
    gw = gt[..., 2] - gt[..., 0]
    gh = gt[..., 3] - gt[..., 1]
    dx = (gx - px) / pw
    dy = (gy - py) / ph
    dw = np.log(gw / pw)
    dh = np.log(gh / ph)
    deltas = np.stack([dx, dy, dw, dh], axis=-1)
    return (deltas - means[None, :]) / stds[None, :]


def delta2bbox(rois, deltas, means, stds, max_shape, wh_ratio_clip, clip_border, add_ctr_clamp, ctr_clamp):
    num_bboxes, num_classes = deltas.shape[0], deltas.shape[1] // 4
    deltas = deltas.reshape(-1, 4)
    denorm = deltas * stds[None, :] + means[None, :]
    dxy = denorm[:, :2]
    dwh = denorm[:, 2:]
    rois_ = np.tile(rois, (1, num_classes)).reshape(-1, 4)
    pxy = (rois_[:, :2] + rois_[:, 2:]) * 0.5
    pwh = rois_[:, 2:] - rois_[:, :2]
    dxy_wh = pwh * dxy
    max_ratio = np.abs(np.log(wh_ratio_clip))
    if add_ctr_clamp:
        dxy_wh = np.clip(dxy_wh, -ctr_clamp, ctr_clamp).astype(deltas.dtype)
        dwh = np.minimum(dwh, deltas.dtype.type(max_ratio))
    else:
        dwh = np.clip(dwh, deltas.dtype.type(-max_ratio), deltas.dtype.type(max_ratio))
    gxy = pxy + dxy_wh
    gwh = pwh * np.exp(dwh)
    x1y1 = gxy - (gwh * 0.5)
    x2y2 = gxy + (gwh * 0.5)
    bboxes = np.concatenate([x1y1, x2y2], axis=-1)
    if clip_border and max_shape is not None:
        bboxes[..., 0::2] = np.clip(bboxes[..., 0::2], 0, max_shape[1])
        bboxes[..., 1::2] = np.clip(bboxes[..., 1::2], 0, max_shape[0])
    return bboxes.reshape(num_bboxes, -1)


def coder_mode(req):
    dt = np.dtype(req["dtype"])
    means = np.array(req["target_means"], dtype=dt)
    stds = np.array(req["target_stds"], dtype=dt)
    proposals = np.array(req["proposals"], dtype=dt).reshape(-1, 4)
    gt = np.array(req["gt"], dtype=dt).reshape(-1, 4)
    rois = np.array(req["rois"], dtype=dt).reshape(-1, 4)
    deltas = np.array(req["deltas"], dtype=dt).reshape(rois.shape[0], -1)
    enc = bbox2delta(proposals, gt, means, stds)
    dec = delta2bbox(rois, deltas, means, stds, req.get("max_shape"), req.get("wh_ratio_clip", 16 / 1000),
                     req["clip_border"], req.get("add_ctr_clamp", False), req.get("ctr_clamp", 32))
    assert enc.dtype == dt and dec.dtype == dt, (enc.dtype, dec.dtype)
    return {"encoded": enc.astype(np.float64).tolist(), "decoded": dec.astype(np.float64).tolist()}


def main():
    mode = sys.argv[1]
    req = json.load(sys.stdin)
    out = {"anchors": anchors_mode, "coder": coder_mode}[mode](req)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
