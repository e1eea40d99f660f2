#!/usr/bin/env python3
"""The torchvision reference of goselfsup's detection graph ops (models/det), for parity tests.
Each mode reads every case directory under DIR (DIR/*/), computes in the dtype the arrays are
stored in (float32 or float64) on the CPU, and writes its results next to the inputs.

  det_ops_reference.py iou DIR          a.npy [N, 4], b.npy [M, 4] -> iou.npy, torchvision.ops.box_iou
                                        with NaN (0/0, zero-area pairs) replaced by 0
  det_ops_reference.py nms DIR          boxes.npy [N, 4], scores.npy [N], valid.npy [N] bool,
                                        spec.json {"iou_thr"} -> keep.npy int64: torchvision.ops.nms on
                                        the valid boxes, as indices into all N
  det_ops_reference.py batched_nms DIR  as nms, plus classes.npy [N] int64 ->
                                        keep.npy: torchvision.ops.batched_nms (the coordinate trick)
  det_ops_reference.py roi_align DIR    feat.npy [B, H, W, C] (NHWC), rois.npy [R, 5], r.npy
                                        [R, oh, ow, C] (the output's cotangent), spec.json {"out_h",
                                        "out_w", "scale", "sampling_ratio", "aligned"} -> y.npy
                                        [R, oh, ow, C] and gfeat.npy [B, H, W, C], the gradient of
                                        sum(y * r) with respect to feat
  det_ops_reference.py all DIR          every mode above on DIR/<mode>/*/ (one process: importing
                                        torch takes seconds)
"""
import glob
import json
import os
import sys

import numpy as np
import torch
from torchvision import ops
from torchvision.ops import boxes as box_ops


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name)))


def spec(d):
    with open(os.path.join(d, 'spec.json')) as f:
        return json.load(f)


def run_iou(d):
    iou = ops.box_iou(load(d, 'a.npy'), load(d, 'b.npy'))
    np.save(os.path.join(d, 'iou.npy'), torch.nan_to_num(iou, nan=0.0).numpy())


def run_nms(d, batched):
    boxes, scores, valid = load(d, 'boxes.npy'), load(d, 'scores.npy'), load(d, 'valid.npy')
    idx = torch.nonzero(valid).flatten()
    thr = spec(d)['iou_thr']
    if batched:
        classes = load(d, 'classes.npy')
        # torchvision switches to a per-class loop above 4,000 numbers on the CPU; the tests
        # stay below, where it offsets the coordinates as mmcv does.
        assert boxes[idx].numel() <= 4000
        keep = box_ops._batched_nms_coordinate_trick(boxes[idx], scores[idx], classes[idx], thr)
    else:
        keep = ops.nms(boxes[idx], scores[idx], thr)
    np.save(os.path.join(d, 'keep.npy'), idx[keep].numpy().astype(np.int64))


def run_roi_align(d):
    s = spec(d)
    feat = load(d, 'feat.npy').permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    rois = load(d, 'rois.npy')
    r = load(d, 'r.npy')
    y = ops.roi_align(feat, rois, (s['out_h'], s['out_w']), spatial_scale=s['scale'],
                      sampling_ratio=s['sampling_ratio'], aligned=s['aligned'])
    y = y.permute(0, 2, 3, 1)
    (y * r).sum().backward()
    np.save(os.path.join(d, 'y.npy'), y.detach().numpy())
    np.save(os.path.join(d, 'gfeat.npy'), feat.grad.permute(0, 2, 3, 1).numpy())


MODES = {
    'iou': run_iou,
    'nms': lambda d: run_nms(d, False),
    'batched_nms': lambda d: run_nms(d, True),
    'roi_align': run_roi_align,
}

def run_mode(mode, d):
    for case in sorted(glob.glob(os.path.join(d, '*', ''))):
        MODES[mode](case)


if __name__ == '__main__':
    torch.set_num_threads(1)
    if sys.argv[1] == 'all':
        for mode in MODES:
            if os.path.isdir(os.path.join(sys.argv[2], mode)):
                run_mode(mode, os.path.join(sys.argv[2], mode))
    else:
        run_mode(sys.argv[1], sys.argv[2])
