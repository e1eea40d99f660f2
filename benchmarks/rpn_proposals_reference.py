#!/usr/bin/env python3
"""mmdet 2.x's RPNHead.get_bboxes on one level (sigmoid scores, the nms_pre highest,
delta2bbox with means 0 and stds 1 clipped to the image, min_bbox_size, NMS, max_per_img),
transcribed with PyTorch and torchvision.ops.nms, in float32.

  rpn_proposals_reference.py DIR NMS_PRE MAX_PER_IMG IOU_THR MIN_BBOX_SIZE
      read DIR/cls.npy [B, H, W, A], DIR/reg.npy [B, H, W, 4A], DIR/anchors.npy [N, 4] and
      DIR/img_shape.npy [B, 2]; write DIR/boxes_<i>.npy [k, 4] and DIR/scores_<i>.npy [k]
      for each image i
"""
import math
import os
import sys

import numpy as np
import torch
import torchvision


def delta2bbox(rois, deltas, max_shape, wh_ratio_clip=16 / 1000):
    dx, dy, dw, dh = deltas.unbind(-1)
    max_ratio = abs(math.log(wh_ratio_clip))
    dw, dh = dw.clamp(-max_ratio, max_ratio), dh.clamp(-max_ratio, max_ratio)
    px, py = (rois[:, 0] + rois[:, 2]) * 0.5, (rois[:, 1] + rois[:, 3]) * 0.5
    pw, ph = rois[:, 2] - rois[:, 0], rois[:, 3] - rois[:, 1]
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * dx, py + ph * dy
    x1, y1, x2, y2 = gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5
    h, w = float(max_shape[0]), float(max_shape[1])
    return torch.stack([x1.clamp(0, w), y1.clamp(0, h), x2.clamp(0, w), y2.clamp(0, h)], -1)


def main(d, nms_pre, max_per_img, iou_thr, min_size):
    ld = lambda n: torch.from_numpy(np.load(os.path.join(d, n + '.npy')))
    cls, reg, anchors, img_shape = ld('cls'), ld('reg'), ld('anchors'), ld('img_shape')
    for i in range(cls.shape[0]):
        scores = cls[i].reshape(-1).sigmoid()
        deltas = reg[i].reshape(-1, 4)
        a = anchors
        if 0 < nms_pre < scores.shape[0]:
            ranked, inds = scores.sort(descending=True)
            inds = inds[:nms_pre]
            scores, deltas, a = ranked[:nms_pre], deltas[inds], a[inds]
        props = delta2bbox(a, deltas, img_shape[i])
        if min_size >= 0:
            w, h = props[:, 2] - props[:, 0], props[:, 3] - props[:, 1]
            m = (w > min_size) & (h > min_size)
            props, scores = props[m], scores[m]
        keep = torchvision.ops.nms(props, scores, iou_thr)[:max_per_img]
        np.save(os.path.join(d, f'boxes_{i}.npy'), props[keep].numpy())
        np.save(os.path.join(d, f'scores_{i}.npy'), scores[keep].numpy())


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
