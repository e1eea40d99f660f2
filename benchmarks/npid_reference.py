#!/usr/bin/env python3
"""A PyTorch reference of goselfsup's NPID train step (mmselfsup's NPID, ResNet, LinearNeck,
ContrastiveHead with cross-entropy, SimpleMemory, SGD), for parity tests and benchmarks.

  npid_reference.py parity DIR   read DIR/spec.json, DIR/state/*.npy and DIR/inputs/*.npy, run
                                 the steps, write DIR/losses.npy and, after step 1 and after
                                 the last step, DIR/out_1/*.npy and DIR/out_last/*.npy
  npid_reference.py bench ...    time train steps of a small CIFAR ResNet (or, with --model
                                 resnet18 or resnet50, of ResNet-18 or ResNet-50), print one
                                 JSON line; --device cuda runs them on the GPU, --amp under
                                 torch.autocast with bfloat16

Tensors use PyTorch's names and layouts (convolution weights OIHW). Parity runs on the CPU.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, bn):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = bn(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), bn(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, bn):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(inplanes, planes, 1, 1, 0, bias=False)
        self.bn1 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = bn(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, 1, 0, bias=False)
        self.bn3 = bn(out)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), bn(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """mmcls's ResNet (pytorch style) with torchvision's names; cifar: 3x3 stem, no max-pool."""

    def __init__(self, depth, stage_blocks, stem, base, cifar):
        super().__init__()
        block = Bottleneck if depth >= 50 else BasicBlock
        bn = lambda c: nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)
        self.cifar = cifar
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False) if cifar else nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = bn(stem)
        inplanes = stem
        for i, n in enumerate(stage_blocks):
            planes = base << i
            layers = []
            for j in range(n):
                layers.append(block(inplanes, planes, (1 if i == 0 else 2) if j == 0 else 1, bn))
                inplanes = planes * block.expansion
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layers))
        self.out_channels = inplanes
        self.num_stages = len(stage_blocks)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if not self.cifar:
            x = F.max_pool2d(x, 3, 2, 1)
        for i in range(self.num_stages):
            x = getattr(self, "layer%d" % (i + 1))(x)
        return x


class LinearNeck(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Linear(cin, cout)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class Memory(nn.Module):
    def __init__(self, length, dim):
        super().__init__()
        self.register_buffer("feature_bank", torch.zeros(length, dim))


class NPID(nn.Module):
    """mmselfsup's NPID.loss with the negatives given, and SimpleMemory.update."""

    def __init__(self, spec):
        super().__init__()
        b = spec["backbone"]
        self.backbone = ResNet(b["depth"], b["stage_blocks"], b["stem_channels"], b["base_channels"], b["cifar"])
        self.neck = LinearNeck(self.backbone.out_channels, spec["feat_dim"])
        self.memory_bank = Memory(spec["bank_length"], spec["feat_dim"])
        self.temperature = spec["temperature"]
        self.momentum = spec["bank_momentum"]
        self.mean, self.std = spec["mean"], spec["std"]

    def embed(self, images):
        # Normalise in the model's dtype, the constants rounded to it as goselfsup rounds them.
        dtype = self.neck.fc.weight.dtype
        mean = torch.tensor(self.mean, dtype=torch.float64).to(dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float64).to(dtype).view(1, 3, 1, 1)
        x = (images.permute(0, 3, 1, 2).to(dtype) - mean) / std
        return F.normalize(self.neck(self.backbone(x)))

    def loss(self, images, idx, neg_idx):
        feature = self.embed(images)
        bs, feat_dim = feature.shape
        bank = self.memory_bank.feature_bank
        pos_feat = torch.index_select(bank, 0, idx)
        neg_feat = torch.index_select(bank, 0, neg_idx.flatten()).view(bs, -1, feat_dim)
        pos_logits = torch.einsum("nc,nc->n", [pos_feat, feature]).unsqueeze(-1)
        neg_logits = torch.bmm(neg_feat, feature.unsqueeze(2)).squeeze(2)
        logits = torch.cat((pos_logits, neg_logits), dim=1) / self.temperature
        loss = F.cross_entropy(logits, torch.zeros(bs, dtype=torch.long, device=logits.device))
        return loss, feature

    @torch.no_grad()
    def update_bank(self, idx, feature):
        bank = self.memory_bank.feature_bank
        feature_norm = F.normalize(feature)
        new = (1 - self.momentum) * bank[idx] + self.momentum * feature_norm
        bank[idx] = F.normalize(new)


def load_state(model, state_dir):
    state = model.state_dict()
    for name in state:
        arr = np.load(os.path.join(state_dir, name + ".npy"))
        if tuple(arr.shape) != tuple(state[name].shape):
            sys.exit("%s: shape %s in the export, %s in the model" % (name, arr.shape, tuple(state[name].shape)))
        state[name].copy_(torch.from_numpy(arr))


