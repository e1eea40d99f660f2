#!/usr/bin/env python3
"""A PyTorch reference of goselfsup's C4 shared head: mmdet's ResLayer (res5 of a ResNet-50)
and mmselfsup's ResLayerExtraNorm (the same followed by BatchNorm2d(2048)), taken from
torchvision's resnet50().layer4, in float64 on the CPU.

  res_layer_reference.py DIR [extra_norm]
      read DIR/state/*.npy (PyTorch names and layouts: layer4.*, norm.*), DIR/x.npy (NHWC) and
      DIR/r.npy (the output's cotangent, NHWC); write DIR/eval.npy (eval mode, NHWC),
      DIR/train.npy (train mode, NHWC), DIR/gx.npy (the gradient of sum(train * r) with
      respect to x, NHWC), DIR/grads/*.npy (with respect to every parameter) and
      DIR/after/*.npy (the batch-norm buffers after the train-mode pass)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision


class Head(nn.Module):
    def __init__(self, extra_norm):
        super().__init__()
        self.layer4 = torchvision.models.resnet50().layer4
        self.norm = nn.BatchNorm2d(2048) if extra_norm else None

    def forward(self, x):
        x = self.layer4(x)
        return self.norm(x) if self.norm is not None else x


def main(d, extra_norm):
    torch.set_default_dtype(torch.float64)
    head = Head(extra_norm).double()
    state = {f[:-4]: torch.from_numpy(np.load(os.path.join(d, 'state', f))) for f in os.listdir(os.path.join(d, 'state'))}
    head.load_state_dict(state, strict=True)
    x = torch.from_numpy(np.load(os.path.join(d, 'x.npy'))).permute(0, 3, 1, 2).contiguous()
    r = torch.from_numpy(np.load(os.path.join(d, 'r.npy'))).permute(0, 3, 1, 2)
    head.eval()
    with torch.no_grad():
        np.save(os.path.join(d, 'eval.npy'), head(x).permute(0, 2, 3, 1).numpy())
    head.train()
    x.requires_grad_(True)
    y = head(x)
    (y * r).sum().backward()
    np.save(os.path.join(d, 'train.npy'), y.detach().permute(0, 2, 3, 1).numpy())
    np.save(os.path.join(d, 'gx.npy'), x.grad.permute(0, 2, 3, 1).numpy())
    for sub in ('grads', 'after'):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for name, p in head.named_parameters():
        np.save(os.path.join(d, 'grads', name + '.npy'), p.grad.numpy())
    for name, b in head.named_buffers():
        np.save(os.path.join(d, 'after', name + '.npy'), b.numpy())


if __name__ == '__main__':
    main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == 'extra_norm')
