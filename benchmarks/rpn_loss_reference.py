#!/usr/bin/env python3
"""A PyTorch/NumPy reference of mmdet 2.x's RPN loss (AnchorHead.loss with use_sigmoid and
sampling, on one level) given the anchors that goselfsup's assigner and sampler picked, in
float64: it checks the picks against mmdet's assignment rules, then computes the losses and
their gradients independently.

  rpn_loss_reference.py DIR
      read DIR/cls.npy [B, H, W, A], DIR/reg.npy [B, H, W, 4A], DIR/anchors.npy [N, 4],
      DIR/gt.npy [B, G, 4], DIR/gt_valid.npy [B, G], DIR/img_shape.npy [B, 2] (h, w), and the
      picks DIR/indices.npy, DIR/valid.npy, DIR/positive.npy, DIR/gt_inds.npy [B, num];
      write DIR/losses.npy [loss_cls, loss_bbox], DIR/gcls.npy and DIR/greg.npy (the
      gradients of loss_cls + loss_bbox) and DIR/violations.txt (one line per pick that
      breaks the rules: pos_iou_thr 0.7, neg_iou_thr 0.3, min_pos_iou 0.3 with low-quality
      matches, allowed_border 0)
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def iou(a, b):
    """bbox_overlaps without offset: a [N, 4], b [M, 4] -> [N, M]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, np.finfo(np.float32).eps)


def bbox2delta(p, g):
    """mmdet 2.x's bbox2delta with means 0 and stds 1."""
    px, py = (p[..., 0] + p[..., 2]) * 0.5, (p[..., 1] + p[..., 3]) * 0.5
    pw, ph = p[..., 2] - p[..., 0], p[..., 3] - p[..., 1]
    gx, gy = (g[..., 0] + g[..., 2]) * 0.5, (g[..., 1] + g[..., 3]) * 0.5
    gw, gh = g[..., 2] - g[..., 0], g[..., 3] - g[..., 1]
    return np.stack([(gx - px) / pw, (gy - py) / ph, np.log(gw / pw), np.log(gh / ph)], -1)


def main(d):
    ld = lambda n: np.load(os.path.join(d, n + '.npy'))
    cls, reg, anchors, gt, gt_valid, img_shape = ld('cls'), ld('reg'), ld('anchors'), ld('gt'), ld('gt_valid'), ld('img_shape')
    idx, valid, positive, gt_inds = ld('indices'), ld('valid'), ld('positive'), ld('gt_inds')
    b, n = cls.shape[0], anchors.shape[0]
    violations = []
    for i in range(b):
        h, w = img_shape[i]
        inside = (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < w) & (anchors[:, 3] < h)
        gts = gt[i][gt_valid[i].astype(bool)]
        ov = iou(anchors, gts) if len(gts) else np.zeros((n, 0))
        gt_max = ov[inside].max(0) if len(gts) else np.zeros(0)
        for k in range(idx.shape[1]):
            if not valid[i, k]:
                continue
            a = idx[i, k]
            if not inside[a]:
                violations.append(f'image {i}: anchor {a} crosses the image')
            m = ov[a].max() if len(gts) else 0.0
            if positive[i, k]:
                j = gt_inds[i, k]
                low_quality = ov[a, j] == gt_max[j] and gt_max[j] >= 0.3
                if not (ov[a, j] >= 0.7 and ov[a, j] == m) and not low_quality:
                    violations.append(f'image {i}: positive anchor {a} (IoU {ov[a, j]:.4f} with GT {j}, best {m:.4f}) breaks the rules')
            elif m >= 0.3 or (len(gts) and np.any((ov[a] == gt_max) & (gt_max >= 0.3))):
                violations.append(f'image {i}: negative anchor {a} has IoU {m:.4f}')
    with open(os.path.join(d, 'violations.txt'), 'w') as f:
        f.write('\n'.join(violations))

    t_cls = torch.from_numpy(cls).requires_grad_(True)
    t_reg = torch.from_numpy(reg).requires_grad_(True)
    flat_cls = t_cls.reshape(b, n)
    flat_reg = t_reg.reshape(b, n, 4)
    rows = torch.arange(b)[:, None]
    idx_t = torch.from_numpy(idx.astype(np.int64))
    weight = torch.from_numpy(valid.astype(np.float64))
    pos = torch.from_numpy(positive.astype(np.float64))
    avg = weight.sum() + np.finfo(np.float32).eps
    logits = flat_cls[rows, idx_t]
    loss_cls = (F.binary_cross_entropy_with_logits(logits, pos, reduction='none') * weight).sum() / avg
    sel_gt = gt[np.arange(b)[:, None], np.maximum(gt_inds, 0)]
    target = torch.from_numpy(bbox2delta(anchors[idx], sel_gt))
    pred = flat_reg[rows, idx_t]
    loss_bbox = ((pred - target).abs() * pos[..., None]).sum() / avg
    (loss_cls + loss_bbox).backward()
    np.save(os.path.join(d, 'losses.npy'), np.array([loss_cls.item(), loss_bbox.item()]))
    np.save(os.path.join(d, 'gcls.npy'), t_cls.grad.numpy())
    np.save(os.path.join(d, 'greg.npy'), t_reg.grad.numpy())


if __name__ == '__main__':
    main(sys.argv[1])