def dump_state(model, opt, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    names = {p: n for n, p in model.named_parameters()}
    for name, t in model.state_dict().items():
        np.save(os.path.join(out_dir, name + ".npy"), t.detach().cpu().numpy())
    for p, st in opt.state.items():
        if "momentum_buffer" in st and st["momentum_buffer"] is not None:
            np.save(os.path.join(out_dir, "optimizer.momentum_buffer." + names[p] + ".npy"), st["momentum_buffer"].numpy())


def make_optimizer(model, spec):
    return torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=spec["momentum"],
                           weight_decay=spec["weight_decay"], nesterov=spec.get("nesterov", False))


def parity(d):
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    with open(os.path.join(d, "spec.json")) as f:
        spec = json.load(f)
    model = NPID(spec)
    if spec.get("dtype") == "float64":
        model.double()
    load_state(model, os.path.join(d, "state"))
    model.train()
    opt = make_optimizer(model, spec)
    images = np.load(os.path.join(d, "inputs", "images.npy"))
    indices = np.load(os.path.join(d, "inputs", "indices.npy"))
    negatives = np.load(os.path.join(d, "inputs", "negatives.npy"))
    losses = []
    for s in range(len(images)):
        idx = torch.from_numpy(indices[s].astype(np.int64))
        loss, feature = model.loss(torch.from_numpy(images[s]), idx, torch.from_numpy(negatives[s].astype(np.int64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_bank(idx, feature.detach())
        losses.append(loss.item())
        if s == 0:
            dump_state(model, opt, os.path.join(d, "out_1"))
    dump_state(model, opt, os.path.join(d, "out_last"))
    np.save(os.path.join(d, "losses.npy"), np.array(losses, dtype=np.float64))


def peak_rss():
    """This process's peak resident memory in bytes (VmHWM: getrusage's ru_maxrss would include
    the memory of the process that started it, which it inherits across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def bench(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.model == "resnet18":  # torchvision's ResNet-18 layout: 7x7 stem, max-pool, widths 64..512
        backbone = {"depth": 18, "stage_blocks": [2, 2, 2, 2], "stem_channels": 64, "base_channels": 64, "cifar": False}
    elif a.model == "resnet50":  # torchvision's ResNet-50: bottlenecks, widths 256..2048
        backbone = {"depth": 50, "stage_blocks": [3, 4, 6, 3], "stem_channels": 64, "base_channels": 64, "cifar": False}
    else:
        backbone = {"depth": 18, "stage_blocks": [a.blocks] * 4, "stem_channels": a.base, "base_channels": a.base,
                    "cifar": True}
    spec = {"backbone": backbone,
            "feat_dim": 128, "bank_length": a.bank, "temperature": 0.07, "bank_momentum": 0.5,
            "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
            "lr": 0.03, "momentum": 0.9, "weight_decay": 5e-4}
    model = NPID(spec)
    model.memory_bank.feature_bank.copy_(F.normalize(torch.randn(a.bank, 128)))
    model.to(dev).train()
    opt = make_optimizer(model, spec)
    images = torch.randint(0, 256, (a.batch, a.size, a.size, 3), dtype=torch.uint8).to(dev)
    idx = torch.randperm(a.bank)[:a.batch].to(dev)

    def step():
        neg = torch.randint(0, a.bank, (a.batch, a.negs), device=dev)
        # bf16 autocast as mmengine's AmpOptimWrapper(dtype='bfloat16'): convolutions and
        # matrix products in bf16, weights and optimizer in float32.
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.amp):
            loss, feature = model.loss(images, idx, neg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_bank(idx, feature.detach().float())
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss.item()  # as goselfsup's step, which returns its loss to the host
    sync()
    dt = (time.perf_counter() - t0) / a.steps
    peak = peak_rss()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(json.dumps({"seconds_per_step": dt, "images_per_second": a.batch / dt, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "device": name, "amp": a.amp, "peak_rss_bytes": peak}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("parity")
    pp.add_argument("dir")
    pb = sub.add_parser("bench")
    pb.add_argument("--model", choices=["cifar", "resnet18", "resnet50"], default="cifar")
    pb.add_argument("--size", type=int, default=32)
    pb.add_argument("--batch", type=int, default=64)
    pb.add_argument("--negs", type=int, default=4096)
    pb.add_argument("--bank", type=int, default=50000)
    pb.add_argument("--base", type=int, default=16)
    pb.add_argument("--blocks", type=int, default=2)
    pb.add_argument("--steps", type=int, default=10)
    pb.add_argument("--warmup", type=int, default=2)
    pb.add_argument("--threads", type=int, default=2)
    pb.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    pb.add_argument("--amp", action="store_true", help="bf16 autocast")
    a = p.parse_args()
    if a.cmd == "parity":
        parity(a.dir)
    else:
        bench(a)


if __name__ == "__main__":
    main()
