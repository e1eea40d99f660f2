#!/usr/bin/env python3
"""PyTorch references for Mask R-CNN's mask branch (mmdet 2.x's FCNMaskHead, mask_target_single
and _do_paste_mask), reading and writing .npy files in a directory, as the other references.

  mask_head_reference.py head DIR
      DIR/meta.npy [num_convs, in_channels, conv_out, num_classes, with_norm]; DIR/x.npy
      [N, S, S, C] (NHWC), DIR/targets.npy [N, 2S, 2S], DIR/labels.npy [N], DIR/weight.npy [N]
      (1 positive, 0 padding) and the head's state DIR/<name>.npy in PyTorch's layouts
      (convs.{i}.conv.weight OIHW, upsample.weight [Cin, Cout, 2, 2], ...). The head runs in
      training mode (batch norms on batch statistics) in x's dtype; writes DIR/logits.npy
      [N, 2S, 2S, classes] (NHWC), DIR/loss.npy [1], DIR/gx.npy (NHWC), DIR/grads/<name>.npy and
      DIR/after/<buffer>.npy (running statistics after the pass). The loss is
      F.binary_cross_entropy_with_logits(pred[pos, labels[pos]], targets[pos], mean), or
      pred.sum() * 0 without positives (mmdet).
  mask_head_reference.py targets DIR
      DIR/masks.npy [B, G, H, W] uint8, DIR/rois.npy [N, 4] float32, DIR/img.npy, DIR/gt.npy [N]
      int32, DIR/shape.npy [B, 2] (h, w: each image's bitmap size, mmdet's gt_masks.height and
      width); mmdet's mask_target_single: the RoI clipped to [0, w] x [0, h],
      torchvision.ops.roi_align(bitmap[:h, :w], aligned=True, sampling_ratio=0, spatial_scale=1)
      to 28 x 28; writes DIR/values.npy [N, 28, 28] float32 (before binarisation).
  mask_head_reference.py paste DIR
      DIR/probs.npy [N, M, M] float32, DIR/boxes.npy [N, 4] float32, DIR/hw.npy [h, w]; writes
      DIR/cuda.npy [N, h, w]: _do_paste_mask(skip_empty=False) with grid_sample's CUDA bilinear
      kernel transcribed in float32 torch ops, and DIR/cpu.npy: the same with F.grid_sample
      (the CPU kernel, whose source-index formula rounds differently).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def ld(d, n):
    return np.load(os.path.join(d, n + '.npy'))


def save(d, n, a):
    p = os.path.join(d, n + '.npy')
    os.makedirs(os.path.dirname(p), exist_ok=True)
    np.save(p, np.ascontiguousarray(a))


class ConvModule(nn.Module):
    def __init__(self, cin, cout, norm):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=not norm)
        self.bn = nn.BatchNorm2d(cout) if norm else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x)


class FCNMaskHead(nn.Module):
    """mmdet 2.x's FCNMaskHead (deconv upsampling, class-specific), its modules named alike."""

    def __init__(self, num_convs, cin, cout, nc, norm):
        super().__init__()
        self.convs = nn.ModuleList([ConvModule(cin if i == 0 else cout, cout, norm) for i in range(num_convs)])
        up_in = cout if num_convs > 0 else cin
        self.upsample = nn.ConvTranspose2d(up_in, cout, 2, stride=2)
        self.conv_logits = nn.Conv2d(cout, nc, 1)

    def forward(self, x):
        for c in self.convs:
            x = c(x)
        return self.conv_logits(F.relu(self.upsample(x)))


def head(d):
    meta = ld(d, 'meta').astype(int)
    num_convs, cin, cout, nc, norm = meta.tolist()
    x_np = ld(d, 'x')
    dt = torch.float64 if x_np.dtype == np.float64 else torch.float32
    m = FCNMaskHead(num_convs, cin, cout, nc, bool(norm)).to(dt)
    state = {}
    for k, v in m.state_dict().items():
        p = os.path.join(d, k + '.npy')
        state[k] = torch.from_numpy(np.load(p)) if os.path.exists(p) else v
    m.load_state_dict(state)
    m.train()
    x = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    pred = m(x)
    labels = torch.from_numpy(ld(d, 'labels').astype(np.int64))
    targets = torch.from_numpy(ld(d, 'targets')).to(dt)
    pos = torch.from_numpy(ld(d, 'weight') > 0)
    idx = torch.nonzero(pos).flatten()
    if idx.numel() == 0:
        loss = pred.sum() * 0
    else:
        sl = pred[idx, labels[idx]]
        loss = F.binary_cross_entropy_with_logits(sl, targets[idx], reduction='mean')
    loss.backward()
    save(d, 'logits', pred.detach().permute(0, 2, 3, 1).numpy())
    save(d, 'loss', np.array([loss.item()], dtype=np.float64))
    save(d, 'gx', x.grad.permute(0, 2, 3, 1).numpy())
    for k, p in m.named_parameters():
        save(d, 'grads/' + k, p.grad.numpy())
    for k, b in m.named_buffers():
        save(d, 'after/' + k, b.numpy())


