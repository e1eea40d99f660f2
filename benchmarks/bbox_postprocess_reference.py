#!/usr/bin/env python3
"""mmdet 2.x's BBoxHead.get_bboxes and multiclass_nms for one image (softmax scores,
class-specific delta2bbox with stds [0.1, 0.1, 0.2, 0.2] clipped to the image, score > thr,
mmcv's batched_nms by coordinate offsets, max_per_img), transcribed with PyTorch and
torchvision.ops.nms, in float32.

  bbox_postprocess_reference.py DIR SCORE_THR IOU_THR MAX_PER_IMG
      read DIR/cls_<i>.npy [P, C+1], DIR/reg_<i>.npy [P, 4C], DIR/rois_<i>.npy [P, 4] and
      DIR/img_shape.npy [B, 2]; write DIR/dets_<i>.npy [k, 6] (x1, y1, x2, y2, score, label)
"""
import math
import os
import sys

import numpy as np
import torch
import torchvision

STDS = torch.tensor([0.1, 0.1, 0.2, 0.2])


def delta2bbox(rois, deltas, max_shape, wh_ratio_clip=16 / 1000):
    deltas = deltas * STDS
    dx, dy, dw, dh = deltas.unbind(-1)
    max_ratio = abs(math.log(wh_ratio_clip))
    dw, dh = dw.clamp(-max_ratio, max_ratio), dh.clamp(-max_ratio, max_ratio)
    px, py = (rois[..., 0] + rois[..., 2]) * 0.5, (rois[..., 1] + rois[..., 3]) * 0.5
    pw, ph = rois[..., 2] - rois[..., 0], rois[..., 3] - rois[..., 1]
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * dx, py + ph * dy
    h, w = float(max_shape[0]), float(max_shape[1])
    return torch.stack([(gx - gw * 0.5).clamp(0, w), (gy - gh * 0.5).clamp(0, h),
                        (gx + gw * 0.5).clamp(0, w), (gy + gh * 0.5).clamp(0, h)], -1)


def main(d, score_thr, iou_thr, max_per_img):
    img_shape = np.load(os.path.join(d, 'img_shape.npy'))
    for i in range(img_shape.shape[0]):
        ld = lambda n: torch.from_numpy(np.load(os.path.join(d, f'{n}_{i}.npy')))
        cls, reg, rois = ld('cls'), ld('reg'), ld('rois')
        p, nc = cls.shape[0], cls.shape[1] - 1
        scores = torch.softmax(cls, -1)[:, :-1]
        bboxes = delta2bbox(rois[:, None, :].expand(p, nc, 4), reg.view(p, nc, 4), img_shape[i])
        labels = torch.arange(nc).view(1, -1).expand(p, nc)
        bboxes, scores, labels = bboxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
        inds = (scores > score_thr).nonzero(as_tuple=False).squeeze(1)
        bboxes, scores, labels = bboxes[inds], scores[inds], labels[inds]
        offsets = labels.to(bboxes) * (bboxes.max() + 1)
        keep = torchvision.ops.nms(bboxes + offsets[:, None], scores, iou_thr)[:max_per_img]
        dets = torch.cat([bboxes[keep], scores[keep, None], labels[keep, None].to(bboxes)], 1)
        np.save(os.path.join(d, f'dets_{i}.npy'), dets.numpy())


if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
