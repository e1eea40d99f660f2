#!/usr/bin/env python3
"""A PyTorch transcription of mmdet 2.x's BBoxHead.loss (softmax cross-entropy, class-specific
L1 on the positives' deltas, DeltaXYWHBBoxCoder with stds [0.1, 0.1, 0.2, 0.2], background
last, pos_weight -1) on static slots, in float64.

  bbox_head_reference.py DIR
      read DIR/cls.npy [R, C+1], DIR/reg.npy [R, 4C], DIR/rois.npy [R, 4], DIR/gt.npy [R, 4],
      DIR/labels.npy [R] and DIR/valid.npy [R]; write DIR/losses.npy [loss_cls, loss_bbox,
      acc], DIR/gcls.npy and DIR/greg.npy (the gradients of loss_cls + loss_bbox)
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

EPS = np.finfo(np.float32).eps
STDS = np.array([0.1, 0.1, 0.2, 0.2])


def bbox2delta(p, g):
    px, py = (p[:, 0] + p[:, 2]) * 0.5, (p[:, 1] + p[:, 3]) * 0.5
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    gx, gy = (g[:, 0] + g[:, 2]) * 0.5, (g[:, 1] + g[:, 3]) * 0.5
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    d = np.stack([(gx - px) / pw, (gy - py) / ph, np.log(gw / pw), np.log(gh / ph)], -1)
    return d / STDS


def main(d):
    ld = lambda n: np.load(os.path.join(d, n + '.npy'))
    valid = ld('valid').astype(bool)
    # mmdet's tensors hold the sampled RoIs only: keep the valid slots.
    cls = torch.from_numpy(ld('cls')).requires_grad_(True)
    reg = torch.from_numpy(ld('reg')).requires_grad_(True)
    rois, gt, labels = ld('rois')[valid], ld('gt')[valid], torch.from_numpy(ld('labels')[valid].astype(np.int64))
    idx = torch.from_numpy(np.nonzero(valid)[0])
    cls_v, reg_v = cls[idx], reg[idx]
    n, nc = cls_v.shape[0], cls_v.shape[1] - 1
    label_weights = torch.ones(n, dtype=torch.float64)
    avg_factor = max(float((label_weights > 0).sum()), 1.0)
    loss_cls = (F.cross_entropy(cls_v, labels, reduction='none') * label_weights).sum() / (avg_factor + EPS)
    pos = (labels >= 0) & (labels < nc)
    targets = torch.from_numpy(bbox2delta(rois[pos.numpy()], gt[pos.numpy()]))
    pos_pred = reg_v.view(n, -1, 4)[pos, labels[pos]]
    loss_bbox = (pos_pred - targets).abs().sum() / (n + EPS)
    acc = (cls_v.argmax(-1) == labels).double().mean() * 100
    (loss_cls + loss_bbox).backward()
    np.save(os.path.join(d, 'losses.npy'), np.array([loss_cls.item(), loss_bbox.item(), acc.item()]))
    np.save(os.path.join(d, 'gcls.npy'), cls.grad.numpy())
    np.save(os.path.join(d, 'greg.npy'), reg.grad.numpy())


if __name__ == '__main__':
    main(sys.argv[1])