def targets(d):
    masks = ld(d, 'masks')
    rois, img, gt, shape = ld(d, 'rois'), ld(d, 'img'), ld(d, 'gt'), ld(d, 'shape')
    out = np.zeros((len(rois), 28, 28), np.float32)
    for i in range(len(rois)):
        h, w = int(shape[img[i], 0]), int(shape[img[i], 1])
        bm = torch.from_numpy(masks[img[i], gt[i], :h, :w].astype(np.float32))[None, None]
        r = rois[i].copy()
        r[[0, 2]] = np.clip(r[[0, 2]], 0, w)
        r[[1, 3]] = np.clip(r[[1, 3]], 0, h)
        box = torch.from_numpy(np.concatenate([[0], r]).astype(np.float32))[None]
        out[i] = torchvision.ops.roi_align(bm, box, (28, 28), 1.0, 0, True)[0, 0].numpy()
    save(d, 'values', out)


def grid_sample_cuda(inp, gx, gy):
    """grid_sampler_2d_kernel (bilinear, zeros, align_corners=False) in float32 ops: inp
    [M, M], gx [w], gy [h] (the grid is their outer product); returns [h, w]."""
    size = inp.shape[0]
    ix = ((gx + 1.0) * size - 1.0) / 2.0
    iy = ((gy + 1.0) * size - 1.0) / 2.0
    ix, iy = ix[None, :].expand(len(gy), len(gx)), iy[:, None].expand(len(gy), len(gx))
    ix_nw, iy_nw = torch.floor(ix), torch.floor(iy)
    ix_ne, iy_ne = ix_nw + 1, iy_nw
    ix_sw, iy_sw = ix_nw, iy_nw + 1
    ix_se, iy_se = ix_nw + 1, iy_nw + 1
    nw = (ix_se - ix) * (iy_se - iy)
    ne = (ix - ix_sw) * (iy_sw - iy)
    sw = (ix_ne - ix) * (iy - iy_ne)
    se = (ix - ix_nw) * (iy - iy_nw)
    out = torch.zeros_like(ix)
    for cx, cy, wt in ((ix_nw, iy_nw, nw), (ix_ne, iy_ne, ne), (ix_sw, iy_sw, sw), (ix_se, iy_se, se)):
        ok = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
        xi = cx.clamp(0, size - 1).long()
        yi = cy.clamp(0, size - 1).long()
        out = out + torch.where(ok, inp[yi, xi] * wt, torch.zeros_like(wt))
    return out


def paste(d):
    probs = torch.from_numpy(ld(d, 'probs'))
    boxes = torch.from_numpy(ld(d, 'boxes'))
    h, w = [int(v) for v in ld(d, 'hw')]
    n = probs.shape[0]
    # _do_paste_mask(skip_empty=False)
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)
    img_y = torch.arange(0, h).to(torch.float32) + 0.5
    img_x = torch.arange(0, w).to(torch.float32) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1
    img_x[torch.isinf(img_x)] = 0
    img_y[torch.isinf(img_y)] = 0
    gx = img_x[:, None, :].expand(n, h, w)
    gy = img_y[:, :, None].expand(n, h, w)
    grid = torch.stack([gx, gy], dim=3)
    cpu = F.grid_sample(probs[:, None], grid, align_corners=False)[:, 0]
    cuda = torch.stack([grid_sample_cuda(probs[i], img_x[i], img_y[i]) for i in range(n)])
    save(d, 'cuda', cuda.numpy())
    save(d, 'cpu', cpu.numpy())


if __name__ == '__main__':
    torch.set_num_threads(1)
    {'head': head, 'targets': targets, 'paste': paste}[sys.argv[1]](sys.argv[2])
