#!/usr/bin/env python3
"""A PyTorch reference of goselfsup's segmentation model side (mmseg's dilated ResNet with
contract_dilation, FCNHead, EncoderDecoder with an auxiliary head, bilinear resizing with
align_corners=False and cross-entropy with ignore_index averaged over all pixels), written in
plain torch for parity tests, in float64 on the CPU.

  seg_reference.py resize DIR  read DIR/x.npy (NHWC) and DIR/r.npy (the output's cotangent,
                               NHWC), write DIR/y.npy = interpolate(x) and DIR/gx.npy, the
                               gradient of sum(y * r) with respect to x
  seg_reference.py loss DIR    read DIR/logits.npy [B, H, W, C] and DIR/labels.npy [B, H, W];
                               write DIR/loss.npy: [mean over all pixels, mean over
                               non-ignored pixels (+ float32 eps)], computed with NumPy
  seg_reference.py model DIR   read DIR/spec.json, DIR/state/*.npy, DIR/images.npy (uint8
                               NHWC) and DIR/masks.npy; write DIR/logits.npy (eval mode, NHWC,
                               at the input size), DIR/loss.npy (train mode), DIR/grads/*.npy
                               and DIR/after/*.npy (the batch-norm buffers after the step)

Tensors use PyTorch's names and layouts (convolution weights OIHW). spec.json may also say
"block": "basic" (ResNet-18's blocks; default Bottleneck) and "dropout" (the heads' dropout_ratio,
default 0). seg_step_reference.py times a train step of the same network.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


class BasicBlock(nn.Module):
    """mmseg's BasicBlock: only the first 3x3 convolution is dilated."""
    expansion = 1

    def __init__(self, inplanes, planes, stride, dilation):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, dilation):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class DilatedResNet(nn.Module):
    """mmseg's ResNet (style pytorch, plain stem) with Bottleneck blocks (or BasicBlock, as
    ResNet-18 and -34): the first block of a stage with dilation d > 1 uses d // 2
    (contract_dilation)."""

    def __init__(self, blocks, strides, dilations, contract, out_indices, block=Bottleneck):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.out_indices = out_indices
        inplanes = 64
        for i, n in enumerate(blocks):
            planes = 64 << i
            layers = []
            for j in range(n):
                stride, dilation = (strides[i], dilations[i]) if j == 0 else (1, dilations[i])
                if j == 0 and contract and dilation > 1:
                    dilation //= 2
                layers.append(block(inplanes, planes, stride, dilation))
                inplanes = planes * block.expansion
            setattr(self, 'layer%d' % (i + 1), nn.Sequential(*layers))
        self.num_stages = len(blocks)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        outs = [x]
        x = F.max_pool2d(x, 3, 2, 1)
        for i in range(self.num_stages):
            x = getattr(self, 'layer%d' % (i + 1))(x)
            outs.append(x)
        return [outs[i] for i in self.out_indices]


class ConvModule(nn.Module):
    def __init__(self, inp, out, kernel, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(inp, out, kernel, padding=kernel // 2 * dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class FCNHead(nn.Module):
    def __init__(self, in_channels, channels, num_classes, in_index, num_convs, concat_input, loss_weight,
                 kernel_size=3, dilation=1, dropout=0.0):
        super().__init__()
        self.in_index, self.concat_input, self.loss_weight = in_index, concat_input, loss_weight
        self.dropout = dropout
        convs = [ConvModule(in_channels if i == 0 else channels, channels, kernel_size, dilation) for i in range(num_convs)]
        self.convs = nn.Sequential(*convs) if convs else nn.Identity()
        if concat_input:
            self.conv_cat = ConvModule(in_channels + channels, channels, kernel_size)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats):
        x = feats[self.in_index]
        y = self.convs(x)
        if self.concat_input:
            y = self.conv_cat(torch.cat([x, y], dim=1))
        if self.dropout > 0:  # mmseg's dropout_ratio; the parity tests use 0, the identity
            y = F.dropout2d(y, self.dropout, self.training)
        return self.conv_seg(y)

    def loss(self, logits, labels):
        logits = F.interpolate(logits, size=labels.shape[1:], mode='bilinear', align_corners=False)
        per_pixel = F.cross_entropy(logits, labels, reduction='none', ignore_index=255)
        return per_pixel.mean() * self.loss_weight  # mmseg: avg_non_ignore = False


class EncoderDecoder(nn.Module):
    def __init__(self, spec):
        super().__init__()
        block = BasicBlock if spec.get('block') == 'basic' else Bottleneck
        self.backbone = DilatedResNet(spec['stage_blocks'], spec['strides'], spec['dilations'],
                                      spec['contract_dilation'], [1, 2, 3, 4], block)
        d, a = spec['decode'], spec['aux']
        dropout = spec.get('dropout', 0.0)
        self.decode_head = FCNHead(d['in_channels'], d['channels'], spec['num_classes'], d['in_index'],
                                   d['num_convs'], d['concat_input'], 1.0, dropout=dropout)
        self.auxiliary_head = FCNHead(a['in_channels'], a['channels'], spec['num_classes'], a['in_index'],
                                      a['num_convs'], a['concat_input'], a['loss_weight'], dropout=dropout)

    def forward(self, x):
        return self.backbone(x)


def preprocess(images):
    x = torch.from_numpy(images.astype(np.float64)).permute(0, 3, 1, 2)  # RGB, NCHW
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (x - mean) / std


def to_nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy()


def load_state(model, d):
    state = {}
    for f in os.listdir(d):
        state[f[:-4]] = torch.from_numpy(np.load(os.path.join(d, f)))
    model.load_state_dict(state, strict=True)


def run_model(d):
    torch.set_default_dtype(torch.float64)
    with open(os.path.join(d, 'spec.json')) as f:
        spec = json.load(f)
    model = EncoderDecoder(spec).double()
    load_state(model, os.path.join(d, 'state'))
    images = np.load(os.path.join(d, 'images.npy'))
    masks = torch.from_numpy(np.load(os.path.join(d, 'masks.npy')).astype(np.int64))
    x = preprocess(images)

    model.eval()
    with torch.no_grad():
        logits = model.decode_head(model(x))
        logits = F.interpolate(logits, size=x.shape[2:], mode='bilinear', align_corners=False)
    np.save(os.path.join(d, 'logits.npy'), to_nhwc(logits))

    model.train()
    feats = model(x)
    loss = model.decode_head.loss(model.decode_head(feats), masks)
    loss = loss + model.auxiliary_head.loss(model.auxiliary_head(feats), masks)
    loss.backward()
    np.save(os.path.join(d, 'loss.npy'), np.array([loss.item()]))
    os.makedirs(os.path.join(d, 'grads'), exist_ok=True)
    for name, p in model.named_parameters():
        np.save(os.path.join(d, 'grads', name + '.npy'), p.grad.numpy())
    os.makedirs(os.path.join(d, 'after'), exist_ok=True)
    for name, b in model.named_buffers():
        np.save(os.path.join(d, 'after', name + '.npy'), b.numpy())


def run_resize(d):
    x = torch.from_numpy(np.load(os.path.join(d, 'x.npy'))).permute(0, 3, 1, 2).requires_grad_(True)
    r = torch.from_numpy(np.load(os.path.join(d, 'r.npy'))).permute(0, 3, 1, 2)
    y = F.interpolate(x, size=r.shape[2:], mode='bilinear', align_corners=False)
    (y * r).sum().backward()
    np.save(os.path.join(d, 'y.npy'), to_nhwc(y))
    np.save(os.path.join(d, 'gx.npy'), to_nhwc(x.grad))


def run_loss(d):
    logits = np.load(os.path.join(d, 'logits.npy')).astype(np.float64)
    labels = np.load(os.path.join(d, 'labels.npy')).astype(np.int64)
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    valid = labels != 255
    safe = np.where(valid, labels, 0)
    nll = -np.take_along_axis(logp, safe[..., None], -1)[..., 0] * valid
    eps = float(np.finfo(np.float32).eps)
    np.save(os.path.join(d, 'loss.npy'), np.array([nll.sum() / nll.size, nll.sum() / (valid.sum() + eps)]))


if __name__ == '__main__':
    {'resize': run_resize, 'loss': run_loss, 'model': run_model}[sys.argv[1]](sys.argv[2])
